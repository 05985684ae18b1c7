import type { FastifyBaseLogger } from 'fastify';

type Bindings = Record<string, unknown>;
type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];
type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
/** What the parent must offer beyond Fastify's logger interface (pino has it). */
type ParentLogger = FastifyBaseLogger & { isLevelEnabled(level: string): boolean };

/**
 * A request's logger that becomes a pino child only when the request logs at an enabled level.
 * Fastify makes a child per request for the request id; making one runs every redaction path of
 * http/logger.ts over the bindings (pino 10's redactor parses each wildcard path per call): ~3.6 KB
 * and a few µs a request, ~10 % of what a client_credentials token allocates (docs/performance.md),
 * spent although at the default level a served request writes no line. Once something logs, the
 * child is made with exactly the bindings and options Fastify gave, so the lines are the same.
 */
class DeferredChildLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: ParentLogger,
    private readonly bindings: Bindings,
  ) {}

  /** pino's child for these bindings, made at the first call. */
  private materialized(): FastifyBaseLogger {
    this.made ??= this.parent.child(this.bindings);
    return this.made;
  }

  get level(): string {
    return this.made?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.materialized().level = level;
  }

  private log(level: Level, args: unknown[]): void {
    if (!this.made && !this.parent.isLevelEnabled(level)) return;
    (this.materialized()[level] as (...a: unknown[]) => void)(...args);
  }

  // Methods on the prototype, not arrow fields: seven closures a request would cost what this saves.
  fatal(...args: unknown[]): void {
    this.log('fatal', args);
  }
  error(...args: unknown[]): void {
    this.log('error', args);
  }
  warn(...args: unknown[]): void {
    this.log('warn', args);
  }
  info(...args: unknown[]): void {
    this.log('info', args);
  }
  debug(...args: unknown[]): void {
    this.log('debug', args);
  }
  trace(...args: unknown[]): void {
    this.log('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildOptions): FastifyBaseLogger {
    return this.materialized().child(bindings, options);
  }
}

/**
 * Fastify's `childLoggerFactory`: a deferred child for the common case (the request id as the only
 * binding, no per-route level or serializers); pino's own child otherwise.
 */
export function deferredChildLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildOptions,
): FastifyBaseLogger {
  const parent = logger as ParentLogger;
  const plain = !options || Object.keys(options).length === 0;
  if (!plain || typeof parent.isLevelEnabled !== 'function') return logger.child(bindings, options);
  return new DeferredChildLogger(parent, bindings);
}
