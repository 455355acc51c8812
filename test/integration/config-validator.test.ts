// The built CLI validates configs with ajv standalone code written at build
// time (src/config/schema.ts says why); run from src/, the schema is compiled
// at run time. Both must say the same thing: the same errors for broken
// files, the same defaults for valid ones. Compared here on the built
// `switchyard --check` against loadConfig in this (tsx, src/) process.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { summarizeConfig } from '../../src/config/summary.js';
import { tempDir, type TempDir } from '../helpers/process.js';
import { baseConfig, runCli } from '../helpers/switchyard.js';

const BUILT_VALIDATOR = fileURLToPath(new URL('../../dist/config/config-validator.cjs', import.meta.url));
const EXAMPLES = ['../../config/switchyard.yaml', '../../config/examples/api-gateway.yaml', '../../config/examples/source-hash.yaml'].map((p) =>
  fileURLToPath(new URL(p, import.meta.url)),
);

function inProcess(file: string): { errors?: string[]; summary?: string } {
  try {
    return { summary: summarizeConfig(loadConfig(file, {}).config) };
  } catch (err) {
    if (err instanceof ConfigError) return { errors: err.errors };
    throw err;
  }
}

describe('config validator: built standalone code = run-time compile', () => {
  let tmp: TempDir;
  before(async () => (tmp = await tempDir()));
  after(() => tmp.remove());

  test('the build wrote the standalone validator', () => {
    assert.ok(existsSync(BUILT_VALIDATOR), `${BUILT_VALIDATOR} missing: run npm run build`);
  });

  test('valid files: the same config, defaults included', async () => {
    const base = baseConfig({ proxyPort: 18080, adminPort: 19090, servers: ['127.0.0.1:9001'] });
    const files = [...EXAMPLES, await tmp.writeConfig(base, 'base.yaml')];
    for (const file of files) {
      const mine = inProcess(file);
      assert.ok(mine.summary, `${file}: ${String(mine.errors)}`);
      const cli = await runCli(['--check', file]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.ok(cli.stdout.startsWith(mine.summary), `${file}:\n${cli.stdout}\n---\n${mine.summary}`);
    }
  });

  test('broken files: the same errors, every keyword kind', async () => {
    const base = baseConfig({ proxyPort: 18080, adminPort: 19090, servers: ['127.0.0.1:9001'] }) as Record<string, unknown>;
    const broken: Record<string, unknown>[] = [
      { ...base, bogus: 1 }, // additionalProperties
      { ...base, workers: 'many' }, // type/pattern
      { ...base, workers: 0 }, // minimum
      { ...base, listen: [] }, // minItems
      { ...base, listen: [{ host: '127.0.0.1' }] }, // required
      { ...base, scheduling: 'fifo' }, // enum
      { ...base, upstreams: { 'bad name!': { servers: [{ address: '127.0.0.1:1' }] } } }, // propertyNames
      { ...base, limits: { max_body_bytes: '10 parsecs', headers_timeout: -1 } },
      { ...base, routes: [{ match: { path: 'no-slash' }, upstream: 'app', auth: { jwt: { algorithms: ['none'] } } }] },
      { ...base, routes: 'all' },
      { ...base, logging: { level: 'loud', access: 'yes' }, trusted_proxies: [''] },
    ];
    for (const [i, raw] of broken.entries()) {
      const file = await tmp.writeConfig(raw, `broken-${i}.yaml`);
      const mine = inProcess(file);
      assert.ok(mine.errors && mine.errors.length > 0, `case ${i} should be refused`);
      const cli = await runCli(['--check', file]);
      assert.equal(cli.code, 1, `case ${i}: ${cli.stdout}`);
      assert.equal(cli.stderr, mine.errors.map((e) => e + '\n').join(''), `case ${i}`);
    }
  });
});
