// Issue 13, item 3: `switchyard dsr-server` inside network namespaces the
// test builds (torn down even on failure). Printing changes nothing; --apply
// puts the VIP on lo with arp_ignore=1 / arp_announce=2 in that namespace
// only, and is idempotent; with --l3dsr a UDP datagram marked with the DSCP
// and sent to the server's own address really arrives at a socket bound to
// the VIP (and an unmarked one does not); --remove restores everything.
// Needs root (ip netns); under CI=true a missing privilege fails the test.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { CLI_PATH } from '../helpers/switchyard.js';

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
// Unique per checkout and run: parallel runs on one machine never share a namespace.
const PREFIX = `${basename(ROOT)}-dsrsrv-${process.pid}`.slice(-24);
const SERVER = `${PREFIX}-s`;
const CLIENT = `${PREFIX}-c`;
const VIP = '10.77.0.100';

const canRun = process.getuid?.() === 0;
const skip = canRun ? false : 'needs root for ip netns';
if (!canRun && process.env.CI === 'true') throw new Error('dsr-server tests need root (ip netns): CI must run them');

const sh = (ns: string, cmd: string[]): string => execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8' });
const cli = (...args: string[]): string => sh(SERVER, [process.execPath, CLI_PATH, 'dsr-server', ...args]);
const sysctls = (ns: string): string => sh(ns, ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce']).trim().replace(/\n/g, ' ');
const loAddrs = (): string[] => [...sh(SERVER, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'lo']).matchAll(/inet (\S+)/g)].map((m) => m[1]!);

/** Sends one UDP datagram from the client namespace with the given TOS byte; true if a socket bound to VIP:port in the server namespace got it. */
async function udpReachesVip(tos: number, port: number): Promise<boolean> {
  const listener = spawn('ip', ['netns', 'exec', SERVER, 'python3', '-c', `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: bind the VIP even while it is not on lo
s.bind(("${VIP}", ${port}))
s.settimeout(30)
print("ready", flush=True)
try:
    print("got", s.recv(100).decode(), flush=True)
except socket.timeout:
    print("none", flush=True)
`]);
  let out = '';
  listener.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let exited = false;
  const done = new Promise<void>((resolve) => listener.once('exit', () => ((exited = true), resolve())));
  while (!out.includes('ready')) {
    if (exited) throw new Error(`the UDP listener exited: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  sh(CLIENT, ['python3', '-c', `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, ${tos})
s.sendto(b"hello", ("10.88.0.2", ${port}))
`]);
  // Sent (the sender has exited): a delivered datagram is read within a second, even on a loaded machine.
  const deadline = Date.now() + 1000;
  while (!out.includes('got') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  listener.kill();
  await done;
  return out.includes('got hello');
}

describe('switchyard dsr-server', { skip }, () => {
  before(() => {
    for (const ns of [SERVER, CLIENT]) execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['link', 'add', 'veth-c', 'netns', CLIENT, 'type', 'veth', 'peer', 'name', 'veth-s', 'netns', SERVER]);
    sh(CLIENT, ['ip', 'addr', 'add', '10.88.0.1/24', 'dev', 'veth-c']);
    sh(SERVER, ['ip', 'addr', 'add', '10.88.0.2/24', 'dev', 'veth-s']);
    for (const [ns, dev] of [[CLIENT, 'veth-c'], [SERVER, 'veth-s'], [CLIENT, 'lo'], [SERVER, 'lo']] as const) sh(ns, ['ip', 'link', 'set', dev, 'up']);
  });
  after(() => {
    for (const ns of [SERVER, CLIENT]) {
      try {
        execFileSync('ip', ['netns', 'del', ns]);
      } catch {
        // not created
      }
    }
    // The saved sysctl values of a namespace that is gone.
    execFileSync('sh', ['-c', 'find /run/switchyard-dsr -name "netns-*.json" -mmin +60 -delete 2>/dev/null || true']);
  });

  test('printing changes nothing', () => {
    const printed = cli('--vip', VIP, '--l3dsr', '10');
    assert.match(printed, /^ip addr add 10\.77\.0\.100\/32 dev lo label lo:sydsr$/m);
    assert.match(printed, /^sysctl -q -w net\.ipv4\.conf\.all\.arp_ignore=1$/m);
    assert.match(printed, /^sysctl -q -w net\.ipv4\.conf\.all\.arp_announce=2$/m);
    assert.match(printed, /^nft add rule ip switchyard_dsr prerouting ip dscp 10 ip daddr set 10\.77\.0\.100 notrack/m);
    assert.deepEqual(loAddrs(), ['127.0.0.1/8']);
    assert.equal(sysctls(SERVER), '0 0');
  });

  test('--apply: VIP on lo, ARP sysctls in this namespace only, L3DSR rule restores the VIP; applying again changes nothing', async () => {
    const hostBefore = execFileSync('sysctl', ['-n', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce'], { encoding: 'utf8' });
    assert.equal(await udpReachesVip(10 << 2, 9999), false, 'reached the VIP before any setup');
    cli('--vip', VIP, '--l3dsr', '10', '--apply');
    assert.deepEqual(loAddrs(), ['127.0.0.1/8', `${VIP}/32`]);
    assert.equal(sysctls(SERVER), '1 2');
    assert.equal(execFileSync('sysctl', ['-n', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce'], { encoding: 'utf8' }), hostBefore, 'the host namespace changed');
    assert.equal(await udpReachesVip(10 << 2, 9999), true, 'a datagram marked DSCP 10 did not reach the VIP');
    assert.equal(await udpReachesVip(0, 9998), false, 'an unmarked datagram was rewritten to the VIP');
    assert.equal(await udpReachesVip(11 << 2, 9997), false, 'another DSCP was rewritten to the VIP');
    const again = cli('--vip', VIP, '--l3dsr', '10', '--apply');
    assert.equal(again.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length, 0, `applying twice ran commands:\n${again}`);
    assert.deepEqual(loAddrs(), ['127.0.0.1/8', `${VIP}/32`]);
    assert.equal((sh(SERVER, ['nft', 'list', 'ruleset']).match(/switchyard-dsr 10\.77\.0\.100/g) ?? []).length, 1);
  });

  test('--remove undoes it: VIP, rule and table gone, sysctls back to what they were', async () => {
    cli('--vip', VIP, '--l3dsr', '10', '--remove', '--apply');
    assert.deepEqual(loAddrs(), ['127.0.0.1/8']);
    assert.equal(sysctls(SERVER), '0 0');
    assert.doesNotMatch(sh(SERVER, ['nft', 'list', 'ruleset']), /switchyard_dsr/);
    assert.equal(await udpReachesVip(10 << 2, 9996), false);
    // Removing what is not there is a no-op, not an error.
    const again = cli('--vip', VIP, '--remove', '--apply');
    assert.match(again, /# in place: 10\.77\.0\.100\/32 is not on lo/);
  });

  test('bad arguments are refused with the reason', () => {
    for (const [args, reason] of [
      [['--vip', '2001:db8::1'], /IPv4/],
      [['--vip', VIP, '--l3dsr', '64'], /DSCP value 0\.\.63/],
      [[], /--vip ADDR is required/],
    ] as const) {
      assert.throws(() => execFileSync(process.execPath, [CLI_PATH, 'dsr-server', ...args], { encoding: 'utf8', stdio: 'pipe' }), (err: { status: number; stderr: string }) => err.status === 2 && reason.test(err.stderr));
    }
  });
});
