// A real DNS server for a test: Debian's dnsmasq on a loopback port of its
// own, answering only from files the test writes (no upstream, no
// /etc/hosts). A records come from a hosts file re-read on SIGHUP (`setHosts`);
// SRV records from its conf file, read at start. Missing binary: the test
// fails naming the package (a test that cannot run must fail, not skip).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Resolver } from 'node:dns/promises';
import { freePort } from './switchyard.js';

export interface Dnsmasq {
  /** "127.0.0.1:PORT", for `resolvers`. */
  address: string;
  /** Rewrites the hosts file (name → addresses) and makes dnsmasq re-read it; resolves once it answers with them. */
  setHosts(hosts: Record<string, string[]>): Promise<void>;
  kill(): Promise<void>;
  /** Starts it again on the same port with the same files. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `srv`: conf lines "srv-host=NAME,TARGET,PORT,PRIORITY,WEIGHT" and "host-record=NAME,IP". */
export async function startDnsmasq(hosts: Record<string, string[]>, confLines: string[] = []): Promise<Dnsmasq> {
  if (spawnSync('dnsmasq', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('dnsmasq is not installed: install the Debian package dnsmasq-base (npm test runs test/setup/system-deps.sh, which does it as root)');
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wt-scale-dns-'));
  const hostsFile = path.join(dir, 'hosts');
  const confFile = path.join(dir, 'dnsmasq.conf');
  const writeHosts = (h: Record<string, string[]>): void =>
    writeFileSync(hostsFile, Object.entries(h).flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}\n`)).join(''));
  writeHosts(hosts);
  writeFileSync(confFile, confLines.map((l) => `${l}\n`).join(''));
  const port = await freePort(new Set([53, 5353]));
  const user = os.userInfo().username;
  let child: ChildProcess | undefined;
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);

  const launch = async (): Promise<void> => {
    const args = ['--no-daemon', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`, `--conf-file=${confFile}`, '--local-ttl=1', `--user=${user}`, '--pid-file=', '--cache-size=0'];
    const c = spawn('dnsmasq', args, { stdio: 'ignore' });
    running.add(c);
    c.once('exit', () => running.delete(c));
    child = c;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      // Any answer (even "not found") means it listens.
      const answered = await resolver.resolve4('wt-scale-probe.invalid').then(
        () => true,
        (err: { code?: string }) => err.code === 'ENOTFOUND' || err.code === 'ENODATA' || err.code === 'EREFUSED',
      );
      if (answered && c.exitCode === null) return;
      await sleep(50);
    }
    throw new Error(`dnsmasq on port ${port} did not answer within 5 s`);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    address: `127.0.0.1:${port}`,
    async setHosts(h) {
      writeHosts(h);
      child?.kill('SIGHUP');
      const want = Object.entries(h);
      const deadline = Date.now() + 5000;
      for (;;) {
        const seen = await Promise.all(want.map(([name]) => resolver.resolve4(name).then((a) => a.sort().join(','), () => '')));
        if (want.every(([, ips], i) => seen[i] === [...ips].sort().join(','))) return;
        if (Date.now() > deadline) throw new Error(`dnsmasq did not serve ${JSON.stringify(h)} within 5 s (serves ${JSON.stringify(seen)})`);
        await sleep(50);
      }
    },
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
