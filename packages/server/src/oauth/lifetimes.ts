import type { Config } from '../config.ts';
import type { ClientApplication } from '../model/types.ts';

/** Medplum stores lifetimes as `3600`, `"3600s"`, `"60m"`, `"1h"` or `"14d"`. */
export function parseDurationSeconds(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
  const match = /^(\d{1,9})\s*(s|m|h|d)?$/.exec(value.trim());
  if (!match) return undefined;
  const n = Number(match[1]);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(match[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

/** Access tokens live > 5 min always (the Medplum SDK refreshes 5 min before expiry). */
const MIN_ACCESS_TOKEN_SECONDS = 301;

export function accessTokenLifetime(config: Config, client: ClientApplication | undefined): number {
  const own = parseDurationSeconds(client?.accessTokenLifetime);
  return Math.max(MIN_ACCESS_TOKEN_SECONDS, own ?? config.accessTokenLifetime);
}

export function refreshTokenLifetime(config: Config, client: ClientApplication | undefined): number {
  return parseDurationSeconds(client?.refreshTokenLifetime) ?? config.refreshTokenLifetime;
}

/** Seconds a rotated refresh token keeps answering the same successor (protocol.md §5; 0–60, default 10). */
export function refreshReuseGrace(client: ClientApplication | undefined): number {
  const grace = client?.refreshTokenReuseGrace;
  if (typeof grace !== 'number' || !Number.isFinite(grace)) return 10;
  return Math.min(60, Math.max(0, Math.floor(grace)));
}
