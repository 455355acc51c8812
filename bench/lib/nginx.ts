// nginx configuration for its roles: a fixed-body backend, an HTTP proxy and
// an L4 (stream) proxy.
// Every instance gets its own prefix under the bench's temp dir (pid, logs,
// temp paths), runs in the foreground and writes no access log.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ProxyFront } from './front.js';

/** The directives every instance shares: process, pid, logs, and the connection limits. */
function main(prefix: string, workers: number, modules = ''): string {
  for (const d of ['logs', 'tmp']) mkdirSync(join(prefix, d), { recursive: true });
  // As root, nginx drops its workers to "nobody", who cannot read the bench's
  // private temp dir; run them as the invoking user instead.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${modules}${user}daemon off;
master_process on;
worker_processes ${workers};
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs/error.log')} warn;
# The connections sweep holds 8,000 clients plus as many upstream sockets.
worker_rlimit_nofile 40000;
events { worker_connections 20000; }
`;
}

/** An HTTP instance; `inner` goes inside `http {}`. */
function conf(prefix: string, workers: number, inner: string): string {
  const tmp = join(prefix, 'tmp');
  return `${main(prefix, workers)}http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  client_max_body_size 16m;
  client_body_buffer_size 64k;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
${inner}
}
`;
}

/**
 * A backend: /100b from the config, /16k and /1m as files from `www`, and
 * POST /post read into memory (client_body_buffer_size > 4 KB) and answered 200.
 */
export function backendConf(prefix: string, www: string, port: number): string {
  return conf(prefix, 1, `  server {
    listen 127.0.0.1:${port} backlog=16384;
    location = /100b { return 200 "${'a'.repeat(100)}"; }
    location = /post { return 200 "ok\\n"; }
    location / { root ${www}; }
  }`);
}

/**
 * nginx as the reverse proxy under test: 2 workers, keep-alive upstream pool.
 * `front` adds TLS (`ssl`, nginx's default protocols and ciphers; session
 * tickets on by default, their key made once before the workers fork so a
 * ticket resumes on either) and/or HTTP/2; `readyPort` is an extra plain
 * HTTP/1.1 listener for the start-up check when the main one cannot answer it
 * (h2c only).
 */
export function proxyConf(prefix: string, port: number, backends: number[], front: ProxyFront = {}, readyPort?: number): string {
  const servers = backends.map((p) => `    server 127.0.0.1:${p};`).join('\n');
  const flags = `${front.tls ? ' ssl' : ''}${front.http2 ? ' http2' : ''}`;
  // nginx 1.22 (Debian 12) still defaults to TLSv1 TLSv1.1 TLSv1.2: the same two versions as the others, stated.
  const tls = front.tls ? `\n    ssl_certificate ${front.tls.cert};\n    ssl_certificate_key ${front.tls.key};\n    ssl_protocols TLSv1.2 TLSv1.3;` : '';
  const ready = readyPort === undefined ? '' : `\n    listen 127.0.0.1:${readyPort};`;
  return conf(prefix, 2, `  upstream app {
${servers}
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port}${flags} backlog=16384;${ready}${tls}
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Stream large bodies through memory buffers instead of temp files.
      proxy_max_temp_file_size 0;
    }
  }`);
}

/** Debian's nginx builds the stream module as a dynamic module. */
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** nginx as the L4 proxy under test (bench/l4-tcp.ts): 2 workers, the stream module's defaults (16 KiB buffers). */
export function streamConf(prefix: string, port: number, backends: number[]): string {
  const module = existsSync(STREAM_MODULE) ? `load_module ${STREAM_MODULE};\n` : '';
  const servers = backends.map((p) => `    server 127.0.0.1:${p};`).join('\n');
  return `${main(prefix, 2, module)}stream {
  upstream app {
${servers}
  }
  server { listen 127.0.0.1:${port} backlog=16384; proxy_pass app; }
}
`;
}
