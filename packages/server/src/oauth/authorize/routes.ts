import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticatePassword } from '../../auth/password-sign-in.ts';
import { chooseMembership, startLogin } from '../../auth/start-login.ts';
import { HttpError } from '../../errors/http-errors.ts';
import { readCookie, sameSecret, setCookie } from '../../http/cookies.ts';
import { renderChooserPage, renderSignInPage } from '../../pages/sign-in-page.ts';
import type { Services } from '../../services/container.ts';
import { withStrictForms } from '../form-body.ts';
import {
  AuthorizeRedirectError,
  type AuthorizeRequest,
  authorizationResponseUrl,
  validateAuthorizeRequest,
} from './request.ts';

const CSRF_COOKIE = 'fedhir_authz';
const CARRIED = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
];

function carried(raw: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of CARRIED) {
    const v = raw[name];
    if (typeof v === 'string' && v !== '') out[name] = v;
  }
  return out;
}

/** How the "Continue with" button names a provider: its issuer's (or authorization endpoint's) host. */
function providerLabel(idp: { issuer?: string; authorizeUrl?: string }): string {
  for (const url of [idp.issuer, idp.authorizeUrl]) {
    if (!url) continue;
    try {
      return new URL(url).host;
    } catch {
      // not a URL: try the next one
    }
  }
  return 'your identity provider';
}

/**
 * GET/POST /oauth2/authorize: the hosted, server-rendered sign-in (RFC 6749 §4.1). The form is bound
 * to the browser by a double-submit cookie (HttpOnly, SameSite=Lax, path-scoped), so a cross-site
 * form post cannot sign a victim in (login CSRF).
 */
export function registerAuthorize(app: FastifyInstance, services: Services): void {
  const secure = services.config.baseUrl.startsWith('https:');

  const sendPage = (reply: FastifyReply, html: string, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').send(html);

  const redirect = (reply: FastifyReply, url: string) => reply.code(302).header('location', url).send();

  const showSignIn = (
    reply: FastifyReply,
    req: AuthorizeRequest,
    raw: Record<string, unknown>,
    error?: string,
    email?: string,
  ) => {
    const csrf = randomBytes(24).toString('base64url');
    setCookie(reply, CSRF_COOKIE, csrf, { path: '/oauth2/authorize', maxAgeSeconds: 1800, secure });
    const idp = req.client.identityProvider;
    // §3.2: the same authorization request, with the client's provider chosen up front.
    const external = idp
      ? {
          label: providerLabel(idp),
          href: `${services.config.baseUrl}auth/external/start?${new URLSearchParams(carried(raw))}`,
        }
      : undefined;
    return sendPage(
      reply,
      renderSignInPage({
        hidden: { ...carried(raw), csrf },
        clientName: req.client.name,
        error,
        email,
        external,
      }),
      error ? 400 : 200,
    );
  };

  const handle = async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = {
      ...((request.query as object) ?? {}),
      ...((request.method === 'POST' ? request.body : {}) as object),
    } as Record<string, unknown>;
    let req: AuthorizeRequest;
    try {
      req = await validateAuthorizeRequest(services.clients, raw);
    } catch (err) {
      if (err instanceof AuthorizeRedirectError) {
        return redirect(
          reply,
          authorizationResponseUrl(err.redirectUri, services.config.baseUrl, {
            error: err.error,
            error_description: err.description,
            state: err.state,
          }),
        );
      }
      throw err;
    }

    const submitted =
      request.method === 'POST' && (typeof raw.password === 'string' || typeof raw.membership === 'string');
    if (!submitted) return showSignIn(reply, req, raw);
    if (!sameSecret(readCookie(request, CSRF_COOKIE), typeof raw.csrf === 'string' ? raw.csrf : undefined)) {
      return showSignIn(reply, req, raw, 'Your sign-in form expired. Please try again.');
    }

    let code: string | undefined;
    if (typeof raw.membership === 'string' && typeof raw.login === 'string') {
      const login = await services.logins.get(raw.login);
      if (!login || login.clientId !== req.client.id)
        return showSignIn(reply, req, raw, 'Please sign in again.');
      code = await chooseMembership(services, login, raw.membership);
    } else {
      try {
        const user = await authenticatePassword(services, {
          ip: request.ip,
          email: raw.email,
          password: raw.password,
          projectId: req.client.meta.project,
        });
        const result = await startLogin(services, {
          userRef: `User/${user.id}`,
          authMethod: 'password',
          client: req.client,
          projectId: undefined,
          scope: req.scope,
          nonce: req.nonce,
          codeChallenge: req.codeChallenge,
          codeChallengeMethod: req.codeChallengeMethod,
          authorizeRedirectUri: req.redirectUriSent ? req.redirectUri : undefined,
        });
        if (result.code === undefined) {
          return sendPage(
            reply,
            renderChooserPage({
              action: 'authorize',
              hidden: { ...carried(raw), csrf: String(raw.csrf), login: result.login.id },
              choices: result.memberships.map((m) => ({
                id: m.id,
                label: m.profile.display ?? m.profile.reference,
              })),
            }),
          );
        }
        code = result.code;
      } catch (err) {
        if (err instanceof HttpError && err.status === 400) {
          return showSignIn(
            reply,
            req,
            raw,
            err.message,
            typeof raw.email === 'string' ? raw.email : undefined,
          );
        }
        throw err;
      }
    }
    return redirect(
      reply,
      authorizationResponseUrl(req.redirectUri, services.config.baseUrl, { code, state: req.state }),
    );
  };

  withStrictForms(app, services.config.bodyLimit, (scope) => {
    scope.get('/oauth2/authorize', handle);
    scope.post('/oauth2/authorize', handle);
  });
}
