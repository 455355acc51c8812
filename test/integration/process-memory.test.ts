// The process tree's resident memory (issue 11, item 7). Every node process
// maps ~40 MB of the node binary by the end of its start-up (dynamic linking,
// bootstrap, module and config loading), counted once per process in RSS:
// ~120 of the tree's ~180 MB with two workers. Once started, the primary and
// each worker unmap those clean pages (native/startup_pages.h); what the data
// path uses comes back on first use. The test serves traffic, reloads (the
// primary runs config parsing again, new workers start) and serves again:
// every process keeps working on the pages it maps back, and the tree stays
// under the issue's 150 MB.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { startBackend, type Backend } from '../helpers/backend.js';
import { admin, waitForStatus, workersReady } from '../helpers/admin-status.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const MB = 1024;

let backend: Backend;
let sy: Switchyard;

before(async () => {
  backend = await startBackend({ respond: () => ({ status: 200, headers: [['content-type', 'text/plain']], body: 'x'.repeat(100) }) });
  sy = await startSwitchyard({ upstreams: { app: { servers: [{ address: `127.0.0.1:${backend.port}` }] } }, routes: [{ match: { path: '/' }, upstream: 'app' }] });
});

after(async () => {
  await sy?.stop();
  await backend?.close();
});

/** VmRSS and RssFile (file-backed resident pages) of a process, in KiB. */
function residentKb(pid: number): { rss: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)![1]);
  return { rss: field('VmRSS'), file: field('RssFile') };
}

/** `count` keep-alive GETs over 16 connections; every one must answer 200 with the 100-byte body. */
async function serve(count: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const one = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: sy.port, path: '/', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => (res.statusCode === 200 && body.length === 100 ? resolve() : reject(new Error(`status ${res.statusCode}, ${body.length} bytes`))));
        })
        .on('error', reject);
    });
  try {
    for (let i = 0; i < count; i += 64) await Promise.all(Array.from({ length: Math.min(64, count - i) }, one));
  } finally {
    agent.destroy();
  }
}

function treeReport(): { pid: number; rss: number; file: number }[] {
  return [sy.pid, ...sy.workerPids()].map((pid) => ({ pid, ...residentKb(pid) }));
}

test('after start-up each process maps only what it uses of the node binary; the tree stays under 150 MB while serving and across a reload', { timeout: 60_000 }, async (t) => {
  await waitForStatus(sy.adminPort, 'two ready workers', (s) => workersReady(s, 2));
  await serve(2000);
  const served = treeReport();
  t.diagnostic(`serving: ${served.map((p) => `pid ${p.pid} RSS ${(p.rss / MB).toFixed(1)} MB (files ${(p.file / MB).toFixed(1)})`).join(', ')}`);
  // Before the release every process kept ~40 MB of the binary mapped (42-44 MB here); what serving uses is about half of that.
  for (const p of served) assert.ok(p.file < 30 * MB, `pid ${p.pid} maps ${(p.file / MB).toFixed(1)} MB of files: ${JSON.stringify(served)}`);
  const total = served.reduce((sum, p) => sum + p.rss, 0);
  assert.ok(total < 150 * MB, `tree RSS ${(total / MB).toFixed(1)} MB: ${JSON.stringify(served)}`);

  // The primary parses and checks the config again, new workers start and release their own start-up pages.
  const old = new Set(sy.workerPids());
  assert.equal((await admin(sy.adminPort, '/reload', 'POST')).status, 200);
  await waitForStatus(sy.adminPort, 'two new ready workers', (s) => workersReady(s, 2, old), 30_000);
  await serve(2000);
  const reloaded = treeReport();
  t.diagnostic(`after a reload: ${reloaded.map((p) => `pid ${p.pid} RSS ${(p.rss / MB).toFixed(1)} MB (files ${(p.file / MB).toFixed(1)})`).join(', ')}`);
  for (const p of reloaded) assert.ok(p.file < 30 * MB, `after the reload pid ${p.pid} maps ${(p.file / MB).toFixed(1)} MB of files: ${JSON.stringify(reloaded)}`);
});
