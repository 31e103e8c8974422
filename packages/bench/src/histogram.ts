/**
 * A mergeable latency histogram: log-spaced buckets 1 % apart, so percentiles are within
 * 1 % of the true value whatever the range, and agents can ship their counts to the parent
 * cheaply (sparse pairs) instead of every sample.
 */
export class Histogram {
  /** Buckets per e-fold: ln(1.01)⁻¹, i.e. 1 % wide. */
  private static readonly K = 1 / Math.log(1.01);
  /** Enough buckets for 1 µs … 10⁹ µs (16 min). */
  private static readonly SIZE = Math.ceil(Math.log(1e9) * Histogram.K) + 2;
  private readonly counts = new Float64Array(Histogram.SIZE);
  private n = 0;
  private sum = 0;
  private maxValue = 0;

  /** Records one value in microseconds (negative values count as 0). */
  record(micros: number): void {
    const v = micros > 1 ? micros : 1;
    let i = Math.floor(Math.log(v) * Histogram.K);
    if (i >= Histogram.SIZE) i = Histogram.SIZE - 1;
    this.counts[i]++;
    this.n++;
    this.sum += v;
    if (v > this.maxValue) this.maxValue = v;
  }

  /** Number of recorded values. */
  get count(): number {
    return this.n;
  }

  /** Mean in microseconds (0 when empty). */
  get mean(): number {
    return this.n === 0 ? 0 : this.sum / this.n;
  }

  /** Largest recorded value in microseconds. */
  get max(): number {
    return this.maxValue;
  }

  /** The value (µs, upper edge of its bucket) below which `q` (0–1) of the values fall; 0 when empty. */
  percentile(q: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Math.exp((i + 1) / Histogram.K), this.maxValue);
    }
    return this.maxValue;
  }

  /** Adds another histogram's counts into this one. */
  merge(other: Histogram | HistogramData): this {
    const data = other instanceof Histogram ? other.toJSON() : other;
    for (const [i, c] of data.buckets) this.counts[i] = (this.counts[i] ?? 0) + c;
    this.n += data.count;
    this.sum += data.sum;
    if (data.max > this.maxValue) this.maxValue = data.max;
    return this;
  }

  /** Forgets every value. */
  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.sum = 0;
    this.maxValue = 0;
  }

  /** Sparse, structured-clone friendly form. */
  toJSON(): HistogramData {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]) buckets.push([i, this.counts[i]!]);
    return { buckets, count: this.n, sum: this.sum, max: this.maxValue };
  }

  /** Rebuilds a histogram from {@link Histogram.toJSON} output. */
  static from(data: HistogramData): Histogram {
    return new Histogram().merge(data);
  }
}

/** Serialized {@link Histogram}. */
export interface HistogramData {
  buckets: Array<[number, number]>;
  count: number;
  sum: number;
  max: number;
}
