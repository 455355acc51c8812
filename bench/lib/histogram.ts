// Latency histogram with 10 µs buckets up to 10 s (autocannon's own rounds to
// whole milliseconds, too coarse for loopback). Recording is one array write,
// so it adds nothing measurable to the load generator.
const BUCKET_US = 10;
const BUCKETS = 1_000_000;

export class LatencyHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  private total = 0;

  record(ms: number): void {
    const i = Math.min(BUCKETS - 1, Math.max(0, Math.floor((ms * 1000) / BUCKET_US)));
    this.counts[i]!++;
    this.total++;
  }

  /** The latency (ms, bucket upper bound) at or under which `p` percent of samples fall. */
  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return ((i + 1) * BUCKET_US) / 1000;
    }
    return (BUCKETS * BUCKET_US) / 1000;
  }
}
