// Progress of a bench run: before each cell, which cell of how many, what it
// runs, and the time left (from the cells done so far; before the first,
// from the planned seconds per cell), one line on stderr per cell (the
// cell's own result line follows on stdout, so no line is rewritten in place).
const fmt = (sec: number): string => (sec >= 60 ? `${Math.floor(sec / 60)}m ${String(Math.round(sec % 60)).padStart(2, '0')}s` : `${Math.round(sec)}s`);

export class Progress {
  private cellsStarted = 0;
  private readonly startedAt = Date.now();

  constructor(
    private readonly total: number,
    /** Planned seconds per cell (warm-up + measured + start and stop). */
    private readonly plannedSecPerCell: number,
  ) {}

  /** Seconds left after `done` of `total` cells. */
  static left(done: number, total: number, elapsedSec: number, plannedSecPerCell: number): number {
    const perCell = done > 0 ? elapsedSec / done : plannedSecPerCell;
    return (total - done) * perCell;
  }

  next(what: string): void {
    const left = Progress.left(this.cellsStarted, this.total, (Date.now() - this.startedAt) / 1000, this.plannedSecPerCell);
    const line = `[${this.cellsStarted + 1}/${this.total}] ${what}; about ${fmt(left)} left`;
    this.cellsStarted++;
    process.stderr.write(`${line}\n`);
  }

  done(): void {
    process.stderr.write(`bench: ${this.total} cells in ${fmt((Date.now() - this.startedAt) / 1000)}\n`);
  }
}
