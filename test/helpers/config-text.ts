// Config texts and their errors for the config unit tests: one smallest valid
// file to build on, and the `.errors` a bad one must throw.
import assert from 'node:assert/strict';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import type { ConfigOverrides } from '../../src/config/load.js';

/** The name parsed texts are reported under ("config/x.yaml:10:38 ..."). */
export const FILE = 'config/x.yaml';

/**
 * The smallest valid file: one upstream, one route. `top` (when given, even
 * empty) is a line after `admin`; `route` is lines added to the route. Error
 * positions in the tests count these lines: keep the layout.
 */
export function minimalConfig(top?: string, route = ''): string {
  return `admin: { token: t }
${top === undefined ? '' : `${top}\n`}upstreams:
  app:
    servers:
      - address: 127.0.0.1:9001
routes:
  - match: { path: / }
    upstream: app
${route}`;
}

/** The `.errors` of the ConfigError that `load` must throw. */
export function configErrors(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.errors;
  }
  return assert.fail('expected a ConfigError');
}

/** The `.errors` of the ConfigError that parsing `text` must throw. */
export function errorsOf(text: string, overrides?: ConfigOverrides): string[] {
  return configErrors(() => parseConfigText(text, FILE, overrides));
}
