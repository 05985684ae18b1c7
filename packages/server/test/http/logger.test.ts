/**
 * Secrets in log lines (src/http/logger.ts): every secret field name is redacted where it stands at
 * the top of a logged object and one level down, through a real pino with the server's options.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { loggerOptions, SECRET_FIELDS } from '../../src/http/logger.ts';

test('every secret field name is redacted at the top of a logged object and one level down', () => {
  const lines: string[] = [];
  const logger = pino(loggerOptions('info') as pino.LoggerOptions, {
    write: (line: string) => lines.push(line),
  });
  for (const name of SECRET_FIELDS) {
    logger.info({ [name]: `top-${name}-value` }, 'top');
    logger.info({ body: { [name]: `nested-${name}-value` } }, 'nested');
  }
  assert.equal(lines.length, 2 * SECRET_FIELDS.length);
  for (const line of lines) {
    assert.doesNotMatch(line, /-value/, `a secret reached the log: ${line}`);
    assert.match(line, /\[redacted\]/);
  }
  // Other fields pass: the redaction is by name, not everything.
  logger.info({ errorCode: 'ECONNREFUSED', body: { grant_type: 'client_credentials' } }, 'kept');
  assert.match(lines.at(-1) ?? '', /ECONNREFUSED.*client_credentials/);
});
