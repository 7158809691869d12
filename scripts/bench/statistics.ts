/** Returns the median of `values`, which must not be empty. */
export function median(values: readonly number[]): number {
  return percentile(Float64Array.from(values).sort(), 0.5);
}

/**
 * Returns the value at quantile `q` (0 to 1) of `sorted`, an ascending
 * array, by the nearest-rank method.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) {
    throw new RangeError("percentile of an empty array");
  }
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

/**
 * Computes Welch's t statistic between two classes of measurements, keeping
 * only those at or below `limit`. `classes[i]`, 0 or 1, is the class
 * of `values[i]`. Returns 0 when either class has fewer than
 * two measurements or neither varies.
 */
export function welchT(
  values: Float64Array,
  classes: Uint8Array,
  limit = Infinity,
): number {
  // Welford's online mean and variance, one accumulator a class.
  const count = [0, 0];
  const mean = [0, 0];
  const squares = [0, 0];

  for (let index = 0; index < values.length; index++) {
    const value = values[index]!;
    if (value > limit) {
      continue;
    }
    const group = classes[index]!;
    count[group]!++;
    const delta = value - mean[group]!;
    mean[group]! += delta / count[group]!;
    squares[group]! += delta * (value - mean[group]!);
  }

  const [count0, count1] = count as [number, number];
  if (count0 < 2 || count1 < 2) {
    return 0;
  }
  const variance0 = squares[0]! / (count0 - 1);
  const variance1 = squares[1]! / (count1 - 1);
  const standardError = Math.sqrt(variance0 / count0 + variance1 / count1);
  return standardError === 0 ? 0 : (mean[0]! - mean[1]!) / standardError;
}

/**
 * Quantiles at which dudect-style tests crop measurements: timing noise
 * (interrupts, garbage collection) sits in the upper tail, and a difference
 * hidden by it can show once that tail is dropped.
 */
export const CROP_QUANTILES = [0.5, 0.75, 0.9, 0.95, 0.99, 0.999] as const;

/** Welch's t over all measurements and over each crop of the upper tail. */
export interface LeakStatistics {
  /** t over all measurements. */
  uncropped: number;
  /** The largest |t| among `uncropped` and every crop. */
  maxAbsolute: number;
}

/**
 * Computes Welch's t for the measurements as dudect does: over all of them
 * and over those below each of `CROP_QUANTILES` of the pooled measurements,
 * reporting the largest |t|.
 */
export function leakStatistics(
  values: Float64Array,
  classes: Uint8Array,
): LeakStatistics {
  const sorted = Float64Array.from(values).sort();
  const uncropped = welchT(values, classes);

  let maxAbsolute = Math.abs(uncropped);
  for (const quantile of CROP_QUANTILES) {
    const t = welchT(values, classes, percentile(sorted, quantile));
    maxAbsolute = Math.max(maxAbsolute, Math.abs(t));
  }
  return { uncropped, maxAbsolute };
}
