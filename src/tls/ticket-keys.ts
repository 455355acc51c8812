// Session-ticket keys shared by every worker, so a client resumes its TLS
// session on whichever worker the kernel hands its next connection to.
//
// The primary makes the keys (TicketKeyRotation), sends them to every worker
// and replaces them every `tls_tickets.rotate`, keeping the previous key so
// tickets issued just before a rotation still resume (and are renewed under
// the new key). A ticket therefore lives at most two periods.
//
// Why not server.setTicketKeys(): Node 20's public API holds exactly one
// 48-byte key, so a rotation would turn every outstanding ticket into a
// full handshake. OpenSSL's ticket-key callback can hold several; Node
// reaches it through the SecureContext's enableTicketKeyCallback() and an
// `onticketkeycallback` method (what Node's own test
// test-https-resume-after-renew.js uses). OpenSSL calls the callback of the
// listener's own context (the session context), never an SNI context's, so
// one installation per listener covers every certificate. If a Node version
// lacks the hook, installTicketKeys() says so and falls back to
// setTicketKeys() with the current key.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:tls';
import type { Logger } from '../log.js';

export interface TicketKey {
  /** 16 bytes, sent in the ticket: picks the key to decrypt with. */
  name: Buffer;
  /** HMAC-SHA256 key. */
  hmac: Buffer;
  /** AES-128-CBC key (what OpenSSL's ticket format uses). */
  aes: Buffer;
}

/** As sent over IPC (JSON): hex strings, current key first. */
export interface TicketKeysMessage {
  keys: Array<{ name: string; hmac: string; aes: string }>;
}

export function newTicketKey(): TicketKey {
  return { name: randomBytes(16), hmac: randomBytes(32), aes: randomBytes(16) };
}

export function encodeTicketKeys(keys: readonly TicketKey[]): TicketKeysMessage {
  return { keys: keys.map((k) => ({ name: k.name.toString('hex'), hmac: k.hmac.toString('hex'), aes: k.aes.toString('hex') })) };
}

/** Keys from the primary; undefined when malformed (a worker then keeps the keys it has). */
export function decodeTicketKeys(m: TicketKeysMessage): TicketKey[] | undefined {
  const keys = m.keys.map((k) => ({ name: Buffer.from(k.name, 'hex'), hmac: Buffer.from(k.hmac, 'hex'), aes: Buffer.from(k.aes, 'hex') }));
  const wellFormed = keys.length > 0 && keys.every((k) => k.name.length === 16 && k.hmac.length === 32 && k.aes.length === 16);
  return wellFormed ? keys : undefined;
}

/** The primary's side: the current and previous key, replaced on a timer. */
export class TicketKeyRotation {
  private keys: TicketKey[] = [newTicketKey()];
  private readonly timer: NodeJS.Timeout;

  constructor(rotateMs: number, private readonly onRotate: (message: TicketKeysMessage) => void) {
    this.timer = setInterval(() => this.rotate(), rotateMs);
    this.timer.unref();
  }

  rotate(): void {
    this.keys = [newTicketKey(), this.keys[0]!];
    this.onRotate(this.message());
  }

  message(): TicketKeysMessage {
    return encodeTicketKeys(this.keys);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** OpenSSL's verdicts for a ticket being decrypted. */
const TICKET_UNKNOWN = 0;
const TICKET_OK = 1;
const TICKET_OK_RENEW = 2;
const ZERO_HMAC = Buffer.alloc(32);
const ZERO_AES = Buffer.alloc(16);

type TicketCallback = (name: Buffer, iv: Buffer, encrypt: boolean) => unknown[];
interface NativeContext {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: TicketCallback;
}

/** The worker's side: the keys every TLS listener of this process encrypts and decrypts tickets with. */
export class TicketKeyRing {
  /** Until the primary's keys arrive (or outside a cluster): this process's own. */
  private keys: TicketKey[] = [newTicketKey()];
  private readonly fallbacks = new Set<Server>();

  set(keys: TicketKey[]): void {
    this.keys = keys;
    for (const server of this.fallbacks) server.setTicketKeys(Buffer.concat([keys[0]!.name, keys[0]!.hmac.subarray(0, 16), keys[0]!.aes]));
  }

  /** Makes `server` use the ring for every ticket it issues or reads. */
  install(server: Server, log: Logger): void {
    // Internal (see the header comment): the listener's own context, which OpenSSL asks about tickets.
    const context = (server as unknown as { _sharedCreds?: { context?: NativeContext } })._sharedCreds?.context;
    if (context?.enableTicketKeyCallback === undefined) {
      log.warn('this Node version has no ticket-key callback: tickets use the current key only and a rotation means full handshakes');
      this.fallbacks.add(server);
      this.set(this.keys);
      return;
    }
    context.enableTicketKeyCallback();
    context.onticketkeycallback = (name, _iv, encrypt) => this.callback(name, encrypt);
  }

  private callback(name: Buffer, encrypt: boolean): unknown[] {
    if (encrypt) {
      const k = this.keys[0]!;
      return [TICKET_OK, k.hmac, k.aes, k.name, randomBytes(16)];
    }
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i]!;
      // A ticket under the previous key resumes, and the client gets a new ticket under the current one.
      if (k.name.equals(name)) return [i === 0 ? TICKET_OK : TICKET_OK_RENEW, k.hmac, k.aes];
    }
    return [TICKET_UNKNOWN, ZERO_HMAC, ZERO_AES];
  }
}
