/**
 * Loopback-only servers for the outbound-guard tests. They count TCP connections and HTTP requests,
 * so a test can prove that a blocked call never reached the socket layer. Nothing here listens on
 * or connects to anything but 127.0.0.0/8 and ::1 (security-cases §0: address cases never leave the
 * machine).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';

export interface CountingServer {
  /** Origin with the bound address and port, e.g. `http://127.0.0.1:41234`. */
  origin: string;
  port: number;
  /** TCP connections accepted so far. */
  connections: number;
  /** HTTP requests received so far (0 for a raw TCP server). */
  requests: number;
  /** Server-side sockets still open. */
  openSockets: Set<Socket>;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function track(server: Server, host: string, protocol: string, port = 0): Promise<CountingServer> {
  const state: CountingServer = {
    origin: '',
    port: 0,
    connections: 0,
    requests: 0,
    openSockets: new Set(),
    close: () =>
      new Promise((resolve) => {
        for (const socket of state.openSockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket: Socket) => {
    state.connections++;
    state.openSockets.add(socket);
    socket.on('close', () => state.openSockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const bound = (server.address() as AddressInfo).port;
      state.port = bound;
      state.origin = `${protocol}//${host.includes(':') ? `[${host}]` : host}:${bound}`;
      resolve(state);
    });
  });
}

/** A `node:http` server on `host` (a loopback address) and an ephemeral port. */
export async function startHttpServer(host: string, handler: Handler): Promise<CountingServer> {
  let counted: CountingServer | undefined;
  const server = createHttpServer((req, res) => {
    if (counted) counted.requests++;
    handler(req, res);
  });
  counted = await track(server, host, 'http:');
  return counted;
}

/** An HTTPS server (`node:https`) with the given certificate; `onServername` sees the client's SNI. */
export async function startHttpsServer(
  host: string,
  credentials: { key: string; cert: string },
  onServername: (servername: string) => void,
): Promise<CountingServer> {
  let counted: CountingServer | undefined;
  const server = createHttpsServer(
    {
      ...credentials,
      SNICallback: (servername, callback) => {
        onServername(servername);
        callback(null, createSecureContext(credentials));
      },
    },
    (_req, res) => {
      if (counted) counted.requests++;
      res.end('{}');
    },
  );
  counted = await track(server, host, 'https:');
  return counted;
}

/**
 * A raw TCP server that accepts and immediately drops connections (a TLS client then fails), on
 * `port` (0 for an ephemeral one).
 */
export function startTcpServer(host: string, port = 0): Promise<CountingServer> {
  const server = createNetServer((socket) => socket.destroy());
  return track(server, host, 'https:', port);
}

/** Whether this machine can bind `host` (e.g. `::1` is missing in some containers). */
export async function canListen(host: string): Promise<boolean> {
  const server = createNetServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

/** A throw-away self-signed certificate for `commonName`, or undefined when openssl is missing. */
export function selfSignedCertificate(commonName: string): { key: string; cert: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'fedhir-outbound-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${commonName}`,
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
