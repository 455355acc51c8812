// The one door to Node's own HTTP/1.1 parser (llhttp), the parser behind
// node:http. Driving it directly over plain `net` sockets gives Switchyard
// node:http's exact framing strictness without the cost of its
// IncomingMessage/ServerResponse objects (see the core issue's measurements).
// `_http_common` is a legacy module Node still ships for this purpose; only
// this file depends on it, so a change in Node touches one place.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  /** Bytes consumed, or an Error carrying `code` (e.g. HPE_INVALID_METHOD) and `bytesParsed`. */
  execute(data: Buffer): number | ParseError;
  /** Signals EOF: completes a read-until-close message or reports truncation. */
  finish(): void | ParseError;
  close(): void;
  free(): void;
  remove(): void;
  pause(): void;
  resume(): void;
  [key: number]: unknown;
}

export interface ParseError extends Error {
  code: string;
  reason?: string;
  bytesParsed?: number;
}

interface HTTPParserClass {
  new (): NativeParser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}

const common = require('_http_common') as { HTTPParser: HTTPParserClass; methods: string[] };

export const HTTPParser = common.HTTPParser;
/** llhttp method index → method name. */
export const METHODS: readonly string[] = common.methods;

/**
 * Called when the head is complete. `rawHeaders` is the flat [name, value, ...]
 * list exactly as received (latin1), or undefined when llhttp already flushed
 * the headers through kOnHeaders (more than 32 fields); `url` likewise.
 * Return 1 to tell the parser the message has no body (a response to HEAD),
 * 2 to stop parsing after the head (an upgrade, or a body passed through raw).
 */
export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  rawHeaders: string[] | undefined,
  method: number,
  url: string | undefined,
  statusCode: number,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number | void;

export interface ParserCallbacks {
  onMessageBegin(): void;
  onHeaders(rawHeaders: string[], url: string): void;
  onHeadersComplete: OnHeadersComplete;
  onBody(chunk: Buffer): void;
  onMessageComplete(): void;
}

/**
 * The async resource every parser reports (async_hooks' executionAsyncResource):
 * Switchyard uses none, and a parser is reset after every pass-through body,
 * so one shared object instead of one per reset.
 */
const PARSER_RESOURCE = {};

/** Puts a parser back to its start state (strict, no lenient flags), keeping its callbacks. */
export function resetParser(parser: NativeParser, type: 'request' | 'response', maxHeaderBytes: number): void {
  parser.initialize(type === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, PARSER_RESOURCE, maxHeaderBytes, HTTPParser.kLenientNone);
}

/**
 * Released parsers wait here to be initialised again, as node:http keeps
 * them (its FreeList of 1000): building a native parser for every new
 * connection is a measurable part of a short-lived connection's cost.
 */
const POOL_MAX = 1000;
const pool: NativeParser[] = [];

/**
 * Releases a parser. `free()` only ends its async resource; what it refers
 * to must also go: its callbacks are cleared (they reach the whole
 * connection), and it is either kept for reuse or `close()`d, which releases
 * the native parser. Both wait for the next turn, as Node's own freeParser
 * does, since the parser may still be inside `execute()`. (Without the
 * close, every connection's parser stayed reachable from a global handle: a
 * leak of one connection's objects per connection ever opened.)
 */
export function releaseParser(parser: NativeParser): void {
  parser.free();
  setImmediate(recycle, parser);
}

function recycle(parser: NativeParser): void {
  parser[HTTPParser.kOnMessageBegin] = null;
  parser[HTTPParser.kOnHeaders] = null;
  parser[HTTPParser.kOnHeadersComplete] = null;
  parser[HTTPParser.kOnBody] = null;
  parser[HTTPParser.kOnMessageComplete] = null;
  if (pool.length < POOL_MAX) pool.push(parser);
  else parser.close();
}

/** A strict (no lenient flags) llhttp parser wired to `callbacks`. */
export function createParser(type: 'request' | 'response', maxHeaderBytes: number, callbacks: ParserCallbacks): NativeParser {
  const parser = pool.pop() ?? new HTTPParser();
  resetParser(parser, type, maxHeaderBytes);
  parser[HTTPParser.kOnMessageBegin] = callbacks.onMessageBegin;
  parser[HTTPParser.kOnHeaders] = callbacks.onHeaders;
  parser[HTTPParser.kOnHeadersComplete] = callbacks.onHeadersComplete;
  parser[HTTPParser.kOnBody] = callbacks.onBody;
  parser[HTTPParser.kOnMessageComplete] = callbacks.onMessageComplete;
  return parser;
}
