import { randomFillSync } from 'node:crypto';

export type IdPrefix = 'acct' | 'pay' | 'dep' | 'ent' | 'evt' | 'ref' | 'stl' | 'pout';

// Crockford base32: no I, L, O, U, so ids survive being read aloud or copied by hand.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const TIME_CHARS = 10;
const RANDOM_CHARS = 16;
/**
 * Random bytes are drawn from the CSPRNG a pool at a time: one call per 256 ids instead of one per id (a payment
 * makes four ids, and a call per id showed up in the server's CPU profile).
 */
const randomPool = Buffer.alloc(RANDOM_CHARS * 256);
let randomPoolOffset = randomPool.length;

function randomSlice(): Buffer {
  if (randomPoolOffset + RANDOM_CHARS > randomPool.length) {
    randomFillSync(randomPool);
    randomPoolOffset = 0;
  }
  const slice = randomPool.subarray(randomPoolOffset, randomPoolOffset + RANDOM_CHARS);
  randomPoolOffset += RANDOM_CHARS;
  return slice;
}

/**
 * A ULID-shaped id behind a type prefix ("pay_01j…"): 48 bits of milliseconds then 80 random bits, so ids
 * sort roughly by creation time (index locality) and cannot be guessed.
 */
export function newId(prefix: IdPrefix, nowMs: number = Date.now()): string {
  let time = nowMs;
  const timePart: string[] = new Array(TIME_CHARS);
  for (let i = TIME_CHARS - 1; i >= 0; i--) {
    timePart[i] = ALPHABET[time % 32]!;
    time = Math.floor(time / 32);
  }
  const random = randomSlice();
  let randomPart = '';
  for (let i = 0; i < RANDOM_CHARS; i++) randomPart += ALPHABET[random[i]! % 32];
  return `${prefix}_${timePart.join('')}${randomPart}`;
}

const ID_PATTERN = /^[a-z]{2,4}_[0-9a-hjkmnp-tv-z]{26}$/;

/** True when `value` looks like an id of this type; lets reads answer NOT_FOUND without a query. */
export function hasIdShape(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_PATTERN.test(value);
}
