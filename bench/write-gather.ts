// CPU per send of a head (string) and a body (Buffer) to a loopback socket,
// the way the data path sends one read's worth: corked (Node's buffered
// entries, then one writev; what Switchyard does) against the two ways of
// making it one plain write: the pieces copied into one Buffer, or the body
// turned into a latin1 string and appended to the head. Interleaved in the
// same run; the peer is another process that reads and discards, so this
// process's CPU is the sender's: the JS bookkeeping plus the syscall.
// (Issue 11 item 7: the copy measured no cheaper than cork and writev, so
// the data path keeps corking; see bench/README.md, "What was tried".)
//   node --import tsx bench/write-gather.ts [--sends 20000] [--rounds 5]
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { sends: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '5' } } });
const SENDS = Number(values.sends);
const ROUNDS = Number(values.rounds);

const sink = spawn(process.execPath, ['-e', "require('net').createServer((s) => s.resume()).listen(0, '127.0.0.1', function () { console.log(this.address().port); })"], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const port = Number(await new Promise<string>((resolve) => sink.stdout!.once('data', (d: Buffer) => resolve(d.toString()))));
const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
await once(socket, 'connect');

const head = `POST /post HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Request-Id: 0123456789abcdef\r\n\r\n`;

/** The head and body copied into one Buffer: one write instead of cork, two buffered writes and a writev. */
function joined(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, 'latin1');
  body.copy(out, head.length);
  return out;
}

const ways: Record<string, (body: Buffer) => void> = {
  cork: (body) => {
    socket.cork();
    socket.write(head, 'latin1');
    socket.write(body);
    socket.uncork();
  },
  string: (body) => {
    socket.write(head + body.toString('latin1'), 'latin1');
  },
  gather: (body) => {
    socket.write(joined(body));
  },
};

/** CPU µs per send; waits for the socket to drain between batches so no queue builds up. */
async function measure(send: (body: Buffer) => void, body: Buffer): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < SENDS; i++) {
    send(body);
    if (socket.writableLength > 1 << 20) await once(socket, 'drain');
  }
  if (socket.writableLength > 0) await once(socket, 'drain');
  const used = process.cpuUsage(start);
  return (used.user + used.system) / SENDS;
}

console.log(`${SENDS} sends per cell, ${ROUNDS} rounds interleaved; load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log('body      cork µs   copied µs   copied÷cork   string µs (÷cork)');
for (const size of [100, 4096, 12 * 1024, 64 * 1024]) {
  const body = Buffer.alloc(size, 'x');
  const results: Record<string, number[]> = { cork: [], gather: [], string: [] };
  for (let r = 0; r < ROUNDS; r++) for (const name of r % 2 === 0 ? ['cork', 'gather', 'string'] : ['string', 'gather', 'cork']) results[name]!.push(await measure(ways[name]!, body));
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const c = median(results.cork!);
  const g = median(results.gather!);
  const t = median(results.string!);
  console.log(`${String(size).padEnd(9)} ${c.toFixed(2).padStart(7)}   ${g.toFixed(2).padStart(9)}   ${(g / c).toFixed(2).padStart(11)}   ${t.toFixed(2).padStart(9)} (${(t / c).toFixed(2)})`);
}
socket.destroy();
sink.kill();
