// The packets per second one DSR forwarder thread handles (issue 13, for the
// note): a lab of network namespaces (test/helpers/netns.ts), a DsrForwarder
// with one packet thread in the balancer namespace, and Python AF_PACKET
// senders in the client namespace flooding it with TCP ACK segments to the
// VIP over `--flows` connections (each flow is tracked: the first segment
// creates its entry). The servers drop everything at ingress (an nftables netdev chain), so only
// the forwarder and the senders use CPU.
//
// Printed per method and round: frames sent, frames forwarded per second of
// wall clock, the forwarder thread's CPU seconds (from /proc, the thread is
// named dsr-fwd-0) and forwarded frames per CPU second of that thread, which
// is the figure that survives a loaded machine (wall-clock rates depend on how
// much CPU the senders get). The user share shows how much of that is the
// forwarder's own code; the rest is the kernel: copying frames in and out of
// the socket and, on veth, the bridge and the receiving side run in the
// sending thread's context. With --perf, instructions per frame from
// `perf stat` on the thread.
//
//   node --import tsx bench/dsr-forwarder.ts [--rounds N] [--duration S] [--senders N] [--flows N] [--methods l2,l3] [--perf]
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DsrCounters } from '../src/native/dsr.js';
import { DsrLab, labUnavailable } from '../test/helpers/netns.js';

const FLOOD = fileURLToPath(new URL('./lib/raw-flood.py', import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    senders: { type: 'string', default: '2' },
    flows: { type: 'string', default: '4096' },
    methods: { type: 'string', default: 'l2,l3' },
    perf: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.duration);
const senders = Number(values.senders);
const flows = Number(values.flows);

const why = labUnavailable();
if (why) {
  console.error(`bench/dsr-forwarder.ts: ${why}`);
  process.exit(1);
}

const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** The forwarder thread's CPU seconds (utime + stime of /proc/PID/task/TID/stat). */
function threadCpu(pid: number): { tid: number; seconds: number; user: number } {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() !== 'dsr-fwd-0') continue;
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { tid: Number(tid), seconds: (Number(fields[11]) + Number(fields[12])) / TICKS, user: Number(fields[11]) / TICKS };
  }
  throw new Error('no dsr-fwd-0 thread in the driver process');
}

function flood(lab: DsrLab): Promise<number> {
  const c = lab.client;
  const child = lab.spawnIn(c, 'python3', [FLOOD, 'eth0', lab.balancer.mac, c.mac, c.ip, lab.vip, '80', String(flows), String(seconds)]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.once('exit', () => resolve(Number(out.trim()) || 0)));
}

function perfInstructions(tid: number): () => Promise<number | null> {
  const child = spawn('perf', ['stat', '-x,', '-e', 'instructions', '-t', String(tid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return () =>
    new Promise((resolve) => {
      child.once('exit', () => {
        const n = Number(err.split('\n').find((l) => l.includes('instructions'))?.split(',')[0]);
        resolve(Number.isFinite(n) && n > 0 ? n : null);
      });
      child.kill('SIGINT');
    });
}

const lab = await DsrLab.create({ servers: 2 });
try {
  for (const s of lab.servers) {
    lab.exec(s, ['nft', '-f', '-'], 'table netdev sink {\n chain in {\n type filter hook ingress device eth0 priority 0; policy drop;\n }\n}\n');
  }
  const fw = await lab.dsrDriver();
  const driverPid = fw.pid;
  const servers = lab.servers.map((s, i) => ({ identity: `${s.ip}:80`, ip: s.ip, mac: s.mac, weight: 1, regionIndex: i }));
  console.log(`DSR forwarder, one packet thread: ${senders} Python sender(s) x ${seconds} s, ${flows} flows, ${rounds} rounds; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log('method  round  sent/s      forwarded/s  fwd CPU s  user %  frames per fwd CPU s  instr/frame  drops');
  for (const method of values.methods.split(',') as ('l2' | 'l3')[]) {
    await fw.call('close');
    await fw.call('open', {
      options: { interface: 'eth0', vip: lab.vip, ports: [80], method, dscp: lab.dscp, threads: 1, flowTableSize: 1 << 20, flowIdleMs: 60_000, region: null },
      servers,
    });
    const perRound: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      const cpu0 = threadCpu(driverPid);
      const c0 = await fw.call<DsrCounters>('counters');
      const stopPerf = values.perf ? perfInstructions(cpu0.tid) : null;
      const sent = (await Promise.all(Array.from({ length: senders }, () => flood(lab)))).reduce((a, b) => a + b, 0);
      await new Promise((res) => setTimeout(res, 300));
      const instructions = stopPerf ? await stopPerf() : null;
      const cpu1 = threadCpu(driverPid);
      const c1 = await fw.call<DsrCounters>('counters');
      const forwarded = c1.forwardedPackets - c0.forwardedPackets;
      const cpu = cpu1.seconds - cpu0.seconds;
      const drops = Object.entries(c1.drops).map(([k, v]) => [k, v - (c0.drops[k] ?? 0)] as const).filter(([, v]) => v > 0);
      perRound.push(forwarded / cpu);
      console.log(
        `${method.padEnd(6)}  ${String(r).padEnd(5)}  ${(sent / seconds).toFixed(0).padEnd(10)}  ${(forwarded / seconds).toFixed(0).padEnd(11)}  ${cpu.toFixed(2).padEnd(9)}  ${((100 * (cpu1.user - cpu0.user)) / cpu).toFixed(0).padEnd(6)}  ${(forwarded / cpu).toFixed(0).padEnd(20)}  ${instructions ? (instructions / forwarded).toFixed(0) : '-'}`.padEnd(11) +
          `  ${drops.map(([k, v]) => `${k}=${v}`).join(' ') || '0'}`,
      );
    }
    perRound.sort((a, b) => a - b);
    console.log(`${method}: median ${perRound[Math.floor(perRound.length / 2)]!.toFixed(0)} frames per forwarder-thread CPU second`);
  }
  await fw.stop();
} finally {
  lab.teardown();
}
