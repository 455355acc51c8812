// A TLS client for tests: one HTTP/1.1 request over node:tls, returning the
// response and what the handshake settled (certificate, protocol, whether
// the session was resumed, the ticket to resume with next time); and a GET
// verified as a browser would (chain and name) for certificates from a CA.
import tls from 'node:tls';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';

export interface TlsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The server certificate's SHA-256 fingerprint and subject CN. */
  fingerprint: string;
  cn: string | undefined;
  /** "rsa" or "ec" by the certificate's public key. */
  keyType: string | undefined;
  protocol: string | null;
  resumed: boolean;
  /** The latest session/ticket the server sent, to resume with. */
  session: Buffer | undefined;
  /** That ticket's raw bytes: OpenSSL's format starts with the 16-byte name of the key that encrypted it. */
  ticket: Buffer | undefined;
}

export interface TlsRequestOptions {
  port: number;
  servername?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  ca?: string | string[];
  cert?: string;
  key?: string;
  session?: Buffer;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  ciphers?: string;
  sigalgs?: string;
  body?: string;
}

export function tlsRequest(o: TlsRequestOptions): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    let ticket: Buffer | undefined;
    const req = https.request({
      host: '127.0.0.1',
      port: o.port,
      path: o.path ?? '/',
      method: o.method ?? 'GET',
      headers: { connection: 'close', ...(o.headers ?? {}) },
      agent: false,
      ...(o.servername === undefined ? { servername: '' } : { servername: o.servername }),
      ...(o.ca ? { ca: o.ca } : { rejectUnauthorized: false }),
      checkServerIdentity: () => undefined,
      ...(o.cert ? { cert: o.cert, key: o.key } : {}),
      ...(o.session ? { session: o.session } : {}),
      ...(o.minVersion ? { minVersion: o.minVersion } : {}),
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
      ...(o.ciphers ? { ciphers: o.ciphers } : {}),
      ...(o.sigalgs ? { sigalgs: o.sigalgs } : {}),
    });
    req.on('socket', (s) => {
      const socket = s as tls.TLSSocket;
      socket.on('session', (b: Buffer) => {
        session = b;
        ticket = socket.getTLSTicket();
      });
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('no response within 15 s')));
    req.on('response', (res) => {
      const socket = res.socket as tls.TLSSocket;
      const peer = socket.getPeerX509Certificate();
      const base = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        fingerprint: peer?.fingerprint256 ?? '',
        cn: /CN=([^\n]+)/.exec(peer?.subject ?? '')?.[1],
        keyType: peer?.publicKey.asymmetricKeyType,
        protocol: socket.getProtocol(),
        resumed: socket.isSessionReused(),
      };
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('error', reject);
      res.on('end', () => {
        // TLS 1.3 tickets arrive after the handshake: give the last one a moment.
        setTimeout(() => resolve({ ...base, body, session, ticket }), 20);
      });
    });
    req.end(o.body);
  });
}

/** Handshake only: resolves with the negotiated protocol, or rejects with the TLS error. */
export function handshake(o: { port: number; servername?: string; minVersion?: tls.SecureVersion; maxVersion?: tls.SecureVersion; ciphers?: string }): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: o.port,
      rejectUnauthorized: false,
      ...(o.servername ? { servername: o.servername } : {}),
      ...(o.minVersion ? { minVersion: o.minVersion } : {}),
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
      ...(o.ciphers ? { ciphers: o.ciphers } : {}),
    });
    socket.once('secureConnect', () => {
      const p = socket.getProtocol();
      socket.destroy();
      resolve(p);
    });
    socket.once('error', reject);
  });
}

export interface VerifiedAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Serial of the certificate the server presented on this connection. */
  serial: string;
  socket: tls.TLSSocket;
}

/**
 * GET / over TLS to 127.0.0.1:port with SNI and Host `domain`, the chain
 * verified against `ca` and the name checked (tlsRequest checks neither);
 * `agent` to reuse a keep-alive connection.
 */
export function verifiedGet(port: number, domain: string, ca: string, agent: https.Agent | false = false): Promise<VerifiedAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', servername: domain, headers: { host: domain }, ca, agent }, (res) => {
      // Read now: a keep-alive agent takes the socket back once the body has ended.
      const socket = res.socket as tls.TLSSocket;
      const serial = socket.getPeerCertificate().serialNumber;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, serial, socket }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('TLS request timed out')));
    req.on('error', reject);
    req.end();
  });
}
