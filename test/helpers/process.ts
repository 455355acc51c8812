// Small utilities for tests that drive the real CLI: temporary directories
// for config files, one-shot HTTP requests, and process liveness. Every
// helper is bounded in time. (Starting the CLI: switchyard.ts; the admin
// API: admin-status.ts.)
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface TempDir {
  dir: string;
  /** Writes `raw` (snake_case keys, as in the YAML file) and returns the file's path. */
  writeConfig(raw: object, name?: string): Promise<string>;
  writeText(text: string, name: string): Promise<string>;
  remove(): Promise<void>;
}

export async function tempDir(): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-test-'));
  const writeText = async (text: string, name: string) => {
    const file = path.join(dir, name);
    await writeFile(file, text);
    return file;
  };
  return {
    dir,
    writeConfig: (raw, name = 'switchyard.yaml') => writeText(stringify(raw), name),
    writeText,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  port: number;
  path?: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  timeoutMs?: number;
}

/** One request on a fresh connection (no keep-alive pooling between calls). */
export function request(o: RequestOptions): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: o.port, path: o.path ?? '/', method: o.method ?? 'GET', headers: o.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(o.timeoutMs ?? 5_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
