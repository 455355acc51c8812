// The module map is enforced by ESLint (import-x/no-restricted-paths zones in
// eslint.config.js): an import against the arrows is an error, the documented
// exceptions are not. Each case lints a real file with one import added.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Only the import rules: the type-aware ones would build a program per case.
const eslint = new ESLint({
  cwd: root,
  overrideConfig: { languageOptions: { parserOptions: { project: null } } },
  ruleFilter: ({ ruleId }) => ruleId.startsWith('import-x/'),
});

async function violations(file: string, importLine: string): Promise<string[]> {
  const text = `${importLine}\n${readFileSync(`${root}/${file}`, 'utf8')}`;
  const [result] = await eslint.lintText(text, { filePath: `${root}/${file}` });
  return result!.messages.filter((m) => m.ruleId === 'import-x/no-restricted-paths').map((m) => m.message);
}

const upward: Array<[string, string]> = [
  ['src/gateway/cors.ts', "import '../proxy/exchange.js';"],
  ['src/balancer/round-robin.ts', "import '../gateway/cors.js';"],
  ['src/balancer/round-robin.ts', "import '../proxy/router.js';"],
  ['src/native.ts', "import './balancer/layout.js';"],
  ['src/admin/status.ts', "import '../cluster/primary.js';"],
  ['src/admin/status.ts', "import '../proxy/server.js';"],
  ['src/health/active-checker.ts', "import '../cluster/shared-state.js';"],
  ['src/proxy/exchange.ts', "import '../cluster/worker.js';"],
  ['src/proxy/exchange.ts', "import '../admin/server.js';"],
  ['src/config/semantic.ts', "import '../proxy/router.js';"],
  ['src/dsr/plan.ts', "import '../cluster/primary.js';"],
  ['src/dsr/forwarder-process.ts', "import '../proxy/server.js';"],
];

for (const [file, line] of upward) {
  test(`${file}: ${line} is refused`, async () => {
    const found = await violations(file, line);
    assert.equal(found.length, 1, `expected one module-map error, got ${JSON.stringify(found)}`);
    assert.match(found[0]!, /must not import .*module map/);
  });
}

const downwardOrAllowed: Array<[string, string]> = [
  ['src/proxy/exchange.ts', "import '../gateway/cors.js';"],
  ['src/gateway/cors.ts', "import '../balancer/round-robin.js';"],
  ['src/cluster/primary.ts', "import '../admin/server.js';"],
  ['src/proxy/server.ts', "import '../admin/types.js';"],
  ['src/config/semantic.ts', "import '../proxy/request-target.js';"],
  ['src/cluster/dsr-supervisor.ts', "import '../dsr/plan.js';"],
];

for (const [file, line] of downwardOrAllowed) {
  test(`${file}: ${line} is allowed`, async () => {
    assert.deepEqual(await violations(file, line), []);
  });
}
