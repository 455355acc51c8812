// Which optional peers are installed (bench/install-peers.sh puts them there).
// The bench only looks; it never installs anything itself.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface Tools {
  nginx?: string;
  haproxy?: string;
  wrk?: string;
  /** Version lines, for the results' record. */
  versions: Record<string, string>;
}

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = `${dir}/${bin}`;
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

function version(bin: string, args: string[]): string {
  // nginx prints its version on stderr; wrk exits 1 for -v: take the first line of either.
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0]!.trim();
}

export function detectTools(): Tools {
  const tools: Tools = { versions: { node: process.version } };
  const probes: [keyof Omit<Tools, 'versions'>, string[]][] = [
    ['nginx', ['-v']],
    ['haproxy', ['-v']],
    ['wrk', ['-v']],
  ];
  for (const [bin, args] of probes) {
    const path = which(bin);
    if (!path) continue;
    tools[bin] = path;
    tools.versions[bin] = version(path, args);
  }
  return tools;
}

const require = createRequire(import.meta.url);

/** Whether an npm package resolves from the repo (devDependencies may be pruned). */
export function hasPackage(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}
