/**
 * A listener that cannot open is almost always a setting: the host is not this machine's, the port is taken
 * or privileged. Named here, such a failure exits like any bad setting (exit 2, the variable named).
 */
import { ConfigError } from './env.js';

/**
 * A failure to listen on `host`:`port` as a ConfigError naming HOST or `portVariable`; anything else is
 * returned unchanged.
 */
export function explainListenError(error: unknown, host: string, port: number, portVariable: string): unknown {
  switch ((error as { code?: unknown } | undefined)?.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError('HOST', `(${host}) does not resolve to an address`);
    case 'EADDRNOTAVAIL':
      return new ConfigError('HOST', `(${host}) is not an address of this machine`);
    case 'EADDRINUSE':
      return new ConfigError(portVariable, `(${port}) is already in use on ${host}`);
    case 'EACCES':
      return new ConfigError(portVariable, `(${port}) needs privileges this process does not have`);
    default:
      return error;
  }
}
