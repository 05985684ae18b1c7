/**
 * The per-request logger (src/http/request-logger.ts): no pino child is made for a request that
 * logs nothing at an enabled level, and the lines of one that does are the lines pino's own child
 * writes (request id included, redaction applied).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loggerOptions } from '../../src/http/logger.ts';
import { deferredChildLogger } from '../../src/http/request-logger.ts';
import { createTestDatabase } from '../support/db.ts';
import { startServerOn } from '../support/server.ts';

type Level = 'warn' | 'info' | 'trace';

/** A real pino with the server's options, its lines captured, and its `child` calls counted. */
function capturingLogger(level: Level) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(loggerOptions(level) as pino.LoggerOptions, {
    write: (line: string) => lines.push(JSON.parse(line)),
  });
  const counter = { children: 0 };
  const child = logger.child.bind(logger);
  logger.child = ((...args: Parameters<typeof child>) => {
    counter.children++;
    return child(...args);
  }) as typeof logger.child;
  return { logger, lines, counter };
}

const withoutTime = ({ time: _time, ...line }: Record<string, unknown>) => line;

test('deferred child: nothing made below the level; at or above it, the line pino’s child writes', () => {
  const deferred = capturingLogger('warn');
  const direct = capturingLogger('warn');
  const bindings = { reqId: 'req-7' };
  const lazy = deferredChildLogger(deferred.logger, bindings, {});
  lazy.info({ detail: 1 }, 'not written');
  lazy.debug('not written');
  assert.equal(deferred.counter.children, 0, 'a disabled level makes no child');
  assert.equal(deferred.lines.length, 0);
  const eager = direct.logger.child(bindings, {});
  for (const target of [lazy, eager]) {
    target.warn({ password: 'hunter2', body: { client_secret: 's3cret' } }, 'storage unavailable');
    target.error('unhandled error %s', 'x');
  }
  assert.equal(deferred.counter.children, 1, 'the child is made once, at the first enabled line');
  assert.deepEqual(deferred.lines.map(withoutTime), direct.lines.map(withoutTime));
  assert.equal(deferred.lines[0]?.reqId, 'req-7');
  assert.equal(deferred.lines[0]?.password, '[redacted]');
  assert.deepEqual(deferred.lines[0]?.body, { client_secret: '[redacted]' });
});

test('deferred child: options (a route log level, serializers) get pino’s child at once', () => {
  const { logger, counter } = capturingLogger('warn');
  const child = deferredChildLogger(logger, { reqId: 'r' }, { level: 'trace' });
  assert.equal(counter.children, 1);
  assert.equal(child.level, 'trace');
});

test('a server at level warn makes no child logger for requests it serves; at info the request lines carry the request id', async () => {
  for (const level of ['warn', 'info'] as const) {
    const { logger, lines, counter } = capturingLogger(level);
    const server = await startServerOn(await createTestDatabase('pglite'), {
      env: { LOG_LEVEL: level },
      logger: logger as unknown as FastifyInstance['log'],
    });
    try {
      const before = counter.children;
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`${server.baseUrl}healthcheck`);
        assert.equal(response.status, 200);
      }
      const made = counter.children - before;
      const requestLines = lines.filter((line) => line.msg === 'incoming request');
      if (level === 'warn') {
        assert.equal(made, 0, 'no child per request');
        assert.equal(requestLines.length, 0);
      } else {
        assert.equal(made, 20, 'one child per logged request');
        assert.equal(requestLines.length, 20);
        for (const line of requestLines) assert.match(String(line.reqId), /\S/);
        assert.equal(new Set(requestLines.map((line) => line.reqId)).size, 20, 'each request its own id');
      }
    } finally {
      await server.close();
    }
  }
});
