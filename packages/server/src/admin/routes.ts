import type { FastifyInstance } from 'fastify';
import { authenticate, authOf } from '../auth/require-auth.ts';
import { NotFound } from '../errors/http-errors.ts';
import type { Project } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import { retireClientSecret, rotateClientSecret } from './client-secret.ts';
import { createClient, type NewClientRequest } from './clients.ts';
import { type InviteRequest, inviteMember } from './invite.ts';
import { assertProjectAdmin, assertSuperAdmin } from './permissions.ts';
import { createProject } from './projects.ts';

const name = { type: 'string', minLength: 1, maxLength: 200 } as const;
const uri = { type: 'string', minLength: 1, maxLength: 2000 } as const;

const projectParams = {
  type: 'object',
  required: ['projectId'],
  properties: { projectId: { type: 'string', maxLength: 64 } },
} as const;

async function loadProject(services: Services, projectId: string): Promise<Project> {
  const project = await services.repo.read<Project>('Project', projectId);
  if (!project) throw new NotFound(`Project ${projectId} not found`);
  return project;
}

/** /admin/* (protocol.md §2): thin handlers over `admin/*.ts`; every route needs a bearer token. */
export function registerAdminRoutes(app: FastifyInstance, services: Services): void {
  const auth = authenticate(services);
  app.post<{ Body: { name: string } }>(
    '/admin/projects',
    {
      onRequest: auth,
      schema: {
        body: { type: 'object', required: ['name'], properties: { name } },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      assertSuperAdmin(auth);
      const project = await createProject(services, auth, request.body.name.trim());
      return reply.code(201).type('application/fhir+json').send(project);
    },
  );

  app.post<{ Params: { projectId: string }; Body: InviteRequest }>(
    '/admin/projects/:projectId/invite',
    {
      onRequest: auth,
      schema: {
        params: projectParams,
        body: {
          type: 'object',
          required: ['resourceType', 'firstName', 'lastName'],
          properties: {
            resourceType: { type: 'string', enum: ['Practitioner', 'Patient'] },
            firstName: name,
            lastName: name,
            email: { type: 'string', maxLength: 320 },
            externalId: { type: 'string', minLength: 1, maxLength: 256 },
            password: { type: 'string', maxLength: 1024 },
            admin: { type: 'boolean' },
          },
        },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      assertProjectAdmin(auth, request.params.projectId);
      const project = await loadProject(services, request.params.projectId);
      const membership = await inviteMember(services, project, request.body);
      return reply.code(201).type('application/fhir+json').send(membership);
    },
  );

  app.post<{ Params: { projectId: string }; Body: NewClientRequest }>(
    '/admin/projects/:projectId/client',
    {
      onRequest: auth,
      schema: {
        params: projectParams,
        body: {
          type: 'object',
          required: ['name'],
          properties: {
            name,
            description: { type: 'string', maxLength: 2000 },
            redirectUris: { type: 'array', maxItems: 50, items: uri },
            redirectUri: uri,
          },
        },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      assertProjectAdmin(auth, request.params.projectId);
      const project = await loadProject(services, request.params.projectId);
      const client = await createClient(services, project, request.body);
      return reply.code(201).header('cache-control', 'no-store').type('application/fhir+json').send(client);
    },
  );

  const clientParams = {
    type: 'object',
    required: ['projectId', 'clientId'],
    properties: { projectId: { type: 'string', maxLength: 64 }, clientId: { type: 'string', maxLength: 64 } },
  } as const;

  app.post<{ Params: { projectId: string; clientId: string } }>(
    '/admin/projects/:projectId/client/:clientId/secret',
    { onRequest: auth, schema: { params: clientParams } },
    async (request, reply) => {
      assertProjectAdmin(authOf(request), request.params.projectId);
      const secret = await rotateClientSecret(services, request.params.projectId, request.params.clientId);
      return reply.header('cache-control', 'no-store').send({ secret });
    },
  );

  app.delete<{ Params: { projectId: string; clientId: string } }>(
    '/admin/projects/:projectId/client/:clientId/secret/retiring',
    { onRequest: auth, schema: { params: clientParams } },
    async (request, reply) => {
      assertProjectAdmin(authOf(request), request.params.projectId);
      await retireClientSecret(services, request.params.projectId, request.params.clientId);
      return reply.code(204).send();
    },
  );
}
