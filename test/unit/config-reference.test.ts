// The generated configuration reference (issue 15, item 4) and the "did you
// mean" hint of unknown keys (item 2).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configKeys, configReference, missingDescriptions } from '../../src/config/reference.js';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';
import { nearestKey } from '../../src/config/schema.js';

const CONFIG_MD = fileURLToPath(new URL('../../docs/config.md', import.meta.url));

function errorsOf(text: string): string[] {
  try {
    parseConfigText(text, 'x.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.errors;
    throw err;
  }
  return [];
}

describe('config reference', () => {
  it('describes every key of the schema, and nothing the schema lacks', () => {
    assert.deepEqual(missingDescriptions(), { undescribed: [], stale: [] });
  });

  it('docs/config.md is what the schema generates', () => {
    assert.equal(readFileSync(CONFIG_MD, 'utf8'), configReference(), 'stale: run `node dist/cli.js help config > docs/config.md`');
  });

  it('gives types and defaults from the schema', () => {
    const byPath = new Map(configKeys().map((k) => [k.path, k]));
    assert.equal(byPath.get('upstreams.<name>.balance')!.default, 'round-robin');
    assert.match(byPath.get('upstreams.<name>.balance')!.expected, /least-conn/);
    assert.equal(byPath.get('listen[].port')!.required, true);
    assert.equal(byPath.get('admin')!.required, false);
    assert.equal(byPath.get('upstreams.<name>.health.interval')!.default, '2s');
  });
});

describe('unknown keys', () => {
  it('suggest the nearest known key when one is close', () => {
    const known = ['balance', 'hash', 'servers', 'health', 'retries', 'timeouts', 'max_idle_per_server'];
    assert.equal(nearestKey('balanse', known), 'balance');
    assert.equal(nearestKey('Balance', known), 'balance');
    assert.equal(nearestKey('server', known), 'servers');
    assert.equal(nearestKey('max-idle-per-server', known), 'max_idle_per_server');
    assert.equal(nearestKey('xyz', known), undefined);
    assert.equal(nearestKey('b', known), undefined);
    assert.equal(nearestKey('anything', []), undefined);
  });

  it('name it in the error, with the list of keys', () => {
    const errors = errorsOf('upstreams: { app: { balanse: random, servers: [{ address: "127.0.0.1:1" }] } }\nroutes: [{ match: { path: / }, upstream: app }]\n');
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /^x\.yaml:1:21 upstreams\.app\.balanse: unknown key; did you mean `balance`\? \(expected one of: balance, /);
  });

  it('a config without admin is valid', () => {
    const { config } = parseConfigText('upstreams: { app: { servers: [{ address: "127.0.0.1:1" }] } }\nroutes: [{ match: { path: / }, upstream: app }]\n', 'x.yaml');
    assert.equal(config.admin, undefined);
    assert.equal(config.logging.format, 'auto');
    assert.deepEqual(config.listen.map(({ host, port }) => ({ host, port })), [{ host: '127.0.0.1', port: 8080 }]);
  });
});
