// The drift check of config-shapes.ts (a types-only file `npm run typecheck`
// checks) must be able to fail: compiled with keys added to the schema and
// not to Config, it names each of them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../..', import.meta.url));
const schemaFile = `${root}src/config/schema.ts`;
const checks = fileURLToPath(new URL('config-shapes.ts', import.meta.url));

const { config } = ts.readConfigFile(`${root}test/tsconfig.json`, (f) => ts.sys.readFile(f));
const { options } = ts.parseJsonConfigFileContent(config, ts.sys, `${root}test`);
/** Parsed once for both compilations (lib and @types files are most of the work); schema.ts is parsed each time. */
const parsed = new Map<string, ts.SourceFile | undefined>();

/** Type errors of config-shapes.ts compiled against schema.ts as `edit` leaves it (only the files it imports). */
function typeErrors(edit: (schema: string) => string): string[] {
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, language) => {
    if (file === schemaFile) return ts.createSourceFile(file, edit(readFileSync(file, 'utf8')), language);
    if (!parsed.has(file)) parsed.set(file, getSourceFile(file, language));
    return parsed.get(file);
  };
  const program = ts.createProgram({ rootNames: [checks], options, host });
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

/** schema.ts with `line` added as the first key of the mapping whose key line is `at`. */
function withKey(at: string, line: string): (schema: string) => string {
  return (schema) => {
    assert.ok(schema.includes(at), `schema.ts no longer has ${JSON.stringify(at)}: update this test`);
    return schema.replace(at, `${at}\n${line}`);
  };
}

test('the schema and Config agree as they stand', () => {
  assert.deepEqual(typeErrors((s) => s), []);
});

test('schema keys without their Config keys fail to typecheck, each named', () => {
  const edits = [
    // top level
    withKey('    limits: object(\n      {', '        max_streams: int(1, 100, 10),'),
    // nested in a list of routes
    withKey('const cors = object(\n  {', "    vary: { type: 'boolean', default: true, expected: 'true or false' },"),
    // a duration that kept its name (Config has proxyTimeoutMs beside it, not connectTimeout)
    withKey("          proxy_timeout: duration('5s'),", "          connect_timeout: duration('5s'),"),
    // a new method of authentication, which AuthConfig does not have
    withKey('const auth = object({', '  oidc: object({}),'),
  ];
  const errors = typeErrors((s) => edits.reduce((text, edit) => edit(text), s)).join('\n');
  for (const key of ['maxStreams', 'vary', 'connectTimeout', 'oidc']) assert.match(errors, new RegExp(`Type '"${key}"' is not assignable to type 'never'`));
});
