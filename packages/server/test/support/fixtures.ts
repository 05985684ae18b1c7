import type { ClientApplication, Project, ProjectMembership } from '../../src/model/types.ts';
import { call, type TestServer, tokenForMembership } from './server.ts';

export interface ProjectFixture {
  project: Project;
  /** An admin of the project (password user). */
  admin: { email: string; password: string; membership: ProjectMembership; token: string };
  /** A confidential client with redirect URIs, and its secret. */
  client: ClientApplication & { secret: string };
}

let counter = 0;

/** A project with an admin user and one client, made through the real admin API. */
export async function createProjectFixture(
  server: TestServer,
  options: { redirectUris?: string[]; name?: string } = {},
): Promise<ProjectFixture> {
  counter++;
  const superToken = await tokenForMembership(server.services, server.adminMembership);
  const project = (
    await call(server, 'POST', '/admin/projects', {
      token: superToken,
      body: { name: options.name ?? `Project ${counter}` },
    })
  ).body as Project;
  const email = `admin${counter}.${Date.now()}@example.com`;
  const password = `pw-${counter}-long-enough`;
  const invited = await call(server, 'POST', `/admin/projects/${project.id}/invite`, {
    token: superToken,
    body: {
      resourceType: 'Practitioner',
      firstName: 'Ada',
      lastName: `Admin${counter}`,
      email,
      password,
      admin: true,
    },
  });
  if (invited.status !== 201) throw new Error(`invite failed: ${JSON.stringify(invited.body)}`);
  const membership = invited.body as ProjectMembership;
  const created = await call(server, 'POST', `/admin/projects/${project.id}/client`, {
    token: superToken,
    body: {
      name: `Client ${counter}`,
      redirectUris: options.redirectUris ?? ['https://app.example.com/callback'],
    },
  });
  if (created.status !== 201) throw new Error(`client failed: ${JSON.stringify(created.body)}`);
  return {
    project,
    admin: { email, password, membership, token: await tokenForMembership(server.services, membership) },
    client: created.body as ClientApplication & { secret: string },
  };
}

/** Posts a form to the token endpoint (or another form endpoint). */
export async function postForm(
  server: { baseUrl: string },
  path: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
) {
  const response = await fetch(new URL(path, server.baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status: response.status, headers: response.headers, body };
}

export function basic(id: string, secret: string): string {
  const enc = (v: string) => encodeURIComponent(v).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/** Read-modify-write of a ClientApplication by the project admin; answers the PUT. */
export async function updateClient(
  server: { baseUrl: string },
  fx: ProjectFixture,
  id: string,
  patch: Record<string, unknown>,
) {
  const stored = await call(server, 'GET', `/fhir/R4/ClientApplication/${id}`, { token: fx.admin.token });
  if (stored.status !== 200) throw new Error(`read client: ${stored.status} ${JSON.stringify(stored.body)}`);
  return call(server, 'PUT', `/fhir/R4/ClientApplication/${id}`, {
    token: fx.admin.token,
    body: { ...stored.body, ...patch },
  });
}
