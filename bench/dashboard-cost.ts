// What the dashboard costs the proxy: one Switchyard (2 workers, the bench's
// two backends), loaded with the same keep-alive GET /100b, alternately with
// nobody looking and with the dashboard open in headless Chromium (polling
// /status and /latency every 2 s), interleaved over rounds in one run.
// Reports req/s and the proxy tree's CPU per request (primary and workers:
// the primary answers the dashboard, the workers its stats requests), and
// the ratios open ÷ closed. Chromium's own CPU is not billed to the proxy,
// but it shares the machine's cores: compare the CPU column first.
//
//   npm run build && node --import tsx bench/dashboard-cost.ts [--rounds 3] [--duration 10]
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startBackends } from './lib/backends.js';
import { autocannonDriver, wrkDriver, type Driver } from './lib/load.js';
import { ownCpuMicros, treeCpuMicros } from './lib/proc.js';
import { benchWorkspace, runMain } from './lib/process.js';
import { median } from './lib/report.js';
import { SYSTEMS } from './lib/systems.js';
import { detectTools } from './lib/tools.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface Sample {
  state: 'closed' | 'open';
  rps: number;
  cpuUsPerReq: number;
  primaryCpuPct: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '64' } } });
  const rounds = Number(values.rounds);
  const durationSec = Number(values.duration);
  const connections = Number(values.connections);
  const tools = detectTools();
  const driver: Driver = tools.wrk ? wrkDriver(tools.wrk) : autocannonDriver;
  const { tmp, cleanup } = benchWorkspace('switchyard-dashboard-cost-');
  const profile = mkdtempSync(path.join(os.tmpdir(), 'switchyard-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    const backends = await startBackends(tools, tmp);
    const sy = await SYSTEMS.find((s) => s.name === 'switchyard')!.start({ tmp, backends: backends.ports, tools });
    const admin = sy.admin!;
    const url = `http://127.0.0.1:${sy.port}/100b`;
    console.log(`backends: ${backends.kind}; driver ${tools.wrk ? 'wrk' : 'autocannon'}, ${connections} connections, ${durationSec} s per cell, ${rounds} rounds`);
    console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const samples: Sample[] = [];
    for (let round = 1; round <= rounds; round++) {
      // Alternate which state goes first, so neither always follows the other.
      for (const state of round % 2 ? (['closed', 'open'] as const) : (['open', 'closed'] as const)) {
        const page = state === 'open' ? await browser.newPage() : undefined;
        if (page) {
          await page.goto(`http://127.0.0.1:${admin.port}/dashboard/`);
          await page.fill('#token', admin.token);
          await page.click('button[type=submit]');
          await page.waitForSelector('tr[data-server]');
        }
        await driver({ url, method: 'GET', connections, durationSec: 2, newConnectionPerRequest: false }, tmp);
        const cpu0 = treeCpuMicros(sy.pid!);
        const primary0 = ownCpuMicros(sy.pid!) ?? 0;
        const load = await driver({ url, method: 'GET', connections, durationSec, newConnectionPerRequest: false }, tmp);
        const cpu = treeCpuMicros(sy.pid!) - cpu0;
        const primary = (ownCpuMicros(sy.pid!) ?? 0) - primary0;
        await page?.close();
        const sample = { state, rps: load.rps, cpuUsPerReq: cpu / load.requests, primaryCpuPct: (primary / cpu) * 100 };
        samples.push(sample);
        console.log(
          `[round ${round}] dashboard ${state.padEnd(6)} ${load.rps.toFixed(0).padStart(7)} req/s, ${sample.cpuUsPerReq.toFixed(1)} µs CPU/req, primary ${sample.primaryCpuPct.toFixed(2)}% of the CPU`,
        );
      }
    }
    await sy.stop();
    await backends.stop();
    const row = (state: Sample['state']) => {
      const mine = samples.filter((s) => s.state === state);
      return { rps: median(mine.map((s) => s.rps))!, cpu: median(mine.map((s) => s.cpuUsPerReq))!, primary: median(mine.map((s) => s.primaryCpuPct))! };
    };
    const closed = row('closed');
    const open = row('open');
    console.log('\n| dashboard | req/s | CPU µs/req | primary CPU % |');
    console.log('| --- | ---: | ---: | ---: |');
    console.log(`| closed | ${closed.rps.toFixed(0)} | ${closed.cpu.toFixed(1)} | ${closed.primary.toFixed(2)} |`);
    console.log(`| open (polling every 2 s) | ${open.rps.toFixed(0)} | ${open.cpu.toFixed(1)} | ${open.primary.toFixed(2)} |`);
    console.log(`| open ÷ closed | ${(open.rps / closed.rps).toFixed(3)} | ${(open.cpu / closed.cpu).toFixed(3)} | |`);
    console.log(`\nmedians over ${rounds} rounds; load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    await cleanup();
  }
}

runMain(main);
