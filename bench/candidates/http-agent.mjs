// @ts-check
// Data-path candidate A (throwaway prototype, kept for the record): node:http
// server + http.request through a keep-alive agent, round-robin, streaming both
// ways. Measured against Switchyard's own raw net + llhttp data path.
// usage: node http-agent.mjs PORT HOST:PORT,HOST:PORT
import http from 'node:http';
import { endToEnd, proxyArgs, runCluster } from '../servers/cluster.mjs';

const { port, backends } = proxyArgs();

runCluster(2, () => {
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  let next = 0;
  const server = http.createServer((req, res) => {
    const b = backends[next];
    next = (next + 1) % backends.length;
    const upstream = http.request(
      { host: b.host, port: b.port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, endToEnd(ures.headers));
        ures.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-length': 0 });
      res.end();
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
});
