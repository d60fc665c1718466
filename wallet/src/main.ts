/**
 * The browser wallet: plain TypeScript over the API's gRPC-Web transport. A user signs in with a bearer
 * token (a demo token in embedded mode), sees their accounts' balances live (WatchAccount), pays, pages
 * through history and, as a merchant, captures, voids and refunds.
 */
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { type Account, AccountService, AccountStatus, AccountType } from '../../gen/payment/v1/account_pb.js';
import { ErrorDetailSchema } from '../../gen/payment/v1/errors_pb.js';
import {
  type AccountBalance,
  CaptureMode,
  DeclineReason,
  type Payment,
  PaymentService,
  PaymentStatus,
} from '../../gen/payment/v1/payment_pb.js';

const PAGE_SIZE = 5;
const TOKEN_KEY = 'wallet.token';
const RECONNECT_DELAY_MS = 2_000;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

let token = '';
const withToken: Interceptor = (next) => (request) => {
  request.header.set('authorization', `Bearer ${token}`);
  return next(request);
};
const transport = createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [withToken] });
const payments = createClient(PaymentService, transport);
const accountsClient = createClient(AccountService, transport);

let accounts: Account[] = [];
let current: Account | undefined;
let watchAbort: AbortController | undefined;
let lastVersion = 0n;
/** Page tokens of the pages shown so far; the last one is the next page's. */
let pageTokens: string[] = [''];

