import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.ts';

/**
 * SECRET_KEY, or for the embedded mode a generated one kept in DATA_DIR/secret.key (0600).
 * With DATABASE_URL the variable is mandatory (config.ts), because instances must share it.
 */
export function resolveSecretKey(config: Config, warn: (message: string) => void): string {
  if (config.secretKey) return config.secretKey;
  const path = join(config.dataDir, 'secret.key');
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(48).toString('base64url');
  writeFileSync(path, `${key}\n`, { mode: 0o600, flag: 'wx' });
  warn(
    `SECRET_KEY is not set: generated one into ${path}. Back it up with the data; set SECRET_KEY in production.`,
  );
  return key;
}
