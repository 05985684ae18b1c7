import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as oauth from 'oauth4webapi';
import type { AuditInput } from '../audit/audit-log.ts';
import { BadRequest, HttpError } from '../errors/http-errors.ts';
import { readCookie, setCookie } from '../http/cookies.ts';
import {
  AuthorizeRedirectError,
  authorizationResponseUrl,
  validateAuthorizeRequest,
} from '../oauth/authorize/request.ts';
import type { StoredClient } from '../oauth/clients.ts';
import { InvalidRequest } from '../oauth/errors.ts';
import { challengeProblem } from '../oauth/pkce.ts';
import { isRegisteredRedirect, registeredRedirects } from '../oauth/redirect-uri.ts';
import { grantableScope } from '../oauth/scope.ts';
import { httpTooManyRequests } from '../rate-limit/headers.ts';
import type { Services } from '../services/container.ts';
import type { ExternalIdentityClaims } from './claims.ts';
import { identityFromCode } from './code-identity.ts';
import {
  assertEmailInDomain,
  DomainFlowError,
  type DomainRealm,
  findDomainRealm,
  SIGNIN_COOKIE,
  SIGNIN_COOKIE_PATHS,
  SIGNIN_TTL_SECONDS,
  startDomainLogin,
} from './domain.ts';
import { ExternalFlowStore, randomHandle } from './external-flow.ts';
import { MappingError, mapIdentity } from './mapping.ts';
import {
  ProviderError,
  type ResolvedProvider,
  resolveProvider,
  type StoredIdentityProvider,
} from './provider.ts';

const FLOW_COOKIE = 'fedhir_ext';

/** CB✗ (security-cases §0): a 400 page, no code, no redirect to the app. */
export class CallbackError extends BadRequest {
  /**
   * @param reason what the audit trail records: fixed text written by fedhir, never a value from the
   *   request or the provider (default: the message, for messages that are fixed text).
   */
  constructor(
    message: string,
    readonly reason: string = message,
  ) {
    super(message);
  }
}

/**
 * RB-15: starts are throttled per IP. The limiter counts failures, and a start cannot be known to
 * fail (an abandoned sign-in just never calls back), so every start is counted against a budget of
 * its own: `ip:extstart:<ip>` — the `ip:` prefix gives it RATE_LIMIT_FAILURES_PER_IP per
 * RATE_LIMIT_WINDOW_SECONDS (100 per 15 minutes by default), and the rest keeps it apart from the
 * address's failure budget, so sign-ins never lock out password or token requests and vice versa.
 * A person starts a sign-in a few times an hour; an office behind one NAT address would need more
 * than 100 starts in 15 minutes to be slowed, while a flood of abandoned starts (each one a pending
 * row) is cut off at the budget.
 */
const startKey = (ip: string) => `ip:extstart:${ip}`;

/** What the audit event of one callback learns as the callback proceeds. */
type AuditContext = { -readonly [K in 'clientId' | 'userId' | 'loginId' | 'projectId']?: string };

const userIdOf = (ref: string) => (ref.startsWith('User/') ? ref.slice('User/'.length) : undefined);

/** The audit reason of a failed callback: fixed text only (audit-event.ts). */
function auditReason(err: unknown): string {
  if (err instanceof CallbackError) return err.reason;
  if (err instanceof HttpError) return err.issueCode;
  return 'error';
}

/** RFC 6749 §3.1 (RP-09): callback parameters are single-valued. */
function single(query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) throw new CallbackError(`${name} is repeated`);
  if (typeof value !== 'string' || value === '') return undefined;
  if (value.length > 4096) throw new CallbackError(`${name} is too long`);
  return value;
}

function mappingMessage(err: MappingError): string {
  return err.message;
}

/**
 * GET /auth/external (callback, both flows) and GET /auth/external/start (protocol.md §3.1, §3.2).
 * Every failure is a 400 page naming the reason; nothing is redirected to an app before its
 * redirect URI is verified, and no provider call is made before the state is.
 */
