// The heavy packages only some configs need are loaded on first use: a
// process that imports the primary or the worker's data path must not hold
// them (acme-client ~28 MB and prom-client ~4 MB in the primary, node-redis ~20 MB per worker;
// bench/README.md, "Memory of the process tree"). Each import runs in a
// fresh node, since this test process may have loaded them already.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

/** The packages (node_modules/<name>/) a fresh process holds after importing `module`. */
function packagesLoadedBy(module: string): Set<string> {
  const url = new URL(module, import.meta.url).href;
  const code = `import { createRequire } from 'node:module'; await import(${JSON.stringify(url)});
    console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) });
  const files = JSON.parse(out.trim().split('\n').pop()!) as string[];
  return new Set(files.flatMap((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1] ?? []));
}

test('the primary loads neither acme-client, node-redis nor prom-client until a config or a scrape asks for it', () => {
  const loaded = packagesLoadedBy('../../src/cluster/primary.ts');
  assert.ok(loaded.has('pino'), `the probe sees packages at all: ${[...loaded].join(', ')}`);
  for (const pkg of ['acme-client', 'axios', 'node-forge', 'redis', '@redis/client', 'prom-client']) assert.ok(!loaded.has(pkg), `${pkg} loaded by the primary's imports`);
});

test('a worker loads neither node-redis, acme-client nor the config loader (YAML, schema)', () => {
  const loaded = packagesLoadedBy('../../src/cluster/worker.ts');
  assert.ok(loaded.has('pino'), `the probe sees packages at all: ${[...loaded].join(', ')}`);
  for (const pkg of ['redis', '@redis/client', 'acme-client', 'yaml', 'fastest-levenshtein']) assert.ok(!loaded.has(pkg), `${pkg} loaded by the worker's imports`);
});
