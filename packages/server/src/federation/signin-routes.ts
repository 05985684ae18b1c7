import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { LoginRecord } from '../auth/logins.ts';
import { BadRequest, Forbidden, NotFound } from '../errors/http-errors.ts';
import { readCookie, sameSecret, setCookie } from '../http/cookies.ts';
import type { Project, ProjectMembership } from '../model/types.ts';
import { withStrictForms } from '../oauth/form-body.ts';
import { renderDomainChooserPage, renderSignedInPage } from '../pages/signin-pages.ts';
import type { Services } from '../services/container.ts';
import {
  chooseDomainMembership,
  holdsLogin,
  isDomainLogin,
  isPending,
  pendingMemberships,
  SIGNIN_COOKIE,
} from './domain.ts';

const CSRF_COOKIE = 'fedhir_signin_csrf';

const single = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' && value.length <= 512 ? value : undefined;

/**
 * The hosted completion of a domain sign-in (protocol.md §2, §3.1 "Without a client"):
 * - `GET /signin?login=<id>`: the chooser (several memberships) or the signed-in page;
 * - `POST /signin`: the choice, CSRF-protected by a double-submit cookie like /oauth2/authorize;
 * - `GET /auth/login/:login`: the pending login's memberships as JSON, for Medplum's hosted app.
 * All three answer only the browser holding the login's binding cookie (set by `/auth/external`),
 * and none ever answers a code.
 */
export function registerSigninRoutes(app: FastifyInstance, services: Services): void {
  const base = services.config.baseUrl;
  const secure = base.startsWith('https:');

  /** The domain login named by `id`, for the browser that holds it: 404 unknown, 403 another browser. */
  async function boundLogin(id: string | undefined, cookie: string | undefined): Promise<LoginRecord> {
    const login = id ? await services.logins.get(id) : undefined;
    if (!isDomainLogin(login)) throw new NotFound('Sign-in not found');
    if (!holdsLogin(login, cookie)) throw new Forbidden('This sign-in belongs to another browser');
    if (login.revokedAt) throw new BadRequest('This sign-in was revoked', 'login');
    return login;
  }

  const describe = (m: ProjectMembership) => ({ id: m.id, project: m.project, profile: m.profile });
  const label = (m: ProjectMembership) => m.profile.display ?? m.profile.reference;

  const sendPage = (reply: FastifyReply, html: string, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').send(html);

  async function showLogin(reply: FastifyReply, login: LoginRecord, error?: string) {
    if (login.membershipId) {
      const membership = await services.repo.read<ProjectMembership>('ProjectMembership', login.membershipId);
      const project = login.projectId
        ? await services.repo.read<Project>('Project', login.projectId)
        : undefined;
      return sendPage(
        reply,
        renderSignedInPage({
          profile: membership ? label(membership) : (login.profileRef ?? 'your profile'),
          project: project?.name,
        }),
      );
    }
    if (!isPending(login)) throw new BadRequest('This sign-in has expired; please sign in again', 'login');
    const choices = await pendingMemberships(services, login);
    const csrf = randomBytes(24).toString('base64url');
    setCookie(reply, CSRF_COOKIE, csrf, { path: '/signin', maxAgeSeconds: 600, secure });
    return sendPage(
      reply,
      renderDomainChooserPage({
        loginId: login.id,
        csrf,
        choices: choices.map((m) => ({ id: m.id, label: label(m) })),
        error,
      }),
      error ? 400 : 200,
    );
  }

  withStrictForms(app, services.config.bodyLimit, (scope) => {
    scope.get('/signin', async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const login = await boundLogin(single(query.login), readCookie(request, SIGNIN_COOKIE));
      return showLogin(reply, login);
    });

    scope.post('/signin', async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const login = await boundLogin(single(body.login), readCookie(request, SIGNIN_COOKIE));
      if (!isPending(login)) throw new BadRequest('Login not found or already completed', 'login');
      if (!sameSecret(readCookie(request, CSRF_COOKIE), single(body.csrf))) {
        return showLogin(reply, login, 'Your sign-in form expired. Please try again.');
      }
      const membership = single(body.membership);
      if (!membership) return showLogin(reply, login, 'Please choose a profile.');
      await chooseDomainMembership(services, login, membership);
      // Post/redirect/get: a reload shows the result instead of posting the choice again.
      return reply
        .code(303)
        .header('location', `${base}signin?login=${encodeURIComponent(login.id)}`)
        .send();
    });
  });

  app.get<{ Params: { login: string } }>('/auth/login/:login', async (request, reply) => {
    const login = await boundLogin(request.params.login, readCookie(request, SIGNIN_COOKIE));
    if (!isPending(login)) throw new BadRequest('Login not found or already completed', 'login');
    const memberships = await pendingMemberships(services, login);
    return reply
      .header('cache-control', 'no-store')
      .send({ login: login.id, memberships: memberships.map(describe) });
  });
}
