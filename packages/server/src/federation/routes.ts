import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as oauth from 'oauth4webapi';
import { BadRequest } from '../errors/http-errors.ts';
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
import type { Services } from '../services/container.ts';
import type { ExternalIdentityClaims } from './claims.ts';
import { identityFromCode } from './code-identity.ts';
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
export class CallbackError extends BadRequest {}

function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
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
      if (err instanceof ProviderError) throw new CallbackError(`Sign-in failed: ${err.message}`);
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
      if (err instanceof ProviderError) throw new CallbackError(`Sign-in failed: ${err.message}`);
      throw err;
    }
  }

  async function completeLogin(
    client: StoredClient,
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
    const idp = client.identityProvider as StoredIdentityProvider;
    let membership: Awaited<ReturnType<typeof mapIdentity>>;
    try {
      membership = await mapIdentity(services, { projectId: client.meta.project ?? '', idp, identity });
    } catch (err) {
      if (err instanceof MappingError) throw new CallbackError(mappingMessage(err));
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
    return { login: record, code: code as string };
  }

  const redirect = (reply: FastifyReply, url: string) => reply.code(302).header('location', url).send();

  /** §3.1: the Medplum SDK's JSON `state`, chosen by the browser; PKCE in `state` protects the app. */
  async function legacyCallback(
    reply: FastifyReply,
    code: string,
    rawState: string,
    iss: string | undefined,
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
    const client = clientId ? await services.clients.get(clientId) : undefined;
    if (!client?.identityProvider) throw new CallbackError('Identity provider not found');
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
    const provider = await resolve(client.identityProvider as StoredIdentityProvider);
    const identity = await establish(provider, code, iss);
    const result = await completeLogin(client, identity, {
      scope: grantableScope(str('scope')),
      nonce: str('nonce'),
      codeChallenge,
      codeChallengeMethod,
    });
    return redirect(
      reply,
      authorizationResponseUrl(redirectUri, base, { login: result.login.id, code: result.code }),
    );
  }

  /** §3.2: the opaque handle, bound to this browser's cookie; `iss` checked (RFC 9207). */
  async function handleCallback(
    request: FastifyRequest,
    reply: FastifyReply,
    code: string,
    state: string,
    iss: string | undefined,
  ) {
    const flow = await flows.consume(state, readCookie(request, FLOW_COOKIE));
    if (!flow)
      throw new CallbackError('Sign-in expired or was started in another browser; please start again');
    reply.header(
      'set-cookie',
      `${FLOW_COOKIE}=; Path=/auth/external; HttpOnly; SameSite=Lax; Max-Age=0${secure ? '; Secure' : ''}`,
    );
    const client = await services.clients.get(flow.clientId);
    if (!client?.identityProvider) throw new CallbackError('Identity provider not found');
    const provider = await resolve(client.identityProvider as StoredIdentityProvider);
    // RP-13: the code goes only to the provider this state was started for.
    if (provider.key !== flow.provider) throw new CallbackError('identity provider changed during sign-in');
    const identity = await establish(provider, code, iss, flow);
    const result = await completeLogin(client, identity, {
      scope: flow.scope,
      nonce: flow.appNonce,
      codeChallenge: flow.codeChallenge,
      codeChallengeMethod: flow.codeChallengeMethod,
      // §3.2 is /oauth2/authorize with the provider chosen up front: its code is bound to the
      // redirect_uri like any authorization code (RFC 6749 §4.1.3, RP-48 → OP-22).
      authorizeRedirectUri: flow.redirectUri,
    });
    return redirect(
      reply,
      authorizationResponseUrl(flow.redirectUri, base, { code: result.code, state: flow.appState }),
    );
  }

  app.get('/auth/external', async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const state = single(query, 'state');
    const code = single(query, 'code');
    const iss = single(query, 'iss');
    const error = single(query, 'error');
    if (state && !state.startsWith('{')) {
      // Consume the state on a provider error too, so it cannot be replayed (RP-08).
      if (error) {
        await flows.consume(state, readCookie(request, FLOW_COOKIE));
        throw new CallbackError(`The identity provider reported an error: ${error}`);
      }
    }
    if (error) throw new CallbackError(`The identity provider reported an error: ${error}`);
    if (!state) throw new CallbackError('state is missing');
    if (!code) throw new CallbackError('code is missing');
    if (state.startsWith('{')) return legacyCallback(reply, code, state, iss);
    return handleCallback(request, reply, code, state, iss);
  });

  app.get('/auth/external/start', async (request, reply) => {
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
    reply.header(
      'set-cookie',
      `${FLOW_COOKIE}=${cookie}; Path=/auth/external; HttpOnly; SameSite=Lax; Max-Age=600${secure ? '; Secure' : ''}`,
    );
    return redirect(reply, url.href);
  });
}
