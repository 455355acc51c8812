// Command-line flags of `npm run bench` (documented in bench/README.md).
import { parseArgs } from 'node:util';

export interface Options {
  systems?: string[];
  scenarios?: string[];
  rounds: number;
  durationSec: number;
  warmupSec: number;
  connections: number;
  driver: 'autocannon' | 'wrk';
  /** Also write the SVG chart here (bench/README.md embeds bench/chart.svg). */
  chart?: string;
}

const USAGE = `usage: npm run bench -- [--systems a,b] [--scenarios x,y] [--rounds N]
       [--duration S] [--warmup S] [--connections C] [--quick] [--driver autocannon|wrk]
       [--chart FILE]   (also write the SVG chart to FILE, e.g. bench/chart.svg)`;

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got "${value}"\n${USAGE}`);
  return n;
}

const list = (v: string | undefined): string[] | undefined =>
  v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      systems: { type: 'string' },
      scenarios: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      quick: { type: 'boolean', default: false },
      driver: { type: 'string', default: 'autocannon' },
      help: { type: 'boolean', default: false },
      chart: { type: 'string' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.driver !== 'autocannon' && values.driver !== 'wrk') throw new Error(`--driver must be autocannon or wrk\n${USAGE}`);
  return {
    systems: list(values.systems),
    scenarios: list(values.scenarios),
    rounds: Math.round(positive('rounds', values.rounds, 3)),
    durationSec: positive('duration', values.duration, values.quick ? 3 : 10),
    warmupSec: positive('warmup', values.warmup, 2),
    connections: Math.round(positive('connections', values.connections, 64)),
    driver: values.driver,
    chart: values.chart,
  };
}
