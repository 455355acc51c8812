// Lint: the rules that catch what reviews kept finding (floating promises,
// unused code, import circles), not a style guide.
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

// The module map (README, Layout): arrows run one way,
//   cli -> cluster -> admin, health, proxy
//   proxy -> gateway -> balancer -> native
//   cluster -> admin/health -> native
// config, log, errors.ts and admin/types.ts (the shapes the admin API serves) are leaves
// any layer may use. Each entry: a folder, and the folders it must not import.
const layers = {
  'src/native': ['src/balancer', 'src/gateway', 'src/proxy', 'src/cluster', 'src/admin', 'src/health', 'src/metrics'],
  'src/native.ts': ['src/balancer', 'src/gateway', 'src/proxy', 'src/cluster', 'src/admin', 'src/health', 'src/metrics'],
  'src/balancer': ['src/gateway', 'src/proxy', 'src/cluster', 'src/admin', 'src/health', 'src/metrics'],
  'src/gateway': ['src/proxy', 'src/cluster', 'src/admin', 'src/health'],
  'src/proxy': ['src/cluster', 'src/admin', 'src/health'],
  'src/health': ['src/cluster', 'src/admin', 'src/proxy', 'src/gateway', 'src/balancer'],
  'src/admin': ['src/cluster', 'src/proxy', 'src/gateway', 'src/balancer', 'src/health'],
  // DSR (issue 13): the forwarder process and its plan sit beside proxy/, over balancer/ and native/.
  'src/dsr': ['src/cluster', 'src/admin', 'src/proxy', 'src/gateway', 'src/health', 'src/metrics'],
  'src/metrics': ['src/cluster', 'src/admin', 'src/proxy', 'src/gateway'],
  'src/config': ['src/cluster', 'src/admin', 'src/health', 'src/metrics', 'src/proxy', 'src/gateway', 'src/balancer'],
  'src/log.ts': ['src/cluster', 'src/admin', 'src/health', 'src/metrics', 'src/proxy', 'src/gateway', 'src/balancer'],
  'src/errors.ts': ['src/cluster', 'src/admin', 'src/health', 'src/metrics', 'src/proxy', 'src/gateway', 'src/balancer', 'src/config', 'src/native'],
};
/** Allowed exceptions ('target>from': files under from), each with its reason. */
const allowed = {
  // The admin API's served shapes import nothing; the data path reports in them.
  'src/proxy>src/admin': ['./types.ts'],
  // Route paths in the config must be written as the router normalises them: one pure function.
  'src/config>src/proxy': ['./request-target.ts'],
};
const moduleMapZones = Object.entries(layers).flatMap(([target, forbidden]) =>
  forbidden.map((from) => ({
    target,
    from,
    except: allowed[`${target}>${from}`] ?? [],
    message: `${target} must not import ${from}: arrows in the module map run the other way (eslint.config.js, README Layout).`,
  })),
);

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'bench/results/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    extends: [tseslint.configs.base],
    plugins: { 'import-x': importX },
    // Imports name the compiled '.js' file; without this alias the resolver
    // finds nothing and the import rules silently check nothing.
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json', '.node'], extensionAlias: { '.js': ['.ts', '.js'] } })] },
    languageOptions: { parserOptions: { project: './test/tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test() and describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // `void` does not excuse a promise: a rejection nobody handles ends the worker.
        { ignoreVoid: false, allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
      'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: moduleMapZones }],
    },
  },
);
