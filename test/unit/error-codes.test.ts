// The SWY_ERR_* catalogue: every code is documented in the README's table
// (and nothing else is), and the errors users meet first carry their code.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.ts';
import { ErrorCode, SwitchyardError } from '../../src/errors.ts';
import { compileCors } from '../../src/gateway/cors.ts';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

test('the README table lists exactly the codes of src/errors.ts', () => {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('## Error codes'), text.indexOf('\n## ', text.indexOf('## Error codes') + 1));
  const documented = [...section.matchAll(/^\| `(SWY_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), Object.values(ErrorCode).sort());
  assert.equal(new Set(Object.values(ErrorCode)).size, Object.values(ErrorCode).length, 'codes are unique');
});

test('config errors carry SWY_ERR_CONFIG_UNREADABLE or SWY_ERR_CONFIG_INVALID', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-codes-'));
  try {
    assert.throws(() => loadConfig(path.join(dir, 'missing.yaml')), (err: unknown) => err instanceof SwitchyardError && err.code === 'SWY_ERR_CONFIG_UNREADABLE');
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'workers: many\n');
    assert.throws(() => loadConfig(bad), (err: unknown) => err instanceof SwitchyardError && err.code === 'SWY_ERR_CONFIG_INVALID' && /workers/.test(err.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a gateway policy that cannot be built says SWY_ERR_CONFIG_POLICY', () => {
  const cors = { origins: ['https://*'], methods: ['GET'], headers: [], exposeHeaders: [], credentials: false };
  assert.throws(() => compileCors(cors), (err: unknown) => err instanceof SwitchyardError && err.code === 'SWY_ERR_CONFIG_POLICY' && /wildcard/.test(err.message));
});
