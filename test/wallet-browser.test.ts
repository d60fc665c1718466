/**
 * The browser wallet in a real browser: Debian's Chromium driven by playwright-core, against a real server
 * serving the built wallet at /wallet/ and the API over gRPC-Web. Signs in with a token, pays, sees the
 * balance change without a reload (WatchAccount), pages through history, sees a decline reason, and as a
 * merchant captures a hold. `WALLET_SCREENSHOT=docs/wallet.png` refreshes the screenshot in docs/wallet.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountType } from '../gen/payment/v1/account_pb.js';
import { WALLET_CSP } from '../src/server/wallet.js';
import { type Clients, clientsFor } from './support/clients.js';
import { signToken } from './support/credentials.js';
import { authorizeHold, deposit, key, openAccount } from './support/fixtures.js';
import { startTestServer, type TestServer } from './support/server.js';

const CHROMIUM = '/usr/bin/chromium';
const UI_WAIT_MS = 20_000;

let server: TestServer;
let browser: BrowserContext;
let userDataDir: string;
let page: Page;
let backend: Clients;
const pageErrors: string[] = [];

beforeAll(async () => {
  // The suite's pretest builds it too; this keeps a single-file run honest about what it serves.
  const build = spawnSync('node', ['scripts/wallet-build-if-stale.mjs'], { stdio: 'inherit', timeout: 120_000 });
  if (build.status !== 0) throw new Error('the wallet build failed');
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/ensure-services.sh`);
  server = await startTestServer({ SERVE_WALLET: 'true', WATCH_POLL_INTERVAL_MS: '50' });
  backend = clientsFor('connect-json', server.url);
  userDataDir = mkdtempSync(join(tmpdir(), 'wallet-chromium-'));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(UI_WAIT_MS);
  page.on('pageerror', (error) => pageErrors.push(error.message));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await server?.stop();
});

async function pay(payeeId: string, amount: string, manual = false): Promise<string> {
  await page.getByLabel('Payee account id').fill(payeeId);
  await page.getByLabel('Amount').fill(amount);
  await page.getByLabel('Hold only (merchant captures later)').setChecked(manual);
  const before = await page.locator('#pay-result').textContent();
  await page.getByRole('button', { name: 'Pay', exact: true }).click();
  await expectText('#pay-result', (text) => text !== before && text !== 'Paying…');
  return (await page.locator('#pay-result').textContent()) ?? '';
}

/** Waits, bounded, until the first element matching `selector` has text that `accept` accepts. */
async function expectText(selector: string, accept: (text: string) => boolean): Promise<void> {
  let last = '';
  await expect
    .poll(
      async () => {
        last = (await page.locator(selector).first().textContent({ timeout: UI_WAIT_MS })) ?? '';
        return accept(last);
      },
      { timeout: UI_WAIT_MS, interval: 100, message: `text of ${selector}` },
    )
    .toBe(true);
  expect(last).toBeDefined();
}

describe('the browser wallet', () => {
  it('signs in, pays, updates live, pages through history and shows a decline reason', async () => {
    const owner = `user:wallet-${key()}`;
    const alice = await openAccount(backend, 'USD', owner);
    await deposit(backend, alice, 100_000n);
    const bob = await openAccount(backend, 'USD', 'user:bob-wallet');
    // Seven older payments: more than one page of five.
    for (let i = 0; i < 7; i++) {
      await backend.payments.authorizePayment({
        idempotencyKey: key(),
        payerAccountId: alice,
        payeeAccountId: bob,
        amount: { amountMinor: BigInt(100 + i), currency: 'USD' },
      });
    }
    const token = await signToken(owner);

    const response = await page.goto(`${server.url}/wallet/#token=${token}`);
    // The page works under its policy (the rest of this test), so the policy is the one served.
    expect(response?.headers()['content-security-policy']).toBe(WALLET_CSP);
    await expectText('#who', (text) => text.includes('user:wallet-'));
    await expectText('#available', (text) => text === '992.79 USD');
    await expectText('#live', (text) => text === 'Live updates: on');
    expect(page.url()).not.toContain('token=');

    // A payment from the page: the balance follows through the stream, with no reload.
    expect(await pay(bob, '12.50')).toContain('completed');
    await expectText('#available', (text) => text === '980.29 USD');
    // Money arriving from elsewhere (a backend deposit) shows up the same way.
    await deposit(backend, alice, 500n);
    await expectText('#available', (text) => text === '985.29 USD');

    expect(await pay(bob, '50000')).toBe('Declined: insufficient funds');
    await expectText('#history tr.declined td:nth-child(4)', (text) => text === 'declined: insufficient funds');

    // History: 9 payments, five a page, newest first.
    const rows = page.locator('#history tr');
    await expect.poll(() => rows.count(), { timeout: UI_WAIT_MS }).toBe(5);
    const firstPage = await rows.allTextContents();
    await page.getByRole('button', { name: 'Older' }).click();
    await expectText('#history', (text) => text.includes('−1.00 USD'));
    await expect.poll(() => rows.count(), { timeout: UI_WAIT_MS }).toBe(4);
    expect(await page.getByRole('button', { name: 'Older' }).isDisabled()).toBe(true);
    const secondPage = await rows.allTextContents();
    expect(secondPage.some((row) => firstPage.includes(row))).toBe(false);
    await page.getByRole('button', { name: 'Newest' }).click();
    await expect.poll(() => rows.allTextContents(), { timeout: UI_WAIT_MS }).toEqual(firstPage);

    // WALLET_SCREENSHOT=docs/wallet.png refreshes docs/wallet.md's picture; otherwise it stays out of the tree.
    await page.screenshot({ path: process.env.WALLET_SCREENSHOT ?? join(userDataDir, 'wallet.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });

  it('lets a merchant capture a hold and refund a payment', async () => {
    const owner = `merchant:wallet-${key()}`;
    const mine = await backend.accounts.createAccount({
      idempotencyKey: key(),
      ownerRef: owner,
      currency: 'USD',
      type: AccountType.MERCHANT,
    });
    const customer = await openAccount(backend);
    await deposit(backend, customer, 10_000n);
    const held = await authorizeHold(backend, customer, mine.account!.id, 2_000n);
    const token = await signToken(owner);

    // A new document: a link that differs only after '#' would not reload the page.
    await page.goto('about:blank');
    await page.goto(`${server.url}/wallet/#token=${token}`);
    await expectText('#who', (text) => text.includes('merchant:wallet-'));
    await expectText('#history', (text) => text.includes('authorized'));
    await page.getByRole('button', { name: 'Capture' }).click();
    await expectText('#history', (text) => text.includes('completed'));
    await expectText('#pending', (text) => text === '20.00 USD');
    await page.getByRole('button', { name: 'Refund' }).click();
    await expectText('#history', (text) => text.includes('refunded'));
    await expectText('#pending', (text) => text === '0.00 USD');
    const { payment } = await backend.payments.getPayment({ paymentId: held });
    expect(payment?.refundedAmount?.amountMinor).toBe(2_000n);
    expect(pageErrors).toEqual([]);
  });
});
