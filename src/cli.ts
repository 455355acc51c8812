#!/usr/bin/env node
// The `switchyard` command. The same file is the entry of every cluster
// worker (node:cluster re-runs process.argv[1]); workers go straight to the
// worker loop and ignore the command line.
import cluster from 'node:cluster';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from './config/types.js';
import type { ConfigOverrides } from './config/load.js';
import { VERSION } from './version.js';

const USAGE = `NAME
  switchyard - reverse proxy and load balancer (Node.js cluster, shared-memory balancing)

SYNOPSIS
  switchyard [--config FILE] [--workers N]
  switchyard --check FILE [--strict] [--against CURRENT] [--workers N]
  switchyard dsr-server --vip ADDR [--l3dsr DSCP] [--apply | --remove]
  switchyard help config
  switchyard --version | --help

COMMANDS AND OPTIONS
  --config FILE   run with this config (default: config/switchyard.yaml); logs
                  go to standard output (readable on a terminal, JSON lines
                  otherwise; logging.format chooses)
  --check FILE    validate FILE, print a summary, the route table in the order
                  the router matches it, and the route audit, then exit
                  (1 on errors; findings of the audit are warnings)
  --strict        with --check: exit 1 when the route audit finds anything
                  (or, with --against, when the change weakens any check)
  --against FILE  with --check: compare FILE (the config running now) with the
                  checked one: routes added, removed and changed, the share of
                  clients each hashed upstream moves, and every auth or limit
                  the change weakens
  --workers N     override the number of worker processes (a number or auto)
  help config     print every configuration key with its type, default and
                  what it does (the same text as docs/config.md)
  --version       print the version and exit
  --help          print this help and exit

  switchyard dsr-server --vip ADDR [--l3dsr DSCP] [--apply] [--remove]
                  print (or apply) what a server behind a DSR balancer needs
                  (see README, Direct Server Return)

SIGNALS (to the primary, the process started by this command)
  SIGTERM, SIGINT  stop accepting, let in-flight requests finish (up to
                   shutdown_timeout), exit 0
  SIGHUP           reload the config file: workers are replaced one at a time;
                   an invalid file changes nothing (the errors are logged)

ADMIN API AND DASHBOARD (when the config has an admin section)
  http://ADMIN_HOST:ADMIN_PORT/dashboard/   live dashboard (asks for admin.token)
  GET /status, GET /metrics, GET /latency, POST /reload,
  POST /servers/UPSTREAM/ADDRESS/drain | enable
                   each with Authorization: Bearer <admin.token>

EXIT STATUS
  0 ok; 1 configuration or start-up error; 2 bad command line
`;

