// Data-path sockets read into a buffer of their own (net's `onread`) rather
// than node's default: a fresh 64 KiB allocation for every read, shrunk to
// what arrived, handed out as a new Buffer, and freed by the GC later. For a
// keep-alive connection that is one allocation, one Buffer and some GC work
// per request on each side of the proxy.
//
// A buffer is reused only while nothing refers to the bytes of the last read.
// Whoever consumes a read says whether it still does (bytes queued behind a
// full socket, held for later, recorded for a retry); reusing the buffer
// then would overwrite them with the next read, which may carry another
// client's bytes: the consumer's answer is the security rule here.
import type { OnReadOpts, Socket } from 'node:net';
import net from 'node:net';

/** Sizes of the buffer: small while reads are, node's own read size once a read fills the small one. */
const SMALL = 16 * 1024;
const LARGE = 64 * 1024;

/**
 * Reads `bytes` of data: returns true when something may still read these
 * bytes after it returns (the next read must land elsewhere).
 */
export type ReadConsumer = (chunk: Buffer) => boolean;

/** `onread` options for net.connect / new net.Socket: reads go to `consume`, never to 'data' events. */
export function ownReadBuffer(consume: ReadConsumer): OnReadOpts {
  let buffer: Buffer | undefined;
  let held = false;
  let lastBytes = 0;
  return {
    // Called by net once at the start and after every read: where the next read lands.
    buffer: () => {
      const size = lastBytes >= SMALL ? LARGE : SMALL;
      if (buffer === undefined || held || buffer.length < size) {
        buffer = Buffer.allocUnsafeSlow(size);
        held = false;
      }
      return buffer;
    },
    callback: (bytes, into) => {
      lastBytes = bytes;
      // Held unless the consumer returns and says otherwise (a throw leaves it held).
      held = true;
      held = consume((into as Buffer).subarray(0, bytes));
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
