// @ts-check
// Data-path candidate B (throwaway prototype, kept for the record): node:http
// server + undici Pool.dispatch (one Pool per backend, round-robin), using the
// undici 7 handler API so response chunks go straight to the client socket with
// back-pressure through the controller. Measured against Switchyard's own raw
// net + llhttp data path.
// usage: node undici-pool.mjs PORT HOST:PORT,HOST:PORT
import http from 'node:http';
import { Pool } from 'undici';
import { endToEnd, proxyArgs, runCluster } from '../servers/cluster.mjs';

const { port, backends } = proxyArgs();

runCluster(2, () => {
  const pools = backends.map((b) => new Pool(`http://${b.host}:${b.port}`, { keepAliveTimeout: 60_000 }));
  let next = 0;
  const server = http.createServer((req, res) => {
    const pool = pools[next];
    next = (next + 1) % pools.length;
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    /** @type {import('undici').Dispatcher.DispatchController | undefined} */
    let ctl;
    res.on('close', () => {
      if (!res.writableFinished) ctl?.abort(new Error('client went away'));
    });
    pool.dispatch(
      {
        path: req.url ?? '/',
        method: /** @type {import('undici').Dispatcher.HttpMethod} */ (req.method),
        headers: endToEnd(req.headers),
        body: hasBody ? req : null,
      },
      {
        onRequestStart(controller) {
          ctl = controller;
        },
        onResponseStart(controller, statusCode, headers) {
          res.writeHead(statusCode, endToEnd(headers));
          res.on('drain', () => controller.resume());
        },
        onResponseData(controller, chunk) {
          if (!res.write(chunk)) controller.pause();
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_controller, _err) {
          if (!res.headersSent) res.writeHead(502, { 'content-length': 0 });
          res.end();
        },
      },
    );
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
});