export function registerExternalRoutes(app: FastifyInstance, services: Services): void {
  const flows = new ExternalFlowStore(services);
  const base = services.config.baseUrl;
  const callbackUri = `${base}auth/external`;
  const secure = base.startsWith('https:');

  async function resolve(idp: StoredIdentityProvider) {
    try {
      return await resolveProvider(services, idp);
    } catch (err) {
      if (err instanceof ProviderError)
        throw new CallbackError(`Sign-in failed: ${err.message}`, `provider ${err.kind}`);
      throw err;
    }
  }

  /**
   * RFC 9207 §2.4 (RP-11, RP-12): `iss` must name the provider the sign-in is bound to, and is
   * required when its metadata advertises `authorization_response_iss_parameter_supported`. Checked
   * before any call to the provider. A provider configured without an issuer has no identifier to
   * compare with; its binding is the state alone.
   */
  function checkIss(provider: ResolvedProvider, iss: string | undefined): void {
    if (!provider.hasIssuer) return;
    if (iss !== undefined && iss !== provider.as.issuer)
      throw new CallbackError('iss does not match the identity provider');
    if (iss === undefined && provider.as.authorization_response_iss_parameter_supported) {
      throw new CallbackError('iss is missing from the identity provider response');
    }
  }

  async function establish(
    provider: ResolvedProvider,
    code: string,
    iss: string | undefined,
    flow?: { verifier: string; nonce: string },
  ) {
    checkIss(provider, iss);
    try {
      return await identityFromCode(provider, {
        code,
        redirectUri: callbackUri,
        ...(provider.hasIssuer && iss !== undefined ? { iss } : {}),
        ...(flow ? { codeVerifier: flow.verifier, nonce: flow.nonce } : {}),
      });
    } catch (err) {
      if (err instanceof ProviderError)
        throw new CallbackError(`Sign-in failed: ${err.message}`, `provider ${err.kind}`);
      throw err;
    }
  }

  /** RP-44: a sign-in through a domain's provider must come back with an e-mail of that domain. */
  function checkDomain(identity: ExternalIdentityClaims, realm: DomainRealm): void {
    try {
      assertEmailInDomain(identity, realm);
    } catch (err) {
      if (err instanceof DomainFlowError) throw new CallbackError(err.message);
      throw err;
    }
  }

  async function completeLogin(
    client: StoredClient,
    idp: StoredIdentityProvider,
    identity: ExternalIdentityClaims,
    login: {
      scope: string;
      nonce?: string;
      codeChallenge?: string;
      codeChallengeMethod?: string;
      /** §3.2 only: the app's redirect_uri, compared again at the token endpoint (RFC 6749 §4.1.3). */
      authorizeRedirectUri?: string;
    },
  ) {
    let membership: Awaited<ReturnType<typeof mapIdentity>>;
    try {
      membership = await mapIdentity(services, { projectId: client.meta.project ?? '', idp, identity });
    } catch (err) {
      if (err instanceof MappingError) throw new CallbackError(mappingMessage(err), `mapping ${err.reason}`);
      throw err;
    }
    const { login: record, code } = await services.logins.create(
      {
        userRef: membership.user.reference,
        membershipId: membership.id,
        projectId: client.meta.project,
        clientId: client.id,
        profileRef: membership.profile.reference,
        scope: login.scope,
        nonce: login.nonce,
        codeChallenge: login.codeChallenge,
        codeChallengeMethod: login.codeChallengeMethod,
        redirectUri: login.authorizeRedirectUri,
        authMethod: 'external',
        details: {
          provider: identity.provider,
          ...(login.authorizeRedirectUri ? { authorizeRedirectUri: login.authorizeRedirectUri } : {}),
        },
      },
      { withCode: true },
    );
    return { login: record, code: code as string, membership };
  }

  const redirect = (reply: FastifyReply, url: string) => reply.code(302).header('location', url).send();

  /**
   * §3.1: the Medplum SDK's JSON `state`, chosen by the browser; PKCE in `state` protects the app.
   * The provider is the client's, else the DomainConfiguration of `state.domain` (protocol.md §3.1
   * step 1) — for a client, only a configuration of the client's own project.
   */
  async function legacyCallback(
    reply: FastifyReply,
    code: string,
    rawState: string,
    iss: string | undefined,
    audit: AuditContext,
  ) {
    let state: Record<string, unknown>;
    try {
      state = JSON.parse(rawState) as Record<string, unknown>;
    } catch {
      throw new CallbackError('state is not valid');
    }
    if (typeof state !== 'object' || state === null || Array.isArray(state))
      throw new CallbackError('state is not valid');
    const str = (k: string) =>
      typeof state[k] === 'string' && (state[k] as string).length <= 2048 ? (state[k] as string) : undefined;
    const clientId = str('clientId');
    const domain = str('domain');
    if (!clientId) {
      if (!domain) throw new CallbackError('Identity provider not found');
      return domainCallback(reply, code, str, domain, iss, audit);
    }
    const client = await services.clients.get(clientId);
    if (client?.status === 'off') throw new CallbackError('This application is disabled');
    if (client) {
      audit.clientId = client.id;
      audit.projectId = client.meta.project;
    }
    let idp = client?.identityProvider as StoredIdentityProvider | undefined;
    let realm: DomainRealm | undefined;
    if (client && !idp && domain) {
      const found = await findDomainRealm(services, domain, client.meta.project);
      if (found && found.projectId === client.meta.project) {
        realm = found;
        idp = found.idp;
      }
    }
    if (!client || !idp) throw new CallbackError('Identity provider not found');
    if (client.legacyExternalState === false)
      throw new CallbackError('This application requires /auth/external/start');
    if (str('projectId') && str('projectId') !== client.meta.project)
      throw new CallbackError('projectId does not match the client');
    const redirectUri = str('redirectUri');
    if (!redirectUri || !isRegisteredRedirect(registeredRedirects(client), redirectUri)) {
      throw new CallbackError('redirect URI not registered for this client');
    }
    const codeChallenge = str('codeChallenge');
    const codeChallengeMethod = str('codeChallengeMethod');
    if (!(client.pkceOptional && codeChallenge === undefined && codeChallengeMethod === undefined)) {
      const problem = challengeProblem(codeChallenge, codeChallengeMethod);
      if (problem) throw new CallbackError(`state: ${problem}`);
    }
    const provider = await resolve(idp);
    const identity = await establish(provider, code, iss);
    if (realm) checkDomain(identity, realm);
    const result = await completeLogin(client, idp, identity, {
      scope: grantableScope(str('scope')),
      nonce: str('nonce'),
      codeChallenge,
      codeChallengeMethod,
    });
    audit.loginId = result.login.id;
    audit.userId = userIdOf(result.membership.user.reference);
    return redirect(
      reply,
      authorizationResponseUrl(redirectUri, base, { login: result.login.id, code: result.code }),
    );
  }

  /**
   * §3.1 without a client (the domain flow): the DomainConfiguration's provider; only memberships of
   * its project count; the verified e-mail's domain must equal the configured one (RP-44);
   * `returnTo` is ignored (RP-47). The Login is bound to this browser by an HttpOnly cookie scoped to
   * the hosted pages, which finish it: 302 → `<BASE_URL>signin?login=<id>`.
   */
  async function domainCallback(
    reply: FastifyReply,
    code: string,
    str: (k: string) => string | undefined,
    domain: string,
    iss: string | undefined,
    audit: AuditContext,
  ) {
    const realm = await findDomainRealm(services, domain);
    if (!realm) throw new CallbackError('Identity provider not found');
    audit.projectId = realm.projectId;
    if (str('projectId') && str('projectId') !== realm.projectId)
      throw new CallbackError('projectId does not match the domain');
    const codeChallenge = str('codeChallenge');
    const codeChallengeMethod = str('codeChallengeMethod');
    if (codeChallenge !== undefined || codeChallengeMethod !== undefined) {
      const problem = challengeProblem(codeChallenge, codeChallengeMethod);
      if (problem) throw new CallbackError(`state: ${problem}`);
    }
    const provider = await resolve(realm.idp);
    const identity = await establish(provider, code, iss);
    let result: Awaited<ReturnType<typeof startDomainLogin>>;
    try {
      result = await startDomainLogin(services, realm, identity, {
        scope: grantableScope(str('scope')),
        nonce: str('nonce'),
        codeChallenge,
        codeChallengeMethod,
      });
    } catch (err) {
      if (err instanceof DomainFlowError) throw new CallbackError(err.message);
      if (err instanceof MappingError) throw new CallbackError(mappingMessage(err), `mapping ${err.reason}`);
      throw err;
    }
    audit.loginId = result.login.id;
    audit.userId = userIdOf(result.login.userRef);
    for (const path of SIGNIN_COOKIE_PATHS) {
      setCookie(reply, SIGNIN_COOKIE, result.cookie, { path, maxAgeSeconds: SIGNIN_TTL_SECONDS, secure });
    }
    return redirect(reply, `${base}signin?login=${encodeURIComponent(result.login.id)}`);
  }

  /** §3.2: the opaque handle, bound to this browser's cookie; `iss` checked (RFC 9207). */
  async function handleCallback(
    request: FastifyRequest,
    reply: FastifyReply,
    code: string,
    state: string,
    iss: string | undefined,
    audit: AuditContext,
  ) {
    const flow = await flows.consume(state, readCookie(request, FLOW_COOKIE));
    if (!flow)
      throw new CallbackError('Sign-in expired or was started in another browser; please start again');
    setCookie(reply, FLOW_COOKIE, '', { path: '/auth/external', maxAgeSeconds: 0, secure });
    audit.clientId = flow.clientId;
    const client = await services.clients.get(flow.clientId);
    if (client?.status === 'off') throw new CallbackError('This application is disabled');
    if (!client?.identityProvider) throw new CallbackError('Identity provider not found');
    audit.projectId = client.meta.project;
    const idp = client.identityProvider as StoredIdentityProvider;
    const provider = await resolve(idp);
    // RP-13: the code goes only to the provider this state was started for.
    if (provider.key !== flow.provider) throw new CallbackError('identity provider changed during sign-in');
    const identity = await establish(provider, code, iss, flow);
    const result = await completeLogin(client, idp, identity, {
      scope: flow.scope,
      nonce: flow.appNonce,
      codeChallenge: flow.codeChallenge,
      codeChallengeMethod: flow.codeChallengeMethod,
      // §3.2 is /oauth2/authorize with the provider chosen up front: its code is bound to the
      // redirect_uri like any authorization code (RFC 6749 §4.1.3, RP-48 → OP-22).
      authorizeRedirectUri: flow.redirectUriSent === false ? undefined : flow.redirectUri,
    });
    audit.loginId = result.login.id;
    audit.userId = userIdOf(result.membership.user.reference);
    return redirect(
      reply,
      authorizationResponseUrl(flow.redirectUri, base, { code: result.code, state: flow.appState }),
    );
  }

  /** The callback of both flows; the handler around it writes the audit event. */
  async function callback(request: FastifyRequest, reply: FastifyReply, audit: AuditContext) {
    const query = request.query as Record<string, unknown>;
    const state = single(query, 'state');
    const code = single(query, 'code');
    const iss = single(query, 'iss');
    const error = single(query, 'error');
    if (state && !state.startsWith('{')) {
      // Consume the state on a provider error too, so it cannot be replayed (RP-08).
      if (error) {
        await flows.consume(state, readCookie(request, FLOW_COOKIE));
        throw new CallbackError(
          `The identity provider reported an error: ${error}`,
          'identity provider reported an error',
        );
      }
    }
    if (error)
      throw new CallbackError(
        `The identity provider reported an error: ${error}`,
        'identity provider reported an error',
      );
    if (!state) throw new CallbackError('state is missing');
    if (!code) throw new CallbackError('code is missing');
    if (state.startsWith('{')) return legacyCallback(reply, code, state, iss, audit);
    return handleCallback(request, reply, code, state, iss, audit);
  }

  // Every callback, accepted or refused, is an AuditEvent (protocol.md §1; ASVS 4.0 7.1.3, 7.2.1).
  app.get('/auth/external', async (request, reply) => {
    const audit: AuditContext = {};
    const event = (): Omit<AuditInput, 'outcome'> => ({
      action: 'external-login',
      ip: request.ip,
      ...Object.fromEntries(Object.entries(audit).filter(([, v]) => v !== undefined)),
    });
    try {
      const result = await callback(request, reply, audit);
      services.audit.record({ ...event(), outcome: 'success' });
      return result;
    } catch (err) {
      const serious = !(err instanceof HttpError) || err.status >= 500;
      services.audit.record({
        ...event(),
        outcome: serious ? 'serious-failure' : 'minor-failure',
        reason: auditReason(err),
      });
      throw err;
    }
  });

  app.get('/auth/external/start', async (request, reply) => {
    const budget = [startKey(request.ip)];
    const decision = services.limiter.check(budget);
    if (!decision.allowed) {
      services.audit.record({
        action: 'external-login',
        outcome: 'minor-failure',
        reason: 'rate limited',
        ip: request.ip,
      });
      throw httpTooManyRequests(decision);
    }
    services.limiter.recordFailure(budget);
    const query = { ...(request.query as Record<string, unknown>), response_type: 'code' };
    let req: Awaited<ReturnType<typeof validateAuthorizeRequest>>;
    try {
      req = await validateAuthorizeRequest(services.clients, query);
    } catch (err) {
      if (err instanceof AuthorizeRedirectError) {
        return redirect(
          reply,
          authorizationResponseUrl(err.redirectUri, base, {
            error: err.error,
            error_description: err.description,
            state: err.state,
          }),
        );
      }
      throw err;
    }
    const idp = req.client.identityProvider as StoredIdentityProvider | undefined;
    if (!idp) throw new InvalidRequest('this application has no identity provider');
    const provider = await resolve(idp);
    if (!provider.as.authorization_endpoint)
      throw new CallbackError('the identity provider has no authorization endpoint');
    const verifier = oauth.generateRandomCodeVerifier();
    const nonce = randomHandle();
    const { state, cookie } = await flows.create({
      clientId: req.client.id,
      redirectUri: req.redirectUri,
      redirectUriSent: req.redirectUriSent,
      appState: req.state,
      codeChallenge: req.codeChallenge,
      codeChallengeMethod: req.codeChallengeMethod,
      scope: req.scope,
      appNonce: req.nonce,
      verifier,
      nonce,
      provider: provider.key,
    });
    const url = new URL(provider.as.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', idp.clientId ?? '');
    url.searchParams.set('redirect_uri', callbackUri);
    url.searchParams.set('scope', 'openid email profile');
    url.searchParams.set('state', state);
    url.searchParams.set('nonce', nonce);
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    setCookie(reply, FLOW_COOKIE, cookie, { path: '/auth/external', maxAgeSeconds: 600, secure });
    return redirect(reply, url.href);
  });
}
