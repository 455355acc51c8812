// The human summary `switchyard --check FILE` prints for a valid config.

import { formatDuration } from './duration.js';
import type { Config, ListenConfig } from './types.js';

const addr = (l: ListenConfig): string => (l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`);

export function summarizeConfig(config: Config): string {
  const lines = [
    `workers: ${config.workers} (scheduling: ${config.scheduling})`,
    `listen: ${config.listen.map(addr).join(', ')}`,
    `admin: ${addr(config.admin)}`,
  ];
  if (config.demoBackends.length > 0) lines.push(`demo backends: ${config.demoBackends.map(addr).join(', ')}`);
  lines.push('upstreams:');
  for (const up of Object.values(config.upstreams)) {
    const algo = up.balance === 'source' ? `source, key ${up.hash.key}` : up.balance;
    const health = up.health ? `, health ${up.health.path} every ${formatDuration(up.health.intervalMs)}` : '';
    const d = up.discovery;
    const servers = d
      ? [`DNS ${d.type} ${d.name}${d.port === undefined ? '' : `:${d.port}`}, re-resolved at least every ${formatDuration(d.intervalMs)}`]
      : up.servers.map((s) => (s.weight === 1 ? s.address : `${s.address} (weight ${s.weight})`));
    lines.push(`  ${up.name} (${algo}, retries ${up.retries}${health}): ${servers.join(', ')}`);
  }
  lines.push('routes:');
  const width = Math.max(...config.routes.map((r) => r.host.length + r.path.length + 1));
  for (const r of config.routes) {
    const named = r.name === `${r.host}${r.path}` ? '' : ` (${r.name})`;
    lines.push(`  ${`${r.host} ${r.path}`.padEnd(width)} -> ${r.upstream}${named}`);
  }
  return lines.join('\n');
}
