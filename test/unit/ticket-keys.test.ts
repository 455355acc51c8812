// The ticket-key ring answers OpenSSL's ticket callback with the current key
// (a fresh IV per ticket) and decrypts under the current or the previous one.
// What could break: an IV handed out twice, a reply left pointing at a
// replaced key, a ticket under an unknown key resumed. Real handshakes over
// loopback against a TLS listener; the tickets are read as the client
// received them (OpenSSL's format: key name 16 bytes, IV 16 bytes, then the
// encrypted state and its HMAC).
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { LogThrottle } from '../../src/log.js';
import { createTlsListener, type TlsListener } from '../../src/tls/tls-listener.js';
import { newTicketKey, TicketKeyRing } from '../../src/tls/ticket-keys.js';
import { Pki } from '../helpers/certs.js';
import { closeListener, listenOnLoopback } from '../helpers/tls-listener.js';

let pki: Pki;
let listener: TlsListener;
let port: number;
let caPem: string;
const ring = new TicketKeyRing();

before(async () => {
  pki = new Pki();
  const ca = pki.ca('ticket-ca');
  caPem = ca.certPem;
  const leaf = pki.issue(ca, 'app', { subject: '/CN=app.test', sans: ['DNS:app.test'] });
  listener = createTlsListener(
    { certificates: [{ cert: leaf.cert, key: leaf.key }], minVersion: 'TLSv1.2', ciphers: 'ECDHE+AESGCM', reloadIntervalMs: 60_000, handshakeTimeoutMs: 5000 },
    { 'http/1.1': (socket) => socket.end('ok') },
    { log: pino({ level: 'silent' }), logThrottle: new LogThrottle(), tickets: ring, sessionTimeoutSeconds: 300 },
    { allowHalfOpen: false, noDelay: true },
  );
  port = await listenOnLoopback(listener);
});

after(async () => {
  await closeListener(listener);
  pki?.cleanup();
});

interface Visit {
  reused: boolean;
  /** Every new session (ticket) the server sent on this connection. */
  sessions: Buffer[];
  /** The ticket the client holds once the handshake is done (TLS 1.2: a renewed one replaces the offered one). */
  ticket: Buffer | undefined;
}

/** One connection (TLS 1.2 unless `maxVersion`), offering `session`; read to the server's close. */
function visit(session?: Buffer, maxVersion: tls.SecureVersion = 'TLSv1.2'): Promise<Visit> {
  return new Promise((resolve, reject) => {
    const sessions: Buffer[] = [];
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'app.test', ca: caPem, maxVersion, ...(session ? { session } : {}) });
    let reused = false;
    let ticket: Buffer | undefined;
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
      ticket = socket.getTLSTicket();
    });
    socket.on('session', (s: Buffer) => sessions.push(s));
    socket.on('error', reject);
    socket.resume();
    socket.on('close', () => resolve({ reused, sessions, ticket }));
  });
}

/** The ticket inside a session Node hands the client: SSL_SESSION (DER) field [10], an OCTET STRING. */
function ticketOf(session: Buffer): Buffer {
  const outer = header(session, 0);
  assert.equal(session[0], 0x30, 'a session is a SEQUENCE');
  for (let at = outer.start; at < outer.start + outer.length; ) {
    const field = header(session, at);
    if (session[at] === 0xaa) {
      assert.equal(session[field.start], 0x04);
      const ticket = header(session, field.start);
      return session.subarray(ticket.start, ticket.start + ticket.length);
    }
    at = field.start + field.length;
  }
  throw new Error('no ticket in the session');
}

/** The DER element at `at`: where its content starts and its length. */
function header(b: Buffer, at: number): { start: number; length: number } {
  const first = b[at + 1]!;
  if (first < 0x80) return { start: at + 2, length: first };
  const bytes = first & 0x7f;
  let length = 0;
  for (let i = 0; i < bytes; i++) length = length * 256 + b[at + 2 + i]!;
  return { start: at + 2 + bytes, length };
}

test('600 tickets: every IV differs, every ticket names the current key and resumes', { timeout: 60_000 }, async () => {
  const keys = [newTicketKey()];
  ring.set(keys);
  const ivs = new Set<string>();
  const sessions: Buffer[] = [];
  for (let i = 0; i < 600; i++) {
    const v = await visit();
    assert.equal(v.sessions.length, 1, 'TLS 1.2: one ticket per full handshake');
    const ticket = ticketOf(v.sessions[0]!);
    assert.ok(ticket.subarray(0, 16).equals(keys[0]!.name), 'the ticket names the current key');
    ivs.add(ticket.subarray(16, 32).toString('hex'));
    sessions.push(v.sessions[0]!);
  }
  assert.equal(ivs.size, 600, 'no IV was handed out twice');
  // Early, middle and last tickets, across the refills, all decrypt.
  for (const i of [0, 255, 256, 511, 599]) assert.equal((await visit(sessions[i])).reused, true, `ticket ${i} resumes`);
});

test('TLS 1.3: each ticket of a handshake has its own IV', { timeout: 30_000 }, async () => {
  ring.set([newTicketKey()]);
  const ivs = new Set<string>();
  let tickets = 0;
  for (let i = 0; i < 20; i++) {
    for (const s of (await visit(undefined, 'TLSv1.3')).sessions) {
      ivs.add(ticketOf(s).subarray(16, 32).toString('hex'));
      tickets++;
    }
  }
  assert.ok(tickets >= 20, `tickets received: ${tickets}`);
  assert.equal(ivs.size, tickets);
});

test('after a rotation a ticket under the previous key resumes and is renewed under the new one; one key older does not resume', { timeout: 30_000 }, async () => {
  const first = newTicketKey();
  ring.set([first]);
  const old = (await visit()).sessions[0]!;
  const second = newTicketKey();
  ring.set([second, first]);
  const renewed = await visit(old);
  assert.equal(renewed.reused, true, 'the previous key still decrypts');
  assert.ok(renewed.ticket?.subarray(0, 16).equals(second.name), 'the renewed ticket names the current key');
  // The replies were rebuilt with the keys: a new ticket names `second` and resumes.
  const fresh = (await visit()).sessions[0]!;
  assert.ok(ticketOf(fresh).subarray(0, 16).equals(second.name));
  assert.equal((await visit(fresh)).reused, true);
  ring.set([newTicketKey(), second]);
  assert.equal((await visit(old)).reused, false, 'a ticket two keys old is a full handshake');
});

test('a ticket whose key name was altered is a full handshake, not an error', { timeout: 30_000 }, async () => {
  ring.set([newTicketKey()]);
  const session = Buffer.from((await visit()).sessions[0]!);
  const ticket = ticketOf(session);
  ticket[0] = ticket[0]! ^ 0xff;
  const v = await visit(session);
  assert.equal(v.reused, false);
  assert.equal(v.sessions.length, 1, 'the client gets a fresh ticket');
});
