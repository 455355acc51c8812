// The plain listener that sends browsers to https (listen[].redirect_https):
// every request gets 308 Permanent Redirect to https://HOST[:port]/path?query,
// method and body kept by the client (308, unlike 301, forbids turning a POST
// into a GET). The Host header is the attacker's to choose, so it is
// redirected only when it names a host this proxy serves over TLS (the
// configured `hosts`, or a certificate's names): anything else gets 400,
// never a redirect to a host someone else picked. Not the data path, so
// node:http's server (strict llhttp parsing, its own timeouts) does the work.
import http from 'node:http';
import type { Logger, LogThrottle } from '../log.js';
import type { RedirectHttpsConfig } from '../config/types.js';

/** A host name of letters, digits, "-" and "_" between dots, or an IPv4 address; no IPv6 literals. */
const HOST = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

export function createRedirectServer(
  config: RedirectHttpsConfig,
  /** Whether a certificate carries the host (used when `hosts` is not configured). */
  servedOverTls: (host: string) => boolean,
  log: Logger,
  logThrottle: LogThrottle,
): http.Server {
  const allowed = config.hosts === undefined ? servedOverTls : (host: string) => matchesHostList(config.hosts!, host);
  const portSuffix = config.port === 443 ? '' : `:${config.port}`;
  return http.createServer((req, res) => {
    const host = hostName(req.headers.host);
    const target = req.url ?? '';
    if (host === undefined || !allowed(host) || !target.startsWith('/')) {
      logThrottle.warn(log, 'redirect-refused', { host: req.headers.host, url: target.slice(0, 200) }, 'https redirect refused: host not served over TLS');
      const body = '400 Bad Request (host not served over https)\n';
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
      res.end(body);
      return;
    }
    res.writeHead(308, { Location: `https://${host}${portSuffix}${target}`, 'Content-Length': 0 });
    res.end();
    // The request body (if any) is not wanted: the client sends it again to https.
    req.resume();
  });
}

/** "Example.COM.:80" → "example.com"; undefined when absent or not a plain host name. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(header.trim());
  if (m === null) return undefined;
  let name = m[1]!.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name.length > 0 && name.length <= 253 && HOST.test(name) ? name : undefined;
}

function matchesHostList(hosts: readonly string[], host: string): boolean {
  for (const h of hosts) {
    if (h === host) return true;
    // "*.example.com": exactly one label below example.com, as certificates do.
    if (h.startsWith('*.')) {
      const dot = host.indexOf('.');
      if (dot > 0 && host.slice(dot + 1) === h.slice(2)) return true;
    }
  }
  return false;
}
