import { ClientStorage, MedplumClient, MemoryStorage } from '@medplum/core';
import type { ProjectFixture } from './fixtures.ts';

/**
 * @medplum/core 4 in Node, as a browser page at http://localhost:8000/ would run it: its PKCE
 * verifier lives in `sessionStorage`, it hashes with `window.btoa`, and processCode sends the page
 * origin (medplum-client-behaviour §7). The embedded database runs on its own thread, so these
 * globals never reach PGlite (Emscripten would take a global `window` for a browser).
 */
export function installBrowserShims(): void {
  const g = globalThis as { sessionStorage?: unknown; location?: unknown; window?: unknown };
  g.sessionStorage ??= new MemoryStorage();
  const location = { protocol: 'http:', host: 'localhost:8000' };
  g.location ??= location;
  g.window ??= Object.assign(Object.create(globalThis), { location });
}

export function medplumClient(baseUrl: string, clientId?: string): MedplumClient {
  return new MedplumClient({
    baseUrl,
    ...(clientId ? { clientId } : {}),
    storage: new ClientStorage(new MemoryStorage()),
  });
}

/** A MedplumClient signed in with e-mail and password through the unchanged SDK flow. */
export async function signedInMedplum(
  baseUrl: string,
  user: { email: string; password: string },
  projectId?: string,
): Promise<MedplumClient> {
  installBrowserShims();
  const medplum = medplumClient(baseUrl);
  const login = await medplum.startLogin({
    email: user.email,
    password: user.password,
    ...(projectId ? { projectId } : {}),
  });
  if (!login.code) throw new Error(`sign-in did not complete: ${JSON.stringify(login)}`);
  await medplum.processCode(login.code);
  return medplum;
}

export type { ProjectFixture };
