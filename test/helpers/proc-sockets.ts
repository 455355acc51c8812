// What the kernel says about a process's sockets (/proc), for tests that must
// hold a connection in a precise state (accepted by a worker; a worker's
// listener closed) without relying on anything Switchyard reports.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { until } from './until.js';

/** TCP states as /proc/net/tcp writes them. */
export const ESTABLISHED = '01';
export const LISTEN = '0A';

/** Socket inodes in /proc/net/tcp with local port `port` and, when given, this state and peer port. */
export function inodes(port: number, state?: string, peerPort?: number): Set<string> {
  const hex = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (!f[1]?.endsWith(hex(port))) continue;
    if (state !== undefined && f[3] !== state) continue;
    if (peerPort !== undefined && !f[2]?.endsWith(hex(peerPort))) continue;
    out.add(f[9]!);
  }
  return out;
}

/** Whether process `pid` holds one of `wanted` (false once it is gone). */
export function holds(pid: number, wanted: Set<string>): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        return m !== null && wanted.has(m[1]!);
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false;
  }
}


/** A TCP connection to `port` that worker `pid` has accepted (its end is in the worker's fd table). */
export async function acceptedBy(pid: number, port: number): Promise<net.Socket> {
  const raw = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  const clientPort = raw.localPort!;
  await until('the worker accepted the connection', () => holds(pid, inodes(port, ESTABLISHED, clientPort)), 30_000);
  return raw;
}

/** Waits until worker `pid` no longer holds a listening socket on `port` (or is gone). */
export function stoppedListening(pid: number, port: number): Promise<void> {
  return until('the old worker stopped accepting', () => !holds(pid, inodes(port, LISTEN)), 30_000);
}
