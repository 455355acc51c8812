// @ts-check
// A reference, not a proxy anyone should run: the least a Node reverse proxy
// can do per request, to tell how much of the gap to nginx is Node's own. The
// same 2-worker set-up as node-floor (SCHED_NONE, UV_TCP_SINGLE_ACCEPT). Each
// client connection gets one keep-alive connection of its own to a backend
// (round robin per connection, so no pool to manage), and both sides run
// llhttp over plain `net` sockets: a request head is rewritten to the
// backend as it came (no header checks, no X-Forwarded-For, no routing, no
// timeouts, no errors answered), bodies are relayed as llhttp hands them
// over, and a response is relayed the same way. Writes of one read go out
// corked together, as Switchyard's do. It assumes well-formed traffic
// (Content-Length bodies, keep-alive): the bench's.
// usage: node node-proxy-floor.mjs PORT HOST:PORT[,HOST:PORT...]
import cluster from 'node:cluster';
import net from 'node:net';
import { createRequire } from 'node:module';
import { proxyArgs, runCluster } from './cluster.mjs';

const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common');
const CRLF = '\r\n';

cluster.schedulingPolicy = cluster.SCHED_NONE;
process.env.UV_TCP_SINGLE_ACCEPT = '1';

const { port, backends } = proxyArgs();
let next = 0;

/**
 * @param {string[]} raw flat [name, value, ...]
 * @returns {string}
 */
function headerLines(raw) {
  let out = '';
  for (let i = 0; i < raw.length; i += 2) out += `${raw[i]}: ${raw[i + 1]}${CRLF}`;
  return out;
}

/**
 * @param {number} type HTTPParser.REQUEST or RESPONSE
 * @param {(head: string) => void} onHead
 * @param {(major: number, minor: number, raw: string[], method: number, url: string, status: number, message: string) => string} head
 * @param {(chunk: Buffer) => void} onBody
 */
function parser(type, head, onHead, onBody) {
  const p = new HTTPParser();
  p.initialize(type, {}, 16384, HTTPParser.kLenientNone);
  p[HTTPParser.kOnHeadersComplete] = (/** @type {number} */ major, /** @type {number} */ minor, /** @type {string[]} */ raw, /** @type {number} */ method, /** @type {string} */ url, /** @type {number} */ status, /** @type {string} */ message) => {
    onHead(head(major, minor, raw, method, url, status, message));
    return 0;
  };
  p[HTTPParser.kOnBody] = onBody;
  return p;
}

/** @param {net.Socket} client */
function serve(client) {
  const target = backends[next++ % backends.length];
  const upstream = net.connect({ host: target.host, port: target.port, noDelay: true });
  const request = parser(
    HTTPParser.REQUEST,
    (_major, minor, raw, method, url) => `${methods[method]} ${url} HTTP/1.${minor}${CRLF}${headerLines(raw)}${CRLF}`,
    (head) => upstream.write(head, 'latin1'),
    (chunk) => upstream.write(chunk),
  );
  const response = parser(
    HTTPParser.RESPONSE,
    (_major, minor, raw, _method, _url, status, message) => `HTTP/1.${minor} ${status} ${message}${CRLF}${headerLines(raw)}${CRLF}`,
    (head) => client.write(head, 'latin1'),
    (chunk) => client.write(chunk),
  );
  client.on('data', (chunk) => {
    upstream.cork();
    const ret = request.execute(chunk);
    upstream.uncork();
    if (typeof ret !== 'number') client.destroy();
  });
  upstream.on('data', (chunk) => {
    client.cork();
    const ret = response.execute(chunk);
    client.uncork();
    if (typeof ret !== 'number') client.destroy();
  });
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('end', close);
  client.on('error', close);
  client.on('close', () => {
    upstream.destroy();
    request.close();
  });
  upstream.on('end', close);
  upstream.on('error', close);
  upstream.on('close', () => {
    client.destroy();
    response.close();
  });
}

runCluster(2, () => {
  net.createServer({ noDelay: true }, serve).listen(port, '127.0.0.1');
});
