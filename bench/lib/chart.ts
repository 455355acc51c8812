// The bench's comparison as one SVG (no plotting library, no service): two
// panels of grouped bars, req/s above and proxy CPU per request below, one
// group per scenario and one colour per system, with the value on each bar.
// Each scenario is scaled to its own largest value: 100 B and 1 MB responses
// differ by orders of magnitude, and what a reader compares is the systems
// within a scenario. bench/README.md embeds the copy written with `--chart`.
import type { Row } from './report.js';

const COLOURS = ['#2457c5', '#1f8a4c', '#c62828', '#b26a00', '#7b1fa2', '#00838f', '#6d4c41', '#546e7a', '#ad1457', '#9e9d24', '#283593', '#ef6c00'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round number at or above `v` for the axis: 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v)!;
}

const compact = (v: number): string => (v >= 10_000 ? `${(v / 1000).toFixed(0)}k` : v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v >= 100 ? v.toFixed(0) : v.toFixed(1));

interface Panel {
  title: string;
  value(r: Row): number | undefined;
}

const PANELS: Panel[] = [
  { title: 'requests per second (2xx, median over rounds; higher is better; each scenario on its own scale)', value: (r) => r.rps },
  { title: 'proxy CPU per request, µs (whole process tree; lower is better)', value: (r) => r.cpuUsPerReq },
];

export function benchChart(rows: readonly Row[], subtitle: string): string {
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const systems = [...new Set(rows.map((r) => r.system))];
  const colour = new Map(systems.map((s, i) => [s, COLOURS[i % COLOURS.length]!]));
  const bar = 26;
  const gap = 24;
  const left = 20;
  const groupWidth = (s: string) => rows.filter((r) => r.scenario === s).length * bar;
  const width = Math.max(900, left + scenarios.reduce((w, s) => w + groupWidth(s) + gap, 0) + 20);
  const panelHeight = 190;
  const legendRows = Math.ceil(systems.length / 4);
  const top = 48 + legendRows * 18;
  const height = top + PANELS.length * (panelHeight + 50) + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="600">Switchyard and peers, npm run bench</text>`,
    `<text x="${left}" y="34" fill="#555">${esc(subtitle)}</text>`,
  ];
  systems.forEach((s, i) => {
    const x = left + (i % 4) * 150;
    const y = 48 + Math.floor(i / 4) * 18;
    out.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${colour.get(s)}"/><text x="${x + 14}" y="${y}">${esc(s)}</text>`);
  });
  PANELS.forEach((panel, p) => {
    const y0 = top + p * (panelHeight + 50) + 20;
    out.push(`<text x="${left}" y="${y0 - 6}" font-weight="600">${esc(panel.title)}</text>`);
    out.push(`<line x1="${left}" x2="${width - 10}" y1="${y0 + panelHeight}" y2="${y0 + panelHeight}" stroke="#999"/>`);
    let x = left + 8;
    for (const s of scenarios) {
      const start = x;
      const inScenario = rows.filter((r) => r.scenario === s);
      const max = niceMax(Math.max(0, ...inScenario.map((r) => panel.value(r) ?? 0)));
      const scale = (v: number) => (v / max) * panelHeight;
      for (const r of inScenario) {
        const v = panel.value(r);
        if (v !== undefined && !r.failed) {
          const h = Math.max(1, scale(v));
          out.push(
            `<rect x="${x}" y="${(y0 + panelHeight - h).toFixed(1)}" width="${bar - 2}" height="${h.toFixed(1)}" fill="${colour.get(r.system)}"><title>${esc(`${s} · ${r.system}: ${compact(v)}`)}</title></rect>`,
            `<text x="${x + (bar - 2) / 2}" y="${(y0 + panelHeight - h - 3).toFixed(1)}" font-size="9" text-anchor="middle" fill="#333">${compact(v)}</text>`,
          );
        } else if (r.failed) {
          out.push(`<text x="${x + (bar - 2) / 2}" y="${y0 + panelHeight - 3}" font-size="9" text-anchor="middle" fill="#c62828">×</text>`);
        }
        x += bar;
      }
      out.push(`<text x="${(start + x - 2) / 2}" y="${y0 + panelHeight + 14}" text-anchor="middle" font-weight="600">${esc(s)}</text>`);
      x += gap;
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
