/**
 * Which caller may call which RPC, derived from the one description of every RPC (src/contract.ts). A backend
 * needs the listed scope; a wallet user may call only the methods marked for users, and then only on their
 * own resources (checked in the application layer, which answers NOT_FOUND for someone else's). A method
 * missing from the table is refused: new RPCs are closed until someone decides who may call them.
 */
import { PUBLIC_SERVICE_DESCRIPTORS, RPCS } from '../contract.js';
import type { Scope } from './caller.js';

export interface MethodRule {
  scope: Scope;
  /** Wallet users may call it on their own resources. */
  users: boolean;
}

/** Every RPC that needs credentials, by `<package>.<Service>/<Method>`. */
export const METHOD_RULES: Readonly<Record<string, MethodRule>> = Object.fromEntries(
  Object.entries(RPCS).flatMap(([procedure, rule]) =>
    rule.public ? [] : [[procedure, { scope: rule.scope, users: rule.users !== false }]],
  ),
);

/** Open to anyone: probes must work without credentials, and reflection only describes the public contract. */
export const PUBLIC_SERVICES: ReadonlySet<string> = new Set(
  PUBLIC_SERVICE_DESCRIPTORS.map((service) => service.typeName),
);
