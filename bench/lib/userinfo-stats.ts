/** The token-exchange miss cases' check: exactly one provider call per distinct subject token. */

interface UserinfoStats {
  calls: number;
  distinctTokens: number;
  repeated: { token: string; calls: number }[];
}

/**
 * Failures (none when the check holds) for the tokens of one generator (`prefix`, from
 * `distinctTokens`): every token asked for once, and at least one distinct token per 2xx answer.
 * Tokens in flight when a round stopped reach the provider without a counted answer, hence ≥.
 */
export async function oneCallPerToken(origin: string, prefix: string, ok2xx: number): Promise<string[]> {
  const res = await fetch(`${origin}/stats?prefix=${encodeURIComponent(prefix)}`, {
    signal: AbortSignal.timeout(5000),
  });
  const stats = (await res.json()) as UserinfoStats;
  const failures: string[] = [];
  if (stats.calls !== stats.distinctTokens)
    failures.push(
      `the provider saw ${stats.calls} userinfo calls for ${stats.distinctTokens} distinct tokens (want equal; e.g. ${JSON.stringify(stats.repeated)})`,
    );
  if (stats.distinctTokens < ok2xx)
    failures.push(
      `the provider saw ${stats.distinctTokens} distinct tokens for ${ok2xx} successful exchanges`,
    );
  return failures;
}
