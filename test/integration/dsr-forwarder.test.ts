// Issue 13 item 2, the packet path: a DsrForwarder (native/dsr_*.cc) in the
// balancer namespace of a lab (test/helpers/netns.ts: a client, the balancer
// and three servers on one bridge, torn down even on failure), driven over
// IPC. Real clients (curl, node http) in the client namespace talk to the VIP;
// the servers answer them directly. Needs root (ip netns, AF_PACKET); under
// CI=true a missing privilege fails the file instead of skipping it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DsrLab, labUnavailable, type DsrDriver } from '../helpers/netns.js';
import type { DsrCounters } from '../../src/native/dsr.js';

const unavailable = labUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`dsr-forwarder tests cannot run (${unavailable}): CI must run them as root`);

const STREAMS = fileURLToPath(new URL('../helpers/stream-clients.ts', import.meta.url));
const RAW_FRAMES = fileURLToPath(new URL('../helpers/raw-frames.py', import.meta.url));
const CHECKSUMS = fileURLToPath(new URL('../helpers/tcp-checksums.py', import.meta.url));
const HEALTHY = 1;
const DRAINED = 2;

type Method = 'l2' | 'l3';

describe('DSR forwarder', { skip: unavailable }, () => {
  let lab: DsrLab;
  let fw: DsrDriver;

  before(async () => {
    lab = await DsrLab.create({ servers: 3 });
    fw = await lab.dsrDriver();
  });
  after(async () => {
    await fw?.stop();
    lab?.teardown();
  });

  const specs = (which = lab.servers) =>
    which.map((s) => ({ identity: `${s.ip}:80`, ip: s.ip, mac: s.mac, weight: 1, regionIndex: lab.servers.indexOf(s) }));
  const open = async (method: Method, extra: object = {}, servers = specs()) => {
    await fw.call('close');
    // The client forgets the VIP's MAC: each forwarder must answer ARP itself.
    lab.exec(lab.client, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    await fw.call('open', {
      options: { interface: 'eth0', vip: lab.vip, ports: [80], method, dscp: lab.dscp, threads: 2, flowTableSize: 4096, flowIdleMs: 60_000, region: null, ...extra },
      servers,
    });
  };
  const counters = () => fw.call<DsrCounters>('counters');
  const curl = (...args: string[]) => lab.exec(lab.client, ['curl', '-sS', '-m', '10', ...args]);
  const names = (n: number) => Array.from({ length: n }, () => curl(`http://${lab.vip}/`));

  /** Long-lived streams from the client, each on its own connection. */
  async function streams(n: number) {
    const child: ChildProcess = lab.node(lab.client, STREAMS, [`http://${lab.vip}/stream`, String(n)]);
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`stream client exited ${code}`)));
      child.once('message', () => resolve());
    });
    let id = 0;
    type Status = { opened: number; streams: { names: string[]; lines: number; error: string | null; ended: boolean }[] };
    const status = () =>
      new Promise<Status>((resolve) => {
        const my = ++id;
        const on = (m: { id: number } & Status) => {
          if (m.id !== my) return;
          child.off('message', on);
          resolve(m);
        };
        child.on('message', on);
        child.send({ id: my, op: 'status' });
      });
    const deadline = Date.now() + 15_000;
    while ((await status()).streams.some((s) => s.lines < 2)) {
      if (Date.now() > deadline) throw new Error(`streams did not start: ${JSON.stringify(await status())}`);
      await sleep(100);
    }
    return { status, stop: () => child.kill() };
  }

  for (const method of ['l2', 'l3'] as const) {
    test(`${method}: answers ARP for the VIP and serves HTTP through the servers; responses bypass the balancer`, async () => {
      await open(method);
      const seen = new Set(names(30));
      assert.ok([...seen].every((n) => /^s[0-2]$/.test(n)), `unexpected answers ${[...seen]}`);
      assert.ok(seen.size >= 2, `30 connections all went to ${[...seen]}`);

      // A 2 MB POST arrives whole, and a 5 MB response comes back without touching the balancer.
      const before = lab.frames(lab.balancer);
      const [answer, local] = lab
        .exec(lab.client, ['sh', '-c', `f=$(mktemp); head -c 2000000 /dev/urandom > $f; curl -sS -m 20 --data-binary @$f http://${lab.vip}/; echo; sha256sum < $f; rm -f $f`])
        .split('\n');
      assert.match(answer!, /^s[0-2] 2000000 [0-9a-f]{64}$/);
      assert.equal(answer!.split(' ')[2], local!.split(' ')[0], 'the POST body arrived changed');
      const size = lab.exec(lab.client, ['sh', '-c', `curl -sS -m 20 http://${lab.vip}/big?n=5000000 | wc -c`]).trim();
      assert.equal(size, '5000000');
      const after = lab.frames(lab.balancer);
      const rx = after.rxBytes - before.rxBytes;
      // The balancer saw the 2 MB POST and the ACKs of the 5 MB response, never the response itself.
      assert.ok(rx < 2_000_000 + 500_000, `balancer received ${rx} bytes: replies went through it`);
      assert.ok(rx > 2_000_000, `balancer received only ${rx} bytes of a 2 MB POST`);

      const c = await counters();
      assert.ok(c.arpReplies >= 1, 'no ARP reply for the VIP');
      assert.ok(c.forwardedPackets > 0 && c.forwardedBytes > 2_000_000, JSON.stringify(c));
      assert.equal(c.drops.tx_error, 0);
      assert.equal(c.servers.length, 3);
      assert.ok(c.flowsCreated >= 32, `flowsCreated ${c.flowsCreated}`);
    });

    test(`${method}: a flow stays on its server; removing a server breaks only its own flows, adding one breaks none`, async () => {
      await open(method);
      const st = await streams(12);
      const first = await st.status();
      const home = first.streams.map((s) => s.names);
      assert.ok(home.every((n) => n.length === 1), `a stream saw several servers: ${JSON.stringify(home)}`);
      const on = (name: string) => home.flatMap((n, i) => (n[0] === name ? [i] : []));
      const victim = ['s0', 's1', 's2'].sort((a, b) => on(b).length - on(a).length)[0]!;
      assert.ok(on(victim).length > 0);

      await fw.call('setServers', { servers: specs(lab.servers.filter((s) => s.name !== victim)), region: null });
      await sleep(1500);
      const removed = await st.status();
      removed.streams.forEach((s, i) => {
        if (home[i]![0] === victim) {
          assert.ok(s.error !== null || s.ended, `stream ${i} on the removed ${victim} survived: ${JSON.stringify(s)}`);
        } else {
          assert.equal(s.error, null, `stream ${i} on ${home[i]} broke when ${victim} was removed`);
          assert.ok(s.lines > first.streams[i]!.lines + 5, `stream ${i} stalled`);
          assert.deepEqual(s.names, home[i]);
        }
      });

      // Adding it back: new flows may go to it, the live ones stay where they are.
      await fw.call('setServers', { servers: specs(), region: null });
      await sleep(1500);
      const added = await st.status();
      added.streams.forEach((s, i) => {
        if (home[i]![0] === victim) return;
        assert.equal(s.error, null, `stream ${i} broke when ${victim} came back`);
        assert.ok(s.lines > removed.streams[i]!.lines + 5, `stream ${i} stalled after the add`);
        assert.deepEqual(s.names, home[i]);
      });
      assert.ok(names(20).includes(victim), `${victim} got no new flow after it came back`);
      st.stop();
    });
  }

  test('a server the region marks unhealthy or drained gets no new flows; its live flows stay', async () => {
    const region = await fw.call<string>('region', { identities: specs().map((s) => s.identity) });
    await open('l2', { region });
    const st = await streams(9);
    const home = (await st.status()).streams.map((s) => s.names[0]!);
    await fw.call('setState', { server: 1, bits: 0 }); // s1 fails its health check
    await fw.call('setState', { server: 2, bits: HEALTHY | DRAINED }); // s2 drained
    const seen = new Set(names(20));
    assert.deepEqual([...seen], ['s0'], `new flows went to ${[...seen]}`);
    await sleep(500);
    const later = await st.status();
    later.streams.forEach((s, i) => assert.equal(s.error, null, `live stream ${i} on ${home[i]} broke when its server became ineligible`));
    await fw.call('setState', { server: 0, bits: 0 });
    assert.match(lab.exec(lab.client, ['sh', '-c', `curl -sS -m 2 http://${lab.vip}/ || echo failed`]), /failed/);
    assert.ok((await counters()).drops.no_server! > 0);
    for (const i of [0, 1, 2]) await fw.call('setState', { server: i, bits: HEALTHY });
    assert.ok(new Set(names(20)).size >= 2);
    st.stop();
  });

  test('a full flow table forwards new flows by the hash alone, counted as untracked; idle flows expire', async () => {
    // One thread, 8 entries: the 9th live connection finds no room.
    await open('l2', { threads: 1, flowTableSize: 8 });
    const st = await streams(12);
    await sleep(300);
    const c = await counters();
    assert.equal(c.flows, 8, JSON.stringify(c));
    assert.ok(c.untracked >= 4, `untracked ${c.untracked}`);
    const later = await st.status();
    assert.ok(later.streams.every((s) => s.error === null && s.names.length === 1), JSON.stringify(later));
    st.stop();

    await open('l2', { flowIdleMs: 300 });
    names(5);
    const deadline = Date.now() + 5000;
    let d = await counters();
    while (d.flows > 0 && Date.now() < deadline) {
      await sleep(100);
      d = await counters();
    }
    assert.equal(d.flows, 0, JSON.stringify(d));
    assert.ok(d.flowsExpired >= 5, `flowsExpired ${d.flowsExpired}`);
  });

  test('setServers with invalid servers throws and changes nothing', async () => {
    await open('l2');
    await assert.rejects(fw.call('setServers', { servers: [specs()[0], specs()[0]], region: null }), /duplicate identity/);
    await assert.rejects(fw.call('setServers', { servers: [{ ...specs()[0]!, ip: '10.0.0.300' }], region: null }), /ip must be an IPv4 address/);
    await assert.rejects(fw.call('setServers', { servers: specs(), region: '/switchyard-no-such-region' }), /cannot attach region/);
    assert.ok(new Set(names(20)).size >= 2);
    assert.equal((await counters()).servers.length, 3);
  });

  test('l3: forwarded segments carry the DSCP and correct checksums (full, or the pseudo-header sum of CHECKSUM_PARTIAL frames)', async () => {
    // One thread: two would reorder the raw SYNs, and the capture ends at the last one.
    await open('l3', { threads: 1 });
    const s0 = lab.servers[0]!;
    // Only s0: every segment goes where the capture is.
    await fw.call('setServers', { servers: specs([s0]), region: null });
    // The capture ends at the last raw SYN (source port 40019), or after 30 s.
    const cap = lab.spawnIn(s0, 'python3', [CHECKSUMS, 'eth0', '80', '40019', '30', String(lab.dscp)]);
    let out = '';
    cap.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    while (!out.includes('ready')) await sleep(20);
    // Small segments from the client's stack (offloaded: partial), a POST (GSO), and raw SYNs with full checksums.
    names(5);
    lab.exec(lab.client, ['sh', '-c', `head -c 300000 /dev/urandom | curl -sS -m 20 --data-binary @- http://${lab.vip}/`]);
    const syns = Array.from({ length: 20 }, (_, i) => frame({ sport: 40000 + i, flags: 0x02, tos: 0 }));
    lab.exec(lab.client, ['python3', RAW_FRAMES, 'eth0'], syns.map((f) => f.toString('hex')).join('\n'));
    await new Promise((r) => cap.once('exit', r));
    const result = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { full_ok: number; partial_ok: number; bad: string[] };
    assert.deepEqual(result.bad, []);
    assert.ok(result.full_ok >= 20, `full checksums checked: ${result.full_ok}`);
    assert.ok(result.full_ok + result.partial_ok > 40, JSON.stringify(result));
  });

  // Frame builders for the garbage test: Ethernet to the balancer's MAC, IPv4 to the VIP.
  function frame(o: { sport?: number; dport?: number; flags?: number; tos?: number; proto?: number; frag?: number; ipOptions?: number; ihl?: number; version?: number; totLen?: number; doff?: number; payload?: Buffer; truncate?: number; dst?: string }): Buffer {
    const payload = o.payload ?? Buffer.alloc(0);
    const optLen = (o.ipOptions ?? 0) * 4;
    const proto = o.proto ?? 6;
    let l4: Buffer;
    if (proto === 6) {
      l4 = Buffer.alloc(20 + payload.length);
      l4.writeUInt16BE(o.sport ?? 43210, 0);
      l4.writeUInt16BE(o.dport ?? 80, 2);
      l4.writeUInt32BE(1, 4);
      l4[12] = (o.doff ?? 5) << 4;
      l4[13] = o.flags ?? 0x02;
      l4.writeUInt16BE(65535, 14);
      payload.copy(l4, 20);
    } else {
      l4 = Buffer.concat([Buffer.from([0x12, 0x34, 0x00, 0x50, 0, 8 + payload.length, 0, 0]), payload]);
    }
    const ip = Buffer.alloc(20 + optLen);
    ip[0] = ((o.version ?? 4) << 4) | (o.ihl ?? 5 + optLen / 4);
    ip[1] = o.tos ?? 0;
    ip.writeUInt16BE(o.totLen ?? ip.length + l4.length, 2);
    ip.writeUInt16BE(o.frag ?? 0x4000, 6);
    ip[8] = 64;
    ip[9] = proto;
    for (let i = 20; i < ip.length; i++) ip[i] = 1; // NOP options
    Buffer.from(lab.client.ip.split('.').map(Number)).copy(ip, 12);
    Buffer.from((o.dst ?? lab.vip).split('.').map(Number)).copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
    if (proto === 6) {
      const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 6, l4.length >> 8, l4.length & 0xff]), l4]);
      l4.writeUInt16BE(checksum(pseudo), 16);
    }
    const eth = Buffer.concat([mac(lab.balancer.mac), mac(lab.client.mac), Buffer.from([0x08, 0x00]), ip, l4]);
    return o.truncate === undefined ? eth : eth.subarray(0, o.truncate);
  }

  test('garbage frames for the VIP are counted and dropped, never crash it; every frame is accounted for', async () => {
    await open('l2');
    const before = await counters();
    const cases: [string, Buffer[]][] = [
      // (Frames too short to hold the destination address never get past the socket's filter.)
      ['malformed', [frame({ ihl: 4 }), frame({ version: 6 }), frame({ totLen: 1000 }), frame({ totLen: 10 }), frame({ doff: 2 }), frame({ doff: 15 }), frame({ ipOptions: 10, truncate: 40 })]],
      ['fragment', [frame({ frag: 0x2000 }), frame({ frag: 0x0010 }), frame({ frag: 0x2000 | 0x0100, proto: 17 })]],
      ['not_tcp', [frame({ proto: 17 }), frame({ proto: 1 }), frame({ proto: 47 })]],
      ['port', [frame({ dport: 81 }), frame({ dport: 443 })]],
    ];
    // Valid segments with IP options are forwarded, not dropped.
    const forwardable = [frame({ ipOptions: 3, flags: 0x10 }), frame({ ipOptions: 10, flags: 0x10 })];
    const all = [...cases.flatMap(([, f]) => f), ...forwardable];
    // And random damage: bit flips in valid segments, and random headers.
    const random = Array.from({ length: 2000 }, (_, i) => {
      const f = frame({ sport: 20000 + i, flags: 0x10, payload: randomBytes(i % 50) });
      // Random IPv4 header and payload, but to the VIP (anything else never gets past the socket's filter).
      if (i % 2) return Buffer.concat([f.subarray(0, 14), randomBytes(16), f.subarray(30, 34), randomBytes(i % 60)]);
      for (let k = 0; k < 4; k++) f[14 + ((i * 7 + k * 13) % (f.length - 14))]! ^= 1 << k;
      return f;
    });
    const sent = lab.exec(lab.client, ['python3', RAW_FRAMES, 'eth0'], [...all, ...random].map((f) => f.toString('hex')).join('\n'));
    assert.equal(Number(sent), all.length + random.length);
    await sleep(500);
    const c = await counters();
    // The fixed cases are counted under their reason (the random ones add to these counts too).
    for (const [reason, frames] of cases) assert.ok(c.drops[reason]! - before.drops[reason]! >= frames.length, `${reason}: ${c.drops[reason]! - before.drops[reason]!} < ${frames.length}`);
    assert.ok(c.forwardedPackets - before.forwardedPackets >= forwardable.length);
    // rx_overflow frames never reached the forwarder, so they are not in rxPackets.
    const total = (x: DsrCounters) => x.passed + x.forwardedPackets + x.arpReplies + Object.entries(x.drops).reduce((a, [k, v]) => a + (k === 'rx_overflow' ? 0 : v), 0);
    assert.equal(c.rxPackets - before.rxPackets, total(c) - total(before), `frames not accounted for: ${JSON.stringify(c)}`);
    assert.ok(c.rxPackets - before.rxPackets >= all.length + random.length / 2, `the forwarder read ${c.rxPackets - before.rxPackets} frames`);
    // Still serving.
    assert.match(curl(`http://${lab.vip}/`), /^s[0-2]$/);

    // Frames for the balancer's own address reach its kernel but are never copied to the forwarder.
    const quiet = await counters();
    const nic = lab.frames(lab.balancer);
    const own = Array.from({ length: 200 }, (_, i) => frame({ dst: lab.balancer.ip, sport: 30000 + i }).toString('hex'));
    lab.exec(lab.client, ['python3', RAW_FRAMES, 'eth0'], own.join('\n'));
    await sleep(300);
    assert.ok(lab.frames(lab.balancer).rxPackets - nic.rxPackets >= 200);
    assert.ok((await counters()).rxPackets - quiet.rxPackets < 10, 'frames for another address were copied to the forwarder');
  });

  test('two forwarders with several threads on one interface keep their frames apart (own fanout groups)', async () => {
    await open('l2', { threads: 2 });
    const other = await lab.dsrDriver();
    try {
      const vip2 = `${lab.subnet}.101`;
      await other.call('open', { options: { interface: 'eth0', vip: vip2, ports: [80], method: 'l2', threads: 2, flowTableSize: 100, flowIdleMs: 1000, region: null }, servers: [] });
      const before = await counters();
      const seen = names(20);
      assert.ok(seen.every((n) => /^s[0-2]$/.test(n)), `answers: ${seen}`);
      const mine = await counters();
      const theirs = await other.call<DsrCounters>('counters');
      // Every segment of the 20 connections reached this forwarder; the other one saw them only as not its VIP.
      assert.ok(mine.forwardedPackets - before.forwardedPackets >= 20 * 4, JSON.stringify(mine));
      assert.equal(theirs.forwardedPackets, 0);
      assert.equal(theirs.drops.no_server, 0, 'frames for the first VIP reached the second forwarder as its own');
    } finally {
      await other.stop();
    }
  });

  test('its interface going down and up, or away: the packet threads wait without spinning; it serves again', async () => {
    const cpu = (pid: number) =>
      lab
        .exec(lab.balancer, ['sh', '-c', `cat /proc/${pid}/task/*/stat`])
        .split('\n')
        .filter((l) => l.includes('(dsr-fwd-'))
        .reduce((sum, l) => {
          const f = l.slice(l.lastIndexOf(')') + 2).split(' ');
          return sum + Number(f[11]) + Number(f[12]);
        }, 0);
    // Clock ticks (usually 100 a second) the packet threads use in 1.5 s after `change`.
    const idleCost = async (pid: number, change: string[]) => {
      const before = cpu(pid);
      lab.exec(lab.balancer, change);
      await sleep(1500);
      return cpu(pid) - before;
    };

    await open('l2', { threads: 2 });
    assert.match(curl(`http://${lab.vip}/`), /^s[0-2]$/);
    const down = await idleCost(fw.pid, ['ip', 'link', 'set', 'eth0', 'down']);
    lab.exec(lab.balancer, ['ip', 'link', 'set', 'eth0', 'up']);
    assert.ok(down < 50, `the packet threads used ${down} ticks in 1.5 s with the interface down`);
    const deadline = Date.now() + 10_000;
    let answer = '';
    while (!/^s[0-2]$/.test(answer) && Date.now() < deadline) {
      answer = lab.exec(lab.client, ['sh', '-c', `curl -sS -m 2 http://${lab.vip}/ 2>/dev/null || true`]);
    }
    assert.match(answer, /^s[0-2]$/, 'no answer after the interface came back');

    // A second forwarder on an interface that is then deleted.
    lab.exec(lab.balancer, ['ip', 'link', 'add', 'gone0', 'type', 'veth', 'peer', 'name', 'gone1']);
    lab.exec(lab.balancer, ['ip', 'link', 'set', 'gone0', 'up']);
    const other = await lab.dsrDriver();
    try {
      await other.call('open', { options: { interface: 'gone0', vip: `${lab.subnet}.102`, ports: [80], method: 'l2', threads: 2, flowTableSize: 100, flowIdleMs: 1000, region: null }, servers: [] });
      const gone = await idleCost(other.pid, ['ip', 'link', 'del', 'gone0']);
      assert.ok(gone < 50, `the packet threads used ${gone} ticks in 1.5 s after their interface was deleted`);
    } finally {
      await other.stop();
    }
  });

  test('open fails with a specific reason', async () => {
    await fw.call('close');
    const base = { interface: 'eth0', vip: lab.vip, ports: [80], method: 'l2', threads: 1, flowTableSize: 100, flowIdleMs: 1000, region: null };
    const fails = async (options: object, servers: object[], pattern: RegExp) => {
      const err = await fw.call('open', { options, servers }).then(
        () => assert.fail(`opened with ${JSON.stringify(options)}`),
        (e: Error & { code?: string }) => e,
      );
      assert.equal(err.code, 'SWY_ERR_DSR_FORWARDER');
      assert.match(err.message, pattern);
    };
    await fails({ ...base, interface: 'nosuch0' }, specs(), /no such interface: nosuch0/);
    await fails({ ...base, vip: lab.balancer.ip }, specs(), /VIP is an address of this host \(on eth0\)/);
    await fails(base, [{ ...specs()[0]!, mac: '02:00:00:00:00' }], /servers\[0\].*mac must be a MAC address/);
    await fails({ ...base, method: 'l3' }, specs(), /method l3 needs dscp 0\.\.63/);
    await fails(base, [specs()[0]!, specs()[0]!], /duplicate identity/);
    await fails({ ...base, region: '/switchyard-no-such-region' }, specs(), /cannot attach region/);
  });
});

function mac(s: string): Buffer {
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}

/** The Internet checksum (RFC 1071) of `b`. */
function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
