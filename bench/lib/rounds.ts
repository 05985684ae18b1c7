/**
 * Rounds: every round runs every case once, in order (each reference just before its cases), so
 * that the noise of this shared 2-core machine hits a case and its reference alike; then each figure
 * is summarised as the median of the rounds with its min and max.
 */

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/**
 * Runs `fn(item, round)` for round 1..rounds and, inside each round, for every item in order.
 * `shouldStop()` is checked before each run so Ctrl-C ends the loop promptly.
 */
export async function runRounds<T>(
  rounds: number,
  items: readonly T[],
  fn: (item: T, round: number) => Promise<void>,
  shouldStop: () => boolean = () => false,
): Promise<void> {
  for (let round = 1; round <= rounds; round++) {
    for (const item of items) {
      if (shouldStop()) return;
      await fn(item, round);
    }
  }
}
