// The one error type configuration loading throws. It always carries every
// problem found, each already formatted as
//   FILE:LINE:COL key.path: what was expected, got what
// so the CLI, `POST /reload` and tests can print `.errors` as they are.

import { ErrorCode, SwitchyardError } from '../errors.js';

export class ConfigError extends SwitchyardError {
  readonly errors: string[];

  constructor(file: string, errors: string[], code: typeof ErrorCode.ConfigInvalid | typeof ErrorCode.ConfigUnreadable = ErrorCode.ConfigInvalid) {
    const n = errors.length;
    super(code, `${file}: ${n} configuration error${n === 1 ? '' : 's'}:\n  ${errors.join('\n  ')}`);
    this.name = 'ConfigError';
    this.errors = errors;
  }
}

/** A key path into the configuration: map keys are strings, list indexes numbers. */
export type PathSegment = string | number;

/** One problem found while checking, before it is placed in the file. */
export interface Issue {
  path: readonly PathSegment[];
  message: string;
  /** Point at the key of the last path entry (unknown or duplicate keys) rather than its value. */
  at?: 'key' | 'value';
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** `upstreams.app.servers[1].address`; odd keys are quoted: `upstreams["a b"]`. */
export function formatPath(path: readonly PathSegment[]): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** How a value the user wrote is quoted in messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  return JSON.stringify(value);
}
