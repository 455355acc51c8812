// @ts-check
// Peer: @fastify/http-proxy on fastify 5 in a 2-worker node:cluster. It proxies
// to one upstream per route, so round-robin goes through reply-from's
// getUpstream hook (its undici Agent keeps connections alive per origin).
// usage: node fastify-proxy.mjs PORT HOST:PORT,HOST:PORT
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
import { proxyArgs, runCluster } from './cluster.mjs';

const { port, backends } = proxyArgs();

runCluster(2, () => {
  const targets = backends.map((b) => `http://${b.host}:${b.port}`);
  let next = 0;
  const app = Fastify({ logger: false, keepAliveTimeout: 60_000, bodyLimit: 16 * 1024 * 1024 });
  app.register(proxy, {
    upstream: '',
    replyOptions: {
      getUpstream: () => {
        const t = targets[next];
        next = (next + 1) % targets.length;
        return t;
      },
    },
  });
  app.listen({ port, host: '127.0.0.1' }).catch((err) => {
    console.error(err);
    process.exit(1);
  });
});
