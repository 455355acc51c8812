// The dashboard's static files (dashboard/ at the package root: plain HTML,
// CSS and an ES module, no build step), served by the admin listener without
// the bearer token: they hold no data. The page asks for the token and keeps
// it in memory only, sending it as `Authorization: Bearer` on every API call,
// so there is no cookie and no cross-site request can act with it.
//
// The files are read once, into memory, from a fixed list: no request path
// ever reaches the file system. Every answer carries a Content-Security-Policy
// that allows only this origin's script and style, so even a server name or
// route path that slipped into the page as markup could not run.
import { readFileSync } from 'node:fs';
import type http from 'node:http';

/** From src/admin/ and dist/admin/ alike, the package root is two levels up. */
const DASHBOARD_DIR = new URL('../../dashboard/', import.meta.url);

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

const SECURITY_HEADERS: http.OutgoingHttpHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // A new version of the page is picked up at the next load.
  'cache-control': 'no-cache',
};

export type DashboardAssets = Map<string, { body: Buffer; type: string }>;

/** Throws with the path when a file is missing (a broken install, found at start rather than at the first visit). */
export function loadDashboardAssets(): DashboardAssets {
  const assets: DashboardAssets = new Map();
  for (const [name, type] of Object.entries(FILES)) {
    const url = new URL(name, DASHBOARD_DIR);
    try {
      assets.set(name, { body: readFileSync(url), type });
    } catch (err) {
      throw new Error(`dashboard file ${url.pathname} cannot be read: ${(err as Error).message}`);
    }
  }
  return assets;
}

/** Whether `path` belongs to the dashboard (served without the token). */
export function isDashboardPath(path: string): boolean {
  return path === '/dashboard' || path.startsWith('/dashboard/');
}

export function serveDashboard(assets: DashboardAssets, req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
    res.end('the dashboard accepts GET and HEAD only\n');
    return;
  }
  if (path === '/dashboard') {
    res.writeHead(308, { location: '/dashboard/', 'content-length': 0, ...SECURITY_HEADERS });
    res.end();
    return;
  }
  const name = path === '/dashboard/' ? 'index.html' : path.slice('/dashboard/'.length);
  const asset = assets.get(name);
  if (asset === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
    res.end('no such dashboard file\n');
    return;
  }
  res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, ...SECURITY_HEADERS });
  res.end(req.method === 'HEAD' ? undefined : asset.body);
}
