import type { FastifyInstance } from 'fastify';
import { BadRequest } from '../errors/http-errors.ts';
import { discoverHomeRealm } from '../federation/domain.ts';
import { grantableScope } from '../oauth/scope.ts';
import type { Services } from '../services/container.ts';
import { isUuid } from '../storage/resources.ts';
import { describeSession } from './me.ts';
import { authenticatePassword } from './password-sign-in.ts';
import { authenticate, authOf } from './require-auth.ts';
import { assertPkce, chooseMembership, startLogin } from './start-login.ts';

const str = (max: number) => ({ type: 'string', maxLength: max }) as const;
/**
 * A string that is stored (the nonce goes into the Login row): no control characters, so a NUL can
 * never reach PostgreSQL's text type as a 500 (RB-02).
 */
const text = (max: number) =>
  ({ type: 'string', maxLength: max, pattern: '^[^\\u0000-\\u001f\\u007f]*$' }) as const;

interface LoginBody {
  email: string;
  password: string;
  projectId?: string;
  clientId?: string;
  scope?: string;
  nonce?: string;
  codeChallenge?: string;
  codeChallengeMethod?: string;
}

/** Medplum-compatible /auth/* JSON routes (protocol.md §2). */
export function registerAuthRoutes(app: FastifyInstance, services: Services): void {
  app.post<{ Body: LoginBody }>(
    '/auth/login',
    {
      schema: {
        body: {
          type: 'object',
          required: ['email', 'password'],
          properties: {
            email: str(320),
            password: str(1024),
            projectId: str(64),
            clientId: str(64),
            scope: text(2048),
            nonce: text(512),
            codeChallenge: str(128),
            codeChallengeMethod: str(16),
            remember: { type: 'boolean' },
            resourceType: str(64),
          },
        },
      },
    },
    async (request) => {
      const body = request.body;
      // RFC 6749 §3.2 spirit: an empty value counts as omitted; anything else must name a project.
      const projectId = body.projectId === '' ? undefined : body.projectId;
      if (projectId !== undefined && !isUuid(projectId))
        throw new BadRequest('projectId is not valid', 'projectId');
      const client = body.clientId ? await services.clients.get(body.clientId) : undefined;
      if (body.clientId && (!client || client.status === 'off'))
        throw new BadRequest('Client not found', 'clientId');
      assertPkce(client, body.codeChallenge, body.codeChallengeMethod);
      const user = await authenticatePassword(services, {
        ip: request.ip,
        email: body.email,
        password: body.password,
        projectId: client?.meta.project ?? projectId,
      });
      const result = await startLogin(services, {
        userRef: `User/${user.id}`,
        authMethod: 'password',
        client,
        projectId,
        scope: grantableScope(body.scope),
        nonce: body.nonce,
        codeChallenge: body.codeChallenge,
        codeChallengeMethod: body.codeChallengeMethod,
      });
      if (result.code !== undefined) return { login: result.login.id, code: result.code };
      return {
        login: result.login.id,
        memberships: result.memberships.map((m) => ({
          id: m.id,
          project: m.project,
          profile: m.profile,
        })),
      };
    },
  );

  app.post<{ Body: { login: string; profile: string } }>(
    '/auth/profile',
    {
      schema: {
        body: {
          type: 'object',
          required: ['login', 'profile'],
          properties: { login: str(64), profile: str(64) },
        },
      },
    },
    async (request) => {
      const login = await services.logins.get(request.body.login);
      // A domain sign-in is bound to its browser by an HttpOnly cookie that only the hosted /signin
      // page reads (this CORS route reads no cookie): it is completed there, never here.
      if (login?.details?.domainFlow === true) {
        throw new BadRequest('Complete this sign-in on the hosted sign-in page', 'login');
      }
      const code = await chooseMembership(services, login, request.body.profile);
      return { login: request.body.login, code };
    },
  );

  app.post<{ Body: { email?: unknown; projectId?: string } }>(
    '/auth/method',
    {
      // `email` is checked by the handler, so that a missing or malformed one answers Medplum's
      // "Valid email address is required".
      schema: { body: { type: 'object', properties: { projectId: str(64) } } },
    },
    // Home-realm discovery by e-mail domain (protocol.md §2; federation/domain.ts).
    async (request) => discoverHomeRealm(services, request.body),
  );

  app.get('/auth/me', { onRequest: authenticate(services) }, async (request, reply) => {
    return reply.header('cache-control', 'no-store').send(await describeSession(services, authOf(request)));
  });
}
