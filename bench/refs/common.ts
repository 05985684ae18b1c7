/**
 * Shared plumbing for the reference servers: listen on 127.0.0.1 port 0 and announce `{"port":N}`,
 * exit with the parent (stdin closes) or on SIGTERM/SIGINT, read a bounded body, answer JSON.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Binds 127.0.0.1:0, runs `beforeAnnounce(port)` (e.g. attach a handler that must know its own URL),
 * prints `{"port":N}`, and arranges a clean exit. Resolves with the port.
 */
export async function listenAndAnnounce(
  server: Server,
  onClose?: () => Promise<void>,
  beforeAnnounce?: (port: number) => void | Promise<void>,
): Promise<number> {
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await beforeAnnounce?.(port);
  exitWithParent(async () => {
    server.closeAllConnections?.();
    server.close();
    await onClose?.();
  });
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  return port;
}

/**
 * Exit on SIGTERM/SIGINT and when the parent's stdin pipe closes (the parent died without killing us).
 * Clean-up is bounded to 3 s.
 */
export function exitWithParent(cleanup: () => Promise<void>): void {
  let exiting = false;
  const exit = () => {
    if (exiting) return;
    exiting = true;
    setTimeout(() => process.exit(0), 3000).unref();
    void cleanup()
      .catch(() => {})
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', exit);
  process.once('SIGINT', exit);
  process.stdin.on('end', exit);
  process.stdin.on('error', exit);
  process.stdin.resume();
}

/** Reads the request body as UTF-8, refusing more than `limit` bytes. */
export function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () =>
      resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')),
    );
    req.on('error', reject);
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  extra?: Record<string, string>,
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...extra,
  });
  res.end(text);
}
