// Data-path sockets read into buffers Switchyard owns (net's `onread`)
// rather than node's default: a fresh 64 KiB allocation for every read,
// shrunk to what arrived, handed out as a new Buffer, and freed by the GC
// later. For a keep-alive connection that is one allocation, one Buffer and
// some GC work per request on each side of the proxy.
//
// A connection with nothing in flight reads into one buffer the worker
// shares; its consumer copies whatever it keeps of such a read (a body of
// one read). A connection passing a body on reads into a buffer of its own,
// reused only while nothing refers to the bytes of the last read. Whoever
// consumes a read says which it is (bytes queued behind a full socket, held
// for later, recorded for a retry): reusing a buffer whose bytes are still
// referenced would overwrite them with the next read, which may carry
// another client's bytes. The consumers' answers are the security rule here.
import type { OnReadOpts, Socket } from 'node:net';
import net from 'node:net';

/** Sizes of the buffer: small while reads are, node's own read size once a read fills the small one. */
const SMALL = 16 * 1024;
const LARGE = 64 * 1024;

/**
 * The worker's shared read buffer, for connections that hold no buffer of
 * their own between reads. Reads are handled one at a time, and no byte of
 * it may outlive the read that brought it (its consumers copy what they keep).
 */
export const SHARED_READ_BUFFER = Buffer.allocUnsafeSlow(LARGE);

/**
 * Bytes of a read to keep past it (handed to an exchange, held, relayed):
 * a copy when they lie in the shared buffer, which the next read of any
 * connection overwrites; the bytes themselves otherwise.
 */
export function keepable(bytes: Buffer): Buffer {
  return bytes.buffer === SHARED_READ_BUFFER.buffer ? Buffer.from(bytes) : bytes;
}

/**
 * What a consumer says of a read once it is through with it:
 * - 'held': something may still read its bytes (the next read needs a buffer of its own, a new one);
 * - 'free': nothing does (the connection's own buffer is reused);
 * - 'idle': the connection expects nothing it would hand on (a request
 *   without a body, a pooled upstream connection): its next read lands in
 *   the shared buffer, and its own goes (whoever still reads it keeps it).
 */
export type ReadVerdict = 'held' | 'free' | 'idle';

/**
 * Reads a chunk. `inShared`: it lies in the worker's shared buffer, which
 * other connections read into next: whatever the consumer keeps of it, it
 * must copy (and so it never answers 'held').
 */
export type ReadConsumer = (chunk: Buffer, inShared: boolean) => ReadVerdict;

/**
 * `onread` options for net.connect / new net.Socket: reads go to `consume`,
 * never to 'data' events. A connection reads into the shared buffer until a
 * read hands bytes on, and again once it says 'idle': thousands of idle
 * keep-alive connections hold no buffer each (16 KiB each cost 50 MB of RSS
 * and 9% more CPU per request at 8,000 client connections).
 */
export function ownReadBuffer(consume: ReadConsumer): OnReadOpts {
  let own: Buffer | undefined;
  let held = false;
  let idle = true;
  let lastBytes = 0;
  return {
    // Called by net once at the start and after every read: where the next read lands.
    buffer: () => {
      if (idle) return SHARED_READ_BUFFER;
      const size = lastBytes >= SMALL ? LARGE : SMALL;
      if (own === undefined || held || own.length < size) {
        own = Buffer.allocUnsafeSlow(size);
        held = false;
      }
      return own;
    },
    callback: (bytes, into) => {
      lastBytes = bytes;
      // Held unless the consumer returns and says otherwise (a throw leaves it held).
      held = true;
      idle = false;
      const verdict = consume((into as Buffer).subarray(0, bytes), into === SHARED_READ_BUFFER);
      held = verdict === 'held';
      idle = verdict === 'idle';
      if (idle) own = undefined;
      return true;
    },
  };
}

/** The symbols net.Socket keeps its onread state under (own properties of every socket). */
interface ReadSymbols {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

const readSymbols: ReadSymbols | undefined = (() => {
  const probe = new net.Socket();
  const byName = new Map(Object.getOwnPropertySymbols(probe).map((s) => [s.description, s]));
  probe.destroy();
  const [buffer, callback, generator] = [byName.get('kBuffer'), byName.get('kBufferCb'), byName.get('kBufferGen')];
  return buffer && callback && generator ? { buffer, callback, generator } : undefined;
})();

/**
 * Switches a socket that node:net created itself (an accepted connection,
 * where no `onread` can be passed) to ownReadBuffer, as its constructor
 * would have with `onread`: the same three fields net.Socket keeps for it
 * and the handle's useUserBuffer. Node internals, checked on 20.20; when
 * they are not there, false, and the socket keeps reading as before.
 * Call before the first 'data' event.
 */
export function readIntoOwnBuffer(socket: Socket, consume: ReadConsumer): boolean {
  const handle = (socket as unknown as { _handle: { useUserBuffer?: (b: Buffer) => void } | null })._handle;
  if (readSymbols === undefined || typeof handle?.useUserBuffer !== 'function') return false;
  const opts = ownReadBuffer(consume);
  const first = (opts.buffer as () => Buffer)();
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[readSymbols.generator] = opts.buffer;
  fields[readSymbols.callback] = opts.callback;
  fields[readSymbols.buffer] = first;
  handle.useUserBuffer(first);
  return true;
}
