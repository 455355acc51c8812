// @ts-check
// A reference, not a proxy: the least a Node front end can do per request. A
// 2-worker node:cluster with the same accept set-up as Switchyard (SCHED_NONE,
// UV_TCP_SINGLE_ACCEPT) that parses each request with llhttp over a plain
// `net` socket and answers 100 bytes itself, with no upstream at all. The gap
// between it and nginx is Node's own per-connection and per-request cost,
// which no Node proxy can go below. Given a certificate and key it serves
// the same over TLS (tls.createServer, Node's default TLS settings): the
// least a Node front end pays per TLS handshake (bench/tls.ts).
// usage: node node-floor.mjs PORT [BACKENDS, ignored] [CERT KEY]
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { createRequire } from 'node:module';
import { runCluster } from './cluster.mjs';

const { HTTPParser } = createRequire(import.meta.url)('_http_common');
const BODY = 'a'.repeat(100);
const KEEP = `HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n${BODY}`;
const CLOSE = `HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n${BODY}`;

cluster.schedulingPolicy = cluster.SCHED_NONE;
process.env.UV_TCP_SINGLE_ACCEPT = '1';

const [port, , certFile, keyFile] = process.argv.slice(2);

/** @param {net.Socket} socket */
function serve(socket) {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 16384, HTTPParser.kLenientNone);
  let keepAlive = true;
  parser[HTTPParser.kOnHeadersComplete] = (_maj, _min, _raw, _method, _url, _s, _m, _up, shouldKeepAlive) => {
    keepAlive = shouldKeepAlive;
    return 0;
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    if (keepAlive) socket.write(KEEP, 'latin1');
    else socket.end(CLOSE, 'latin1');
  };
  socket.on('data', (chunk) => {
    if (typeof parser.execute(chunk) !== 'number') socket.destroy();
  });
  socket.on('end', () => socket.destroy());
  socket.on('error', () => {});
  socket.on('close', () => parser.close());
}

runCluster(2, () => {
  const server =
    certFile === undefined
      ? net.createServer({ allowHalfOpen: true, noDelay: true }, serve)
      : tls.createServer({ allowHalfOpen: true, noDelay: true, cert: readFileSync(certFile), key: readFileSync(keyFile ?? '') }, serve);
  server.listen(Number(port), '127.0.0.1');
});
