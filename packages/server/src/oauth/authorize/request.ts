import type { ClientStore, StoredClient } from '../clients.ts';
import { OAuthError } from '../errors.ts';
import { challengeProblem } from '../pkce.ts';
import { isRegisteredRedirect, registeredRedirects } from '../redirect-uri.ts';
import { grantableScope } from '../scope.ts';

/** The parameters of an authorization request that survive validation (RFC 6749 §4.1.1). */
export interface AuthorizeRequest {
  client: StoredClient;
  redirectUri: string;
  /** Whether the request carried redirect_uri: only then must the token request repeat it (RFC 6749 §4.1.3). */
  redirectUriSent: boolean;
  state: string | undefined;
  scope: string;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
}

/** Shown on the page, never redirected: the redirect URI is not (yet) trusted (AZ✗). */
export class AuthorizePageError extends OAuthError {
  constructor(description: string) {
    super(400, 'invalid_request', description);
  }
}

/** Sent back to the validated redirect URI with `state` and `iss` (AZ→err, RFC 6749 §4.1.2.1). */
export class AuthorizeRedirectError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly redirectUri: string,
    readonly state: string | undefined,
  ) {
    super(description);
  }
}

const MAX = 2048;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Parameters whose repetition makes the request ambiguous before the redirect URI is known. */
const ROUTING = ['client_id', 'redirect_uri'];
const AUTHORIZE_PARAMS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'prompt',
  'request',
  'request_uri',
];

function single(raw: Record<string, unknown>, name: string): { value?: string; repeated: boolean } {
  const value = raw[name];
  if (Array.isArray(value)) return { repeated: true };
  if (value === undefined || value === '') return { repeated: false };
  if (typeof value !== 'string') return { repeated: true };
  return { value, repeated: false };
}

/**
 * Validates an authorization request in the order RFC 6749 §4.1.2.1 requires: first the client and
 * the redirect URI (errors shown on the page: OP-01, OP-02, OP-04), then everything else (errors
 * redirected with `state` and `iss`: OP-07, OP-08, OP-11..14, OP-16).
 */
export async function validateAuthorizeRequest(
  clients: ClientStore,
  raw: Record<string, unknown>,
): Promise<AuthorizeRequest> {
  for (const name of ROUTING) {
    if (single(raw, name).repeated) throw new AuthorizePageError(`${name} is repeated`);
  }
  const clientId = single(raw, 'client_id').value;
  if (!clientId) throw new AuthorizePageError('client_id is required');
  if (clientId.length > 64) throw new AuthorizePageError('unknown client');
  const client = await clients.get(clientId);
  if (!client || client.status === 'off') throw new AuthorizePageError('unknown client');

  const registered = registeredRedirects(client);
  let redirectUri = single(raw, 'redirect_uri').value;
  if (redirectUri === undefined) {
    // OIDC Core §3.1.2.1 requires it; RFC 6749 §3.1.2.3 allows omitting it with one registration.
    if (registered.length !== 1) throw new AuthorizePageError('redirect_uri is required');
    redirectUri = registered[0] as string;
  } else if (redirectUri.length > MAX || !isRegisteredRedirect(registered, redirectUri)) {
    throw new AuthorizePageError('redirect_uri is not registered for this client');
  }

  const stateParam = single(raw, 'state');
  // RFC 6749 Appendix A.5: state is 1*VSCHAR. One that is oversized or holds control characters is
  // not echoed into a Location header (RB-05, RB-06): the request ends on the page.
  if (stateParam.value !== undefined && (stateParam.value.length > MAX || CONTROL.test(stateParam.value))) {
    throw new AuthorizePageError('state is too long or malformed');
  }
  const state = stateParam.repeated ? undefined : stateParam.value;
  const fail = (error: string, description: string): never => {
    throw new AuthorizeRedirectError(error, description, redirectUri as string, state);
  };
  for (const name of AUTHORIZE_PARAMS) {
    if (single(raw, name).repeated) fail('invalid_request', `${name} is repeated`);
    const value = single(raw, name).value;
    if (value !== undefined && value.length > MAX) fail('invalid_request', `${name} is too long`);
    if (value !== undefined && CONTROL.test(value)) fail('invalid_request', `${name} is malformed`);
  }
  if (single(raw, 'request').value !== undefined)
    fail('request_not_supported', 'request objects are not supported');
  if (single(raw, 'request_uri').value !== undefined) {
    fail('request_uri_not_supported', 'request_uri is not supported');
  }
  const responseType = single(raw, 'response_type').value;
  if (responseType === undefined) fail('invalid_request', 'response_type is required');
  if (responseType !== 'code') fail('unsupported_response_type', 'only response_type=code is supported');

  const codeChallenge = single(raw, 'code_challenge').value;
  const codeChallengeMethod = single(raw, 'code_challenge_method').value;
  if (!(client.pkceOptional && codeChallenge === undefined && codeChallengeMethod === undefined)) {
    const problem = challengeProblem(codeChallenge, codeChallengeMethod);
    if (problem) fail('invalid_request', problem);
  }
  const prompt = single(raw, 'prompt').value;
  // No server-side session to reuse: a silent request can never succeed (OIDC Core §3.1.2.6, OP-16).
  if (prompt?.split(' ').includes('none')) fail('login_required', 'no active session');

  const requestedScope = single(raw, 'scope').value;
  const scope = grantableScope(requestedScope, 'openid');
  if (requestedScope !== undefined && scope === '')
    fail('invalid_scope', 'none of the requested scopes is supported');

  return {
    client,
    redirectUri,
    redirectUriSent: single(raw, 'redirect_uri').value !== undefined,
    state,
    scope,
    nonce: single(raw, 'nonce').value,
    codeChallenge,
    codeChallengeMethod,
  };
}

/** The redirect back to the app, with `iss` on every response (RFC 9207 §2, OP-15). */
export function authorizationResponseUrl(
  redirectUri: string,
  issuer: string,
  params: Record<string, string | undefined>,
): string {
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.append(key, value);
  url.searchParams.append('iss', issuer);
  return url.href;
}
