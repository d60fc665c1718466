/**
 * Who a bucket belongs to: the authenticated principal when there is one, otherwise the client's address.
 *
 * Principal: the authentication hook (src/auth/hook.ts) runs before the limiter and sets
 * `request.principal` only for credentials that verified; made-up credentials count as none, so they cannot
 * buy a fresh bucket.
 *
 * Address: the TCP peer, unless the peer is one of TRUSTED_PROXIES; then X-Forwarded-For is read from the
 * right, skipping trusted proxies, and the first untrusted address is the client. Nothing else (Forwarded,
 * X-Real-IP, a left-most X-Forwarded-For entry) is believed, since a client can write any of them. IPv6
 * clients are keyed by their /64, the block one subscriber typically holds.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { FastifyRequest } from 'fastify';
import { ANONYMOUS_PRINCIPAL } from '../auth/caller.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated principal, set by the authentication hook (src/auth/hook.ts) before the limiter runs. */
    principal?: string;
  }
}

export type PrincipalOf = (request: FastifyRequest) => string | undefined;

export const principalFromRequest: PrincipalOf = (request) => request.principal;

const MAX_PRINCIPAL_KEY_LENGTH = 128;

export class TrustedProxies {
  private readonly list = new net.BlockList();
  readonly empty: boolean;

  /** Entries are IP addresses or CIDR blocks (validated by loadConfig). */
  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(address, family);
      else this.list.addSubnet(address, Number(prefix), family);
    }
  }

  has(address: string): boolean {
    if (this.empty) return false;
    return this.list.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
  }
}

/** The bucket owner for a request: `p:<principal>` or `ip:<address>`. */
export function clientKey(request: FastifyRequest, trusted: TrustedProxies, principalOf: PrincipalOf): string {
  const principal = principalOf(request);
  if (principal && principal !== ANONYMOUS_PRINCIPAL) {
    // Long principals are hashed so that a key stays small; short ones stay readable in Redis.
    return principal.length <= MAX_PRINCIPAL_KEY_LENGTH
      ? `p:${principal}`
      : `p#${createHash('sha256').update(principal).digest('base64url')}`;
  }
  const address = clientAddress(request.socket.remoteAddress, request.headers['x-forwarded-for'], trusted);
  return `ip:${addressKey(address)}`;
}

/**
 * The client's address. A malformed X-Forwarded-For entry ends the walk at the nearest address known to be
 * real (the trusted proxy that reported it), which can only make a client share a bucket, never escape one.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
): string {
  let client = normalizeAddress(peer ?? '') ?? 'unknown';
  if (!trusted.has(client) || forwardedFor === undefined) return client;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  for (let index = hops.length - 1; index >= 0; index--) {
    const hop = normalizeAddress(hops[index]!);
    if (hop === undefined) break;
    client = hop;
    if (!trusted.has(hop)) break;
  }
  return client;
}

/** A bare IP address from an address as peers and proxies write it, or undefined when it is not one. */
export function normalizeAddress(raw: string): string | undefined {
  let text = raw.trim();
  // "[2001:db8::1]:443" and "192.0.2.1:443", as some proxies write them.
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) text = bracketed[1]!;
  else if (/^\d{1,3}(?:\.\d{1,3}){3}:\d+$/.test(text)) text = text.slice(0, text.lastIndexOf(':'));
  const family = net.isIP(text);
  if (family === 0) return undefined;
  if (family === 6) {
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(text);
    if (mapped) return mapped[1]!;
    // A zone ("fe80::1%eth0") names the local interface, not the client.
    return text.split('%')[0]!.toLowerCase();
  }
  return text;
}

/** IPv4 as is; IPv6 as its /64 prefix ("2001:db8:0:1::/64"). */
export function addressKey(address: string): string {
  if (!net.isIPv6(address)) return address;
  const groups = expandIpv6(address);
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

function expandIpv6(address: string): number[] {
  let text = address;
  // An embedded IPv4 tail (::a.b.c.d) becomes two groups.
  const ipv4Tail = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (ipv4Tail) {
    const [a, b, c, d] = ipv4Tail.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, ipv4Tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