/** Exit codes: 0 ok, 1 config or start-up error, 2 bad command line. */
async function main(argv: string[]): Promise<number | undefined> {
  if (argv[0] === 'dsr-server') {
    const { runDsrServerCommand } = await import('./dsr/server-setup.js');
    return runDsrServerCommand(argv.slice(1));
  }
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        check: { type: 'string' },
        strict: { type: 'boolean' },
        against: { type: 'string' },
        workers: { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    process.stderr.write(`switchyard: ${(err as Error).message}\nTry 'switchyard --help'.\n`);
    return 2;
  }
  if (positionals.length === 1 && positionals[0] === 'help') values.help = true;
  else if (positionals.length > 0) {
    if (positionals.length === 2 && positionals[0] === 'help' && positionals[1] === 'config') {
      const { configReference } = await import('./config/reference.js');
      process.stdout.write(configReference());
      return 0;
    }
    process.stderr.write(`switchyard: unexpected argument ${JSON.stringify(positionals[0])} (the only commands are "help" and "help config")\nTry 'switchyard --help'.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`switchyard ${VERSION}\n`);
    return 0;
  }
  if (values.strict && values.check === undefined) {
    process.stderr.write("switchyard: --strict applies to --check only\nTry 'switchyard --help'.\n");
    return 2;
  }
  if (values.against !== undefined && values.check === undefined) {
    process.stderr.write("switchyard: --against applies to --check only\nTry 'switchyard --help'.\n");
    return 2;
  }
  const overrides: ConfigOverrides = {};
  if (values.workers !== undefined) {
    // The range is checked with the config, like `workers:`.
    if (!/^(\d+|auto)$/.test(values.workers)) {
      process.stderr.write(`switchyard: --workers expects a number or "auto", got ${JSON.stringify(values.workers)}\n`);
      return 2;
    }
    overrides.workers = values.workers === 'auto' ? 'auto' : Number(values.workers);
  }

  // Loaded only here, so --help and --version work even before a build of the rest.
  const { loadConfig } = await import('./config/load.js');
  const { ConfigError } = await import('./config/errors.js');
  const file = path.resolve(values.check ?? values.config ?? 'config/switchyard.yaml');
  let loaded;
  try {
    loaded = loadConfig(file, overrides);
  } catch (err) {
    const errors = err instanceof ConfigError ? err.errors : [(err as Error).message];
    process.stderr.write(errors.map((e) => e + '\n').join(''));
    return 1;
  }

  if (values.check !== undefined) {
    const { summarizeConfig } = await import('./config/summary.js');
    const { auditRoutes, formatFinding, formatUnreachable, unreachableRoutes } = await import('./proxy/route-audit.js');
    const { formatRouteTable, routeTable } = await import('./proxy/route-table.js');
    const routes = loaded.config.routes;
    const warnings = [
      ...unreachableRoutes(routes, loaded.config.normalize.escapedSlashes).map((u) => formatUnreachable(u, routes)),
      ...auditRoutes(routes).map((f) => formatFinding(f, routes)),
    ];
    const audit = warnings.length === 0
      ? 'route audit: no route with auth can be reached with weaker checks'
      : [`route audit: ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`, ...warnings.map((w) => `  warning: ${w}`)].join('\n');
    process.stdout.write(`${summarizeConfig(loaded.config)}\n${formatRouteTable(routeTable(routes))}\n${audit}\n`);
    let weakened = 0;
    if (values.against !== undefined) {
      const againstFile = path.resolve(values.against);
      let current;
      try {
        current = loadConfig(againstFile, overrides).config;
      } catch (err) {
        const errors = err instanceof ConfigError ? err.errors : [(err as Error).message];
        process.stderr.write(`switchyard: --against ${values.against} is not a valid config:\n${errors.map((e) => `  ${e}\n`).join('')}`);
        return 1;
      }
      const { diffConfigs, formatDiff } = await import('./proxy/config-diff.js');
      const diff = diffConfigs(current, loaded.config);
      weakened = diff.weakened.length;
      process.stdout.write(`${formatDiff(diff, values.against)}\n`);
    }
    return values.strict && (warnings.length > 0 || weakened > 0) ? 1 : 0;
  }
  return run(loaded.config, file, overrides);
}

async function run(config: Config, file: string, overrides: ConfigOverrides): Promise<number | undefined> {
  const { Primary } = await import('./cluster/primary.js');
  const primary = new Primary(config, { file, overrides });
  const stop = () =>
    primary.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`switchyard: shutdown failed: ${String(err)}`);
        process.exit(1);
      },
    );
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // reload() answers with the errors of an invalid file (and logs them) rather than rejecting; this catches the rest.
  process.on('SIGHUP', () => primary.reload().catch((err: unknown) => console.error(`switchyard: reload failed: ${String(err)}`)));
  try {
    await primary.start();
  } catch (err) {
    process.stderr.write(`switchyard: ${(err as Error).message}\n`);
    await primary.shutdown();
    return 1;
  }
  return undefined; // keeps running until a signal
}

if (cluster.isPrimary) {
  const code = await main(process.argv.slice(2));
  if (code !== undefined) process.exit(code);
} else {
  const { runWorker } = await import('./cluster/worker.js');
  runWorker();
}
