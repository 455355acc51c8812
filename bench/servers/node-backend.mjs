// @ts-check
// Fallback backend when nginx is not installed: a 2-worker node:cluster that
// listens on every port given and serves the bench's fixed bodies.
// usage: node node-backend.mjs PORT [PORT...]
import http from 'node:http';
import { runCluster } from './cluster.mjs';

const BODIES = {
  '/100b': Buffer.alloc(100, 'a'),
  '/16k': Buffer.alloc(16 * 1024, 'b'),
  '/1m': Buffer.alloc(1024 * 1024, 'c'),
  '/post': Buffer.from('ok\n'),
};

const ports = process.argv.slice(2).map(Number);

/** @type {http.RequestListener} */
function serve(req, res) {
  const body = BODIES[/** @type {keyof typeof BODIES} */ (req.url ?? '')];
  // Drain any request body before answering so keep-alive stays usable.
  req.resume();
  req.on('end', () => {
    if (!body) {
      res.writeHead(404, { 'content-length': 0 }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
}

runCluster(2, () => {
  for (const port of ports) {
    const server = http.createServer(serve);
    server.keepAliveTimeout = 60_000;
    server.listen(port, '127.0.0.1');
  }
});
