// A DNS server that answers whatever the test says, over UDP and TCP on a
// loopback port: the hostile answers dnsmasq will not give (thousands of
// records, any TTL, SRV port 0, a different answer every query, silence).
// Written by hand because it must send what a well-behaved server never
// would; it speaks only the wire format of A, AAAA and SRV answers
// (RFC 1035 4.1, RFC 2782), which is small.
import dgram from 'node:dgram';
import net from 'node:net';
import { freePort } from '../../bench/lib/ports.js';

export type DnsRecord =
  | { type: 'A' | 'AAAA'; address: string; ttl?: number }
  | { type: 'SRV'; target: string; port: number; priority?: number; weight?: number; ttl?: number };

/** The records for a query (name lower-cased), or 'silent': no reply at all (a resolver that times out). */
export type Answerer = (name: string, type: 'A' | 'AAAA' | 'SRV' | 'other') => DnsRecord[] | 'silent';

export interface DnsServer {
  /** "127.0.0.1:PORT", for `resolvers`. */
  address: string;
  /** Queries received, by "TYPE name". */
  queries: Map<string, number>;
  stop(): Promise<void>;
}

const TYPES: Record<number, 'A' | 'AAAA' | 'SRV'> = { 1: 'A', 28: 'AAAA', 33: 'SRV' };
const CODES = { A: 1, AAAA: 28, SRV: 33 } as const;

export async function startDnsServer(answer: Answerer): Promise<DnsServer> {
  const port = await freePort(new Set([53, 5353]));
  const queries = new Map<string, number>();
  const reply = (query: Buffer): Buffer | undefined => {
    const q = parseQuestion(query);
    if (q === undefined) return undefined;
    const type = TYPES[q.type] ?? 'other';
    queries.set(`${type} ${q.name}`, (queries.get(`${type} ${q.name}`) ?? 0) + 1);
    const records = answer(q.name, type);
    if (records === 'silent') return undefined;
    const answers = records.filter((r) => r.type === type).map((r) => encodeRecord(r));
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (answers.length === 0 && records.length === 0 ? 3 : 0), 2); // QR, AA, RD; NXDOMAIN when nothing
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    return Buffer.concat([header, q.section, ...answers]);
  };

  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    const out = reply(msg);
    if (out === undefined) return;
    // Over 512 bytes (no EDNS taken into account): truncated, the client asks again over TCP.
    if (out.length > 512) {
      const tc = Buffer.from(out.subarray(0, 12 + parseQuestion(msg)!.section.length));
      tc.writeUInt16BE(tc.readUInt16BE(2) | 0x0200, 2);
      tc.writeUInt16BE(0, 6);
      udp.send(tc, rinfo.port, rinfo.address);
    } else udp.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, '127.0.0.1', () => resolve());
  });

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const out = reply(Buffer.from(msg));
        if (out === undefined) continue;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length);
        s.write(Buffer.concat([len, out]));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });

  return {
    address: `127.0.0.1:${port}`,
    queries,
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise((resolve) => tcp.close(resolve)), new Promise<void>((resolve) => udp.close(() => resolve()))]);
    },
  };
}

/** The question of a query: its name (lower case), type, and the section's bytes (copied into the reply). */
function parseQuestion(msg: Buffer): { name: string; type: number; section: Buffer } | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) < 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length && msg[at] !== 0) {
    const len = msg[at]!;
    if (len > 63) return undefined; // queries carry no compression
    labels.push(msg.toString('latin1', at + 1, at + 1 + len));
    at += 1 + len;
  }
  if (at + 5 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(at + 1), section: msg.subarray(12, at + 5) };
}

function encodeName(name: string): Buffer {
  return Buffer.concat([...name.split('.').filter((l) => l !== '').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}

/** One answer record, its owner name a pointer to the question's (offset 12). */
function encodeRecord(r: DnsRecord): Buffer {
  let data: Buffer;
  if (r.type === 'SRV') {
    const fixed = Buffer.alloc(6);
    fixed.writeUInt16BE(r.priority ?? 0, 0);
    fixed.writeUInt16BE(r.weight ?? 0, 2);
    fixed.writeUInt16BE(r.port, 4);
    data = Buffer.concat([fixed, encodeName(r.target)]);
  } else data = r.type === 'A' ? Buffer.from(r.address.split('.').map(Number)) : ipv6Bytes(r.address);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(CODES[r.type], 2);
  head.writeUInt16BE(1, 4); // IN
  head.writeUInt32BE(r.ttl ?? 1, 6);
  head.writeUInt16BE(data.length, 10);
  return Buffer.concat([head, data]);
}

function ipv6Bytes(address: string): Buffer {
  const [left, right] = address.split('::') as [string, string | undefined];
  const l = left === '' ? [] : left.split(':');
  const r = right === undefined || right === '' ? [] : right.split(':');
  const groups = right === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
