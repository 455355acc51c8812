// A real DNS server for a test: Debian's dnsmasq on a loopback port of its
// own, answering only from files the test writes (no upstream, no
// /etc/hosts). A records come from a hosts file re-read on SIGHUP (`setHosts`);
// SRV records from its conf file, read at start. Missing binary: the test
// fails naming the package (a test that cannot run must fail, not skip).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Resolver } from 'node:dns/promises';
import { freePort } from '../../bench/lib/ports.js';
import { assertInstalled, startDaemon } from './daemon.js';

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

/** `srv`: conf lines "srv-host=NAME,TARGET,PORT,PRIORITY,WEIGHT" and "host-record=NAME,IP". */
export async function startDnsmasq(hosts: Record<string, string[]>, confLines: string[] = []): Promise<Dnsmasq> {
  assertInstalled('dnsmasq', 'dnsmasq-base');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wt-scale-dns-'));
  const hostsFile = path.join(dir, 'hosts');
  const confFile = path.join(dir, 'dnsmasq.conf');
  const writeHosts = (h: Record<string, string[]>): void =>
    writeFileSync(hostsFile, Object.entries(h).flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}\n`)).join(''));
  writeHosts(hosts);
  writeFileSync(confFile, confLines.map((l) => `${l}\n`).join(''));
  const port = await freePort(new Set([53, 5353]));
  const user = os.userInfo().username;
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  const daemon = await startDaemon({
    command: 'dnsmasq',
    debianPackage: 'dnsmasq-base',
    args: ['--no-daemon', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`, `--conf-file=${confFile}`, '--local-ttl=1', `--user=${user}`, '--pid-file=', '--cache-size=0'],
    // Any answer (even "not found") means it listens.
    answers: () =>
      resolver.resolve4('wt-scale-probe.invalid').then(
        () => true,
        (err: { code?: string }) => err.code === 'ENOTFOUND' || err.code === 'ENODATA' || err.code === 'EREFUSED',
      ),
    what: `dnsmasq on port ${port}`,
    pollMs: 50,
  });
  return {
    address: `127.0.0.1:${port}`,
    async setHosts(h) {
      writeHosts(h);
      daemon.signal('SIGHUP');
      const want = Object.entries(h);
      const deadline = Date.now() + 5000;
      for (;;) {
        const seen = await Promise.all(want.map(([name]) => resolver.resolve4(name).then((a) => a.sort().join(','), () => '')));
        if (want.every(([, ips], i) => seen[i] === [...ips].sort().join(','))) return;
        if (Date.now() > deadline) throw new Error(`dnsmasq did not serve ${JSON.stringify(h)} within 5 s (serves ${JSON.stringify(seen)})`);
        await sleep(50);
      }
    },
    kill: daemon.kill,
    restart: daemon.restart,
    async stop() {
      await daemon.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
