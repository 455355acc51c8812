// When a failed upstream attempt may be repeated, and the request body kept
// so it can be. Repeating is harmless for idempotent methods only (RFC 9110
// §9.2.2), and only while the whole body sent so far is still at hand.

export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * Methods that become safe to repeat when the client names the operation with
 * an Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header): the
 * server promises to apply one key once, so a replay cannot apply it twice.
 */
const KEYED: ReadonlySet<string> = new Set(['POST', 'PATCH']);

/**
 * Whether a failed attempt of this request may be repeated: an idempotent
 * method, or (with the upstream's retry_idempotency_key) POST or PATCH
 * carrying a non-empty Idempotency-Key. `keyed` is true for the latter.
 */
export function retryableMethod(method: string, rawHeaders: readonly string[], keyedAllowed: boolean): { retryable: boolean; keyed: boolean } {
  if (IDEMPOTENT.has(method)) return { retryable: true, keyed: false };
  if (!keyedAllowed || !KEYED.has(method)) return { retryable: false, keyed: false };
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 15 && name.toLowerCase() === 'idempotency-key' && rawHeaders[i + 1]!.trim() !== '') return { retryable: true, keyed: true };
  }
  return { retryable: false, keyed: false };
}

export type UpstreamFailureKind = 'connect' | 'io' | 'parse' | 'closed';

export interface FailedAttempt {
  kind: UpstreamFailureKind;
  /** The connection had served an earlier request (a reset may just be a stale keep-alive). */
  reused: boolean;
  /** Response bytes received on this attempt. */
  received: number;
  /** The one retry on a fresh connection to the same server was used already. */
  freshRetryUsed: boolean;
  /** Repeating the request is harmless and its body is still at hand. */
  replayable: boolean;
  /** Servers picked so far, and how many retries the route allows after the first. */
  attempts: number;
  retries: number;
  /** Asks the upstream's retry budget (cluster-wide); called only when a retry would otherwise happen. */
  budgetAllows(): boolean;
}

/**
 * What to do after an attempt failed before its response began:
 * `fresh-connection` (the same server again, on a new connection), `another-server`, or `none`.
 */
export function retryVerdict(f: FailedAttempt): 'fresh-connection' | 'another-server' | 'none' {
  // A reused keep-alive connection that the server closed just as we wrote is
  // not the server failing: once, on a fresh connection, if repeating is harmless.
  if (f.kind !== 'connect' && f.kind !== 'parse' && f.reused && f.received === 0 && !f.freshRetryUsed && f.replayable) return 'fresh-connection';
  if (f.kind === 'parse' || f.attempts > f.retries) return 'none';
  // Never reached the server: safe to try another one for any method.
  if (f.kind === 'connect') return 'another-server';
  return f.received === 0 && f.replayable && f.budgetAllows() ? 'another-server' : 'none';
}

/**
 * The request body sent so far, kept until the response starts so the
 * request can be replayed to another server; given up once it outgrows the
 * upstream's `retry_body_bytes`.
 */
export class BodyReplay {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private overflowed = false;

  constructor(private readonly limit: number) {}

  record(chunk: Buffer): void {
    if (this.overflowed) return;
    this.bytes += chunk.length;
    if (this.bytes <= this.limit) this.chunks.push(chunk);
    else {
      this.overflowed = true;
      this.chunks = [];
    }
  }

  /** Whether every byte recorded is still here. */
  get whole(): boolean {
    return !this.overflowed;
  }

  /** The chunks recorded so far, to send again; recording starts over. */
  takeAll(): Buffer[] {
    const chunks = this.chunks;
    this.chunks = [];
    this.bytes = 0;
    return chunks;
  }
}
