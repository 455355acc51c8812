// A real ACME server for tests: Debian's pebble (Let's Encrypt's test CA) on
// loopback, resolving every name to 127.0.0.1 through pebble-challtestsrv's
// mock DNS, with its own HTTPS certificate from a throwaway CA made here with
// openssl. Pebble validates HTTP-01 for real: it connects to the domain on
// `httpPort`, which the test points at Switchyard's plain listener, and
// TLS-ALPN-01 on `tlsPort` (Switchyard's TLS listener) when given.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './switchyard.js';

export interface Pebble {
  /** The directory URL, https://127.0.0.1:PORT/dir. */
  directory: string;
  /** PEM file of the CA that signed pebble's own HTTPS certificate (for `acme.ca`). */
  caFile: string;
  /** Pebble's issuing root, PEM (regenerated at every pebble start). */
  root(): Promise<string>;
  /** Stops pebble (the DNS server stays), e.g. to make a renewal fail. */
  stopCa(): Promise<void>;
  /** Stops everything and removes the files. */
  stop(): Promise<void>;
  output(): string;
}

export interface PebbleOptions {
  /** The port pebble sends HTTP-01 requests to: Switchyard's plain listener. */
  httpPort: number;
  /** The port pebble sends TLS-ALPN-01 validations to: Switchyard's TLS listener (absent: a port nobody listens on). */
  tlsPort?: number;
  /** Lifetime of the certificates it issues, in seconds (pebble's default: 5 years). */
  validitySeconds?: number;
}

function requireProgram(name: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${name} is not installed (Debian package pebble; test/setup/system-deps.sh installs it)`);
  }
}

/** A loopback port accepting connections, or an error after `timeoutMs`. */
async function waitForPort(port: number, what: string, timeoutMs: number, out: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port}:\n${out()}`);
    await sleep(50);
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  requireProgram('pebble');
  requireProgram('pebble-challtestsrv');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-pebble-'));
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  // Pebble's own HTTPS: a CA, and a certificate for 127.0.0.1 and localhost signed by it.
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=switchyard test minica');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('pebble.key'), '-out', file('pebble.csr'), '-subj', '/CN=localhost');
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl('x509', '-req', '-in', file('pebble.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('pebble.pem'), '-days', '2', '-extfile', file('san.ext'));

  const [acmePort, mgmtPort, dnsPort, dnsMgmtPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(
    file('pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: file('pebble.pem'),
        privateKey: file('pebble.key'),
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort ?? (await freePort()),
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds === undefined ? {} : { certificateValidityPeriod: opts.validitySeconds }),
      },
    }),
  );

  let output = '';
  const collect = (d: Buffer) => {
    if (output.length < 200_000) output += d.toString();
  };
  // Mock DNS: every A query answers 127.0.0.1; no AAAA, so pebble never tries ::1. Its own challenge servers are off.
  const dns = spawn(
    'pebble-challtestsrv',
    ['-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${dnsMgmtPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  dns.stdout!.on('data', collect);
  dns.stderr!.on('data', collect);
  const ca = spawn('pebble', ['-config', file('pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`, '-strict=false'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Deterministic: no random validation sleeps, real validation, no rejected nonces, no reused authorizations.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_VA_ALWAYS_VALID: '0', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  });
  ca.stdout!.on('data', collect);
  ca.stderr!.on('data', collect);
  const stopAll = async () => {
    await Promise.all([stopChild(ca), stopChild(dns)]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(dnsMgmtPort, 'pebble-challtestsrv', 10_000, () => output);
    await waitForPort(acmePort, 'pebble', 10_000, () => output);
    await waitForPort(mgmtPort, 'pebble management', 10_000, () => output);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const caPem = readFileSync(file('ca.pem'), 'utf8');
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile: file('ca.pem'),
    root: () =>
      new Promise((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: mgmtPort, path: '/roots/0', ca: caPem }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`pebble /roots/0: ${res.statusCode}`))));
          })
          .on('error', reject);
      }),
    stopCa: () => stopChild(ca),
    stop: stopAll,
    output: () => output,
  };
}
