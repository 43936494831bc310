/** Median, minimum and maximum of the repeats of one measurement. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Number of repeats summarized. */
  n: number;
}

export function summarize(values: number[]): Summary {
  if (values.length === 0) throw new Error('cannot summarize an empty list of measurements');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, n: sorted.length };
}

/**
 * Ratios of paired repeats: the product's value of repeat i divided by the yardstick's value of the same
 * repeat, so both sides of each ratio ran under the same CPU speed.
 */
export function pairedRatios(product: number[], yardstick: number[]): number[] {
  const pairs = Math.min(product.length, yardstick.length);
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) ratios.push((product[i] as number) / (yardstick[i] as number));
  return ratios;
}

/** High-resolution wall-clock time in ms, comparable between the processes of one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
