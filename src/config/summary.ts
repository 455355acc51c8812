// The human summary `switchyard --check FILE` prints for a valid config.

import { formatDuration } from './duration.js';
import type { Config, ListenConfig, ProxyListenConfig } from './types.js';

const addr = (l: ListenConfig): string => (l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`);

/** "0.0.0.0:5432 (tcp -> db, accepts PROXY)": the L4 settings of a listener (issue 13). */
function listener(l: ProxyListenConfig): string {
  const notes = [...(l.mode === 'tcp' ? [`tcp -> ${l.upstream}`] : []), ...(l.acceptProxy ? ['accepts PROXY'] : [])];
  return notes.length === 0 ? addr(l) : `${addr(l)} (${notes.join(', ')})`;
}

export function summarizeConfig(config: Config): string {
  const lines = [
    `workers: ${config.workers} (scheduling: ${config.scheduling})`,
    `listen: ${config.listen.map(listener).join(', ')}`,
    `admin: ${config.admin ? addr(config.admin) : 'none (no admin API or dashboard)'}`,
  ];
  if (config.demoBackends.length > 0) lines.push(`demo backends: ${config.demoBackends.map(addr).join(', ')}`);
  lines.push('upstreams:');
  for (const up of Object.values(config.upstreams)) {
    const algo = up.balance === 'source' ? `source, key ${up.hash.key}` : up.balance;
    const check = up.health?.type === 'tcp' ? 'tcp connect' : up.health?.path;
    const health = up.health ? `, health ${check} every ${formatDuration(up.health.intervalMs)}` : '';
    const proxy = up.proxyProtocol ? `, sends PROXY ${up.proxyProtocol}` : '';
    const d = up.discovery;
    const servers = d
      ? [`DNS ${d.type} ${d.name}${d.port === undefined ? '' : `:${d.port}`}, re-resolved at least every ${formatDuration(d.intervalMs)}`]
      : up.servers.map((s) => (s.weight === 1 ? s.address : `${s.address} (weight ${s.weight})`));
    lines.push(`  ${up.name} (${algo}, retries ${up.retries}${health}${proxy}): ${servers.join(', ')}`);
  }
  lines.push('routes:');
  const width = Math.max(...config.routes.map((r) => r.host.length + r.path.length + 1));
  for (const r of config.routes) {
    const named = r.name === `${r.host}${r.path}` ? '' : ` (${r.name})`;
    lines.push(`  ${`${r.host} ${r.path}`.padEnd(width)} -> ${r.upstream}${named}`);
  }
  // DSR (issue 13): the L4 tier beside the proxy, one line per VIP.
  if (config.dsr.length > 0) lines.push('dsr (L4 Direct Server Return, forwarder process):');
  for (const d of config.dsr) {
    const method = d.method === 'l3' ? `l3, dscp ${d.dscp}` : 'l2';
    const servers = config.upstreams[d.upstream]?.servers.map((s) => `${s.host} (${s.mac})`) ?? [];
    const threads = `${d.threads} thread${d.threads === 1 ? '' : 's'}`;
    lines.push(
      `  ${d.interface} ${d.vip}:${d.ports.join(',')} -> ${d.upstream} (${method}, ${threads}, ${d.flowTableSize} flows, idle ${formatDuration(d.flowIdleMs)}): ${servers.join(', ')}`,
    );
  }
  return lines.join('\n');
}