function money(minor: bigint | undefined, currency = current?.currency ?? ''): string {
  const value = minor ?? 0n;
  const sign = value < 0n ? '-' : '';
  const abs = value < 0n ? -value : value;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, '0')} ${currency}`;
}

function parseAmount(text: string): bigint {
  const [whole = '0', cents = ''] = text.trim().split('.');
  return BigInt(whole) * 100n + BigInt(cents.padEnd(2, '0') || '0');
}

function humanize(name: string): string {
  return name.toLowerCase().replaceAll('_', ' ');
}

function describeError(error: unknown): string {
  const connectError = ConnectError.from(error);
  const reason = connectError.findDetails(ErrorDetailSchema)[0]?.reason;
  return `${connectError.rawMessage}${reason ? ` (${reason})` : ''}`;
}

function showError(error: unknown): void {
  $('error').textContent = error ? describeError(error) : '';
}

function subjectOf(jwt: string): string {
  try {
    const payload = JSON.parse(atob(jwt.split('.')[1]!.replaceAll('-', '+').replaceAll('_', '/')));
    return typeof payload.sub === 'string' ? payload.sub : '';
  } catch {
    return '';
  }
}

function showBalance(balance: AccountBalance | undefined, status: AccountStatus): void {
  if (balance) {
    $('available').textContent = money(balance.available?.amountMinor);
    $('held').textContent = money(balance.held?.amountMinor);
    $('pending').textContent = money(balance.pendingSettlement?.amountMinor);
    lastVersion = balance.version;
  }
  if (status !== AccountStatus.UNSPECIFIED) $('status').textContent = humanize(AccountStatus[status]);
}

/** Streams the balance; reconnects after a drop, resuming from the last version seen. */
async function watch(account: Account): Promise<void> {
  watchAbort?.abort();
  const abort = new AbortController();
  watchAbort = abort;
  lastVersion = 0n;
  while (!abort.signal.aborted) {
    try {
      $('live').textContent = 'Live updates: connecting…';
      const stream = payments.watchAccount(
        { accountId: account.id, afterVersion: lastVersion },
        { signal: abort.signal },
      );
      for await (const update of stream) {
        $('live').textContent = 'Live updates: on';
        showBalance(update.balance, update.status);
        if (update.entries.length > 0) void loadHistory(pageTokens.length - 2);
      }
    } catch (error) {
      if (abort.signal.aborted || ConnectError.from(error).code === Code.Canceled) return;
      $('live').textContent = `Live updates: reconnecting (${describeError(error)})`;
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAY_MS));
  }
}

function actionButton(label: string, run: () => Promise<unknown>): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = label;
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await run();
      showError(undefined);
      await loadHistory(pageTokens.length - 2);
    } catch (error) {
      showError(error);
      button.disabled = false;
    }
  });
  return button;
}

function historyRow(payment: Payment): HTMLTableRowElement {
  const row = document.createElement('tr');
  const outgoing = payment.payerAccountId === current?.id;
  const status =
    payment.status === PaymentStatus.DECLINED
      ? `declined: ${humanize(DeclineReason[payment.declineReason])}`
      : humanize(PaymentStatus[payment.status]);
  const cells = [
    payment.createTime ? new Date(Number(payment.createTime.seconds) * 1000).toLocaleString() : '',
    `${outgoing ? 'to' : 'from'} ${outgoing ? payment.payeeAccountId : payment.payerAccountId}`,
    `${outgoing ? '−' : '+'}${money(payment.amount?.amountMinor, payment.amount?.currency)}`,
    status,
  ];
  for (const text of cells) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  if (payment.status === PaymentStatus.DECLINED) row.classList.add('declined');
  const actions = document.createElement('td');
  const key = () => crypto.randomUUID();
  if (!outgoing && payment.status === PaymentStatus.AUTHORIZED) {
    actions.append(
      actionButton('Capture', () => payments.capturePayment({ idempotencyKey: key(), paymentId: payment.id })),
      actionButton('Void', () => payments.voidPayment({ idempotencyKey: key(), paymentId: payment.id })),
    );
  }
  if (
    !outgoing &&
    (payment.status === PaymentStatus.COMPLETED || payment.status === PaymentStatus.PARTIALLY_REFUNDED)
  ) {
    actions.append(
      actionButton('Refund', () => payments.refundPayment({ idempotencyKey: key(), paymentId: payment.id })),
    );
  }
  row.append(actions);
  return row;
}

/** Shows page `index` (0 = newest) of the current account's payments. */
async function loadHistory(index: number): Promise<void> {
  if (!current) return;
  const page = Math.max(0, index);
  const response = await payments.listPayments({
    accountId: current.id,
    pageSize: PAGE_SIZE,
    pageToken: pageTokens[page] ?? '',
  });
  pageTokens = [...pageTokens.slice(0, page + 1), response.nextPageToken];
  $('history').replaceChildren(...response.payments.map(historyRow));
  $<HTMLButtonElement>('older').disabled = response.nextPageToken === '';
  $<HTMLButtonElement>('newest').disabled = page === 0;
}

async function selectAccount(account: Account): Promise<void> {
  current = account;
  pageTokens = [''];
  $('status').textContent = humanize(AccountStatus[account.status]);
  void watch(account);
  await loadHistory(0);
}

async function signIn(newToken: string): Promise<void> {
  token = newToken.trim();
  const response = await accountsClient.listAccounts({});
  accounts = response.accounts;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('who').textContent = `Signed in as ${subjectOf(token) || 'unknown user'}`;
  const select = $<HTMLSelectElement>('account');
  select.replaceChildren(
    ...accounts.map(
      (account) =>
        new Option(`${account.id} (${account.currency}, ${humanize(AccountType[account.type])})`, account.id),
    ),
  );
  $('sign-in').hidden = true;
  $('wallet').hidden = false;
  $('sign-out').hidden = false;
  if (accounts[0]) await selectAccount(accounts[0]);
  else $('error').textContent = 'This user has no accounts yet.';
}

async function pay(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  if (!current) return;
  const result = $('pay-result');
  result.textContent = 'Paying…';
  const { payment } = await payments.authorizePayment({
    idempotencyKey: crypto.randomUUID(),
    payerAccountId: current.id,
    payeeAccountId: $<HTMLInputElement>('payee').value.trim(),
    amount: { amountMinor: parseAmount($<HTMLInputElement>('amount').value), currency: current.currency },
    description: $<HTMLInputElement>('description').value,
    captureMode: $<HTMLInputElement>('manual').checked ? CaptureMode.MANUAL : CaptureMode.AUTOMATIC,
  });
  if (!payment) return;
  result.textContent =
    payment.status === PaymentStatus.DECLINED
      ? `Declined: ${humanize(DeclineReason[payment.declineReason])}`
      : `${humanize(PaymentStatus[payment.status])}: ${money(payment.amount?.amountMinor)} to ${payment.payeeAccountId}`;
  result.className = payment.status === PaymentStatus.DECLINED ? 'declined' : '';
  await loadHistory(0);
}

function guard<A extends unknown[]>(run: (...args: A) => Promise<void>) {
  return (...args: A) => {
    showError(undefined);
    run(...args).catch(showError);
  };
}

$('sign-in-form').addEventListener(
  'submit',
  guard(async (event: Event) => {
    event.preventDefault();
    await signIn($<HTMLTextAreaElement>('token').value);
  }),
);
$('pay-form').addEventListener('submit', guard(pay));
$('account').addEventListener(
  'change',
  guard(async () => {
    const chosen = accounts.find((account) => account.id === $<HTMLSelectElement>('account').value);
    if (chosen) await selectAccount(chosen);
  }),
);
$('older').addEventListener(
  'click',
  guard(() => loadHistory(pageTokens.length - 1)),
);
$('newest').addEventListener(
  'click',
  guard(() => loadHistory(0)),
);
$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  watchAbort?.abort();
  window.location.reload();
});

// A link of the form /wallet/#token=… (printed by `npm start` in embedded mode) signs in at once; the token
// is taken out of the address bar so that it is not left in history or shared by copying the URL.
const fromLink = new URLSearchParams(window.location.hash.slice(1)).get('token');
if (fromLink) history.replaceState(null, '', window.location.pathname);
const saved = fromLink ?? sessionStorage.getItem(TOKEN_KEY);
if (saved) guard(signIn)(saved);
