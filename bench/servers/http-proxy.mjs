// @ts-check
// Peer: node-http-proxy (http-proxy 1.x) in a 2-worker node:cluster, round-robin
// over the backends through one keep-alive agent per worker.
// usage: node http-proxy.mjs PORT HOST:PORT,HOST:PORT
import http from 'node:http';
import httpProxy from 'http-proxy';
import { proxyArgs, runCluster } from './cluster.mjs';

const { port, backends } = proxyArgs();

runCluster(2, () => {
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  const proxy = httpProxy.createProxyServer({ agent, xfwd: true });
  proxy.on('error', (_err, _req, res) => {
    // `res` is a ServerResponse for HTTP requests (a Socket only for upgrades).
    if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502);
    res.end();
  });
  const targets = backends.map((b) => `http://${b.host}:${b.port}`);
  let next = 0;
  const server = http.createServer((req, res) => {
    proxy.web(req, res, { target: targets[next] });
    next = (next + 1) % targets.length;
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
});
