// Plain requests while wrong Basic passwords flood another route (issue 10,
// defect 8). Switchyard (2 workers) serves `/admin` behind Basic auth
// (bcrypt cost 10) and `/` open; autocannon measures `/` (keep-alive) first
// alone, then while 20 attacker clients, each from its own loopback address,
// send wrong passwords back to back. Prints the latency of the plain requests
// and what the attackers got.
//   node --import tsx bench/auth-flood.ts [--cli dist/cli.js] [--duration 10] [--no-limit]
// --cli runs another build (say, an older commit's dist/cli.js) for a before /
// after comparison; --no-limit sets auth_failures high enough never to refuse,
// so only the hashing pool is measured (the file must then know auth_failures).
import http from 'node:http';
import { join, resolve } from 'node:path';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { LatencyHistogram } from './lib/histogram.js';
import { freePort } from './lib/ports.js';
import { benchWorkspace, startProcess } from './lib/process.js';

const { values: args } = parseArgs({
  options: {
    cli: { type: 'string', default: 'dist/cli.js' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    attackers: { type: 'string', default: '20' },
    'no-limit': { type: 'boolean', default: false },
  },
});
const durationSec = Number(args.duration);
const attackers = Number(args.attackers);

const { tmp, cleanup } = benchWorkspace('switchyard-auth-flood-');
const backend = http.createServer((_req, res) => res.end('ok'));
await new Promise<void>((done) => backend.listen(0, '127.0.0.1', done));
const backendPort = (backend.address() as { port: number }).port;

const port = await freePort();
const adminPort = await freePort();
const config = {
  workers: 2,
  listen: [{ host: '127.0.0.1', port }],
  admin: { host: '127.0.0.1', port: adminPort, token: 'bench' },
  logging: { level: 'warn', access: false },
  ...(args['no-limit'] ? { auth_failures: { rate: '100000/s', burst: 1000000 } } : {}),
  upstreams: { app: { servers: [{ address: `127.0.0.1:${backendPort}` }], retries: 0 } },
  routes: [
    { match: { path: '/admin' }, upstream: 'app', auth: { basic: { users: [{ name: 'ops', hash: bcrypt.hashSync('right', 10) }] } } },
    { match: { path: '/' }, upstream: 'app' },
  ],
};
const configFile = join(tmp, 'switchyard.yaml');
writeFileSync(configFile, stringify(config));
await startProcess('switchyard', process.execPath, [resolve(args.cli), '--config', configFile], { port, path: '/' });

async function plainLoad(): Promise<{ rps: number; p50: number; p90: number; p99: number; max: number; non2xx: number }> {
  const latency = new LatencyHistogram();
  const r = await new Promise<autocannon.Result>((done, fail) => {
    const run = autocannon({ url: `http://127.0.0.1:${port}/plain`, connections: Number(args.connections), duration: durationSec }, (err, res) => (err ? fail(err) : done(res)));
    run.on('response', (_c, _s, _b, ms) => latency.record(ms));
  });
  return {
    rps: r['2xx'] / r.duration,
    p50: latency.percentile(50),
    p90: latency.percentile(90),
    p99: latency.percentile(99),
    max: latency.percentile(100),
    non2xx: r.non2xx,
  };
}

/** Each attacker: its own address and keep-alive connection, one wrong password after another until stopped. */
function flood(): { stop(): Promise<Record<string, number>> } {
  const statuses: Record<string, number> = {};
  let running = true;
  const lanes = Array.from({ length: attackers }, async (_, i) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.3.${i + 1}` });
    for (let n = 0; running; n++) {
      const status = await new Promise<string>((done) => {
        const auth = `Basic ${Buffer.from(`ops:guess-${i}-${n}`).toString('base64')}`;
        const req = http.get({ host: '127.0.0.1', port, path: '/admin', agent, headers: { authorization: auth } }, (res) => {
          res.resume();
          res.on('end', () => done(res.statusCode === 429 ? `429(retry ${res.headers['retry-after']})` : String(res.statusCode)));
        });
        req.on('error', (err) => done((err as NodeJS.ErrnoException).code ?? 'error'));
      });
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
    agent.destroy();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(lanes);
      return statuses;
    },
  };
}

const fmt = (ms: number): string => ms.toFixed(1);
try {
  console.log(`switchyard ${args.cli}${args['no-limit'] ? ' (auth_failures off)' : ''}: ${durationSec} s per run, ${args.connections} plain connections, ${attackers} attackers`);
  const rows: Record<string, string | number>[] = [];
  const row = (name: string, r: Awaited<ReturnType<typeof plainLoad>>, attack = '') =>
    rows.push({ run: name, 'plain req/s': Math.round(r.rps), 'p50 ms': fmt(r.p50), 'p90 ms': fmt(r.p90), 'p99 ms': fmt(r.p99), 'max ms': fmt(r.max), 'plain non-2xx': r.non2xx, attackers: attack });
  row('plain alone', await plainLoad());
  const attack = flood();
  await new Promise((r) => setTimeout(r, 500)); // the flood under way first
  const underAttack = await plainLoad();
  const statuses = await attack.stop();
  row('plain + wrong-password flood', underAttack, Object.entries(statuses).map(([s, n]) => `${n}×${s}`).join(' '));
  console.table(rows);
} finally {
  await cleanup();
  backend.close();
}
