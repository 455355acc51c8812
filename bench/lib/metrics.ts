// Switchyard's GET /metrics as the soak reads it: the per-worker event-loop
// delay gauge (p50, p99, max of the window since the previous scrape), when
// the build exports it.
export const LOOP_DELAY_METRIC = 'switchyard_event_loop_delay_seconds';

export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export async function scrapeMetrics(port: number, token: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(3000),
  });
  if (res.status !== 200) throw new Error(`admin GET /metrics: status ${res.status}`);
  return res.text();
}

/** Whether the scrape declares the loop-delay metric at all (it has no samples before its first window). */
export const hasLoopDelay = (text: string): boolean => text.includes(`# TYPE ${LOOP_DELAY_METRIC} `);

const QUANTILE_FIELD: Record<string, keyof LoopDelay> = { '0.5': 'p50Ms', '0.99': 'p99Ms', '1': 'maxMs' };

/** `worker` label → its loop delay; workers with no complete sample set are left out. */
export function parseLoopDelay(text: string): Map<string, LoopDelay> {
  const partial = new Map<string, Partial<LoopDelay>>();
  const line = new RegExp(`^${LOOP_DELAY_METRIC}\\{([^}]*)\\}\\s+(\\S+)`, 'gm');
  for (const [, labelText, value] of text.matchAll(line)) {
    const labels = Object.fromEntries([...labelText!.matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]));
    const field = QUANTILE_FIELD[labels.quantile ?? ''];
    if (labels.worker === undefined || !field) continue;
    const entry = partial.get(labels.worker) ?? {};
    entry[field] = Number(value) * 1000;
    partial.set(labels.worker, entry);
  }
  const out = new Map<string, LoopDelay>();
  for (const [worker, d] of partial) {
    if (d.p50Ms !== undefined && d.p99Ms !== undefined && d.maxMs !== undefined) out.set(worker, d as LoopDelay);
  }
  return out;
}

/** Summed over workers: a counter's samples in one scrape (every label set). */
function counterSum(text: string, name: string): number {
  let sum = 0;
  for (const [, value] of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'gm'))) sum += Number(value);
  return sum;
}

/**
 * Share of upstream requests that went out on a reused connection, percent;
 * undefined when the build does not count them.
 */
export function upstreamReusePct(text: string): number | undefined {
  if (!text.includes('# TYPE switchyard_upstream_connection_reuses_total ')) return undefined;
  const reused = counterSum(text, 'switchyard_upstream_connection_reuses_total');
  const opened = counterSum(text, 'switchyard_upstream_connections_opened_total');
  return reused + opened > 0 ? (100 * reused) / (reused + opened) : undefined;
}
