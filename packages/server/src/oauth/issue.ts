import { randomSecret } from '../crypto/digest.ts';
import type { ProjectMembership } from '../model/types.ts';
import type { Services } from '../services/container.ts';
import type { StoredClient } from './clients.ts';
import { accessTokenLifetime, refreshTokenLifetime } from './lifetimes.ts';
import { hasScope } from './scope.ts';

/** The token response (protocol.md §4–5), as the Medplum SDK and RFC 6749 §5.1 read it. */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  id_token?: string;
  refresh_token?: string;
  issued_token_type?: string;
  project: { reference: string };
  profile: { reference: string; display?: string };
}

export interface IssueInput {
  loginId: string;
  /** `User/<id>` or `ClientApplication/<id>`. */
  userRef: string;
  membership: ProjectMembership;
  client: StoredClient | undefined;
  scope: string;
  nonce?: string | undefined;
  authTime: Date;
  /** Whether a refresh token may be issued at all (not for client_credentials, not for super admins). */
  refreshAllowed: boolean;
  /** On rotation: the family's absolute expiry, which the successor keeps. */
  refreshExpiresAt?: Date | undefined;
  /**
   * False when the caller persists the refresh token itself (a rotation writes it in the same
   * statement that consumes its predecessor); the response then carries a new, unsaved value.
   */
  persistRefresh?: boolean;
}

/** Who a token response was issued to: the audit fields of its AuditEvent. */
export interface IssuedTo {
  /** The User id; absent for a client_credentials token, whose requestor is the client itself. */
  userId?: string;
  loginId: string;
}

/**
 * A token response and whom it was issued to. Every grant returns this pair: the route sends
 * `response` and audits `issuedTo`, known when the tokens are made, so the audit trail never decodes
 * the JWT that was just signed, and nothing rides on the response object itself.
 */
export interface IssuedTokens {
  response: TokenResponse;
  issuedTo: IssuedTo;
}

export function issuedTo(userRef: string, loginId: string): IssuedTo {
  // A client_credentials token's subject is `ClientApplication/<id>`: its AuditEvent names the client
  // (the route's clientId) as the requestor, never a `User/` reference holding a client's id.
  return userRef.startsWith('User/') ? { userId: userRef.slice('User/'.length), loginId } : { loginId };
}

/**
 * Signs the access token (and the ID token when `openid` was granted) and issues a refresh token when
 * `offline_access` was granted. Shared by every grant, so every grant answers the same shape.
 */
export async function issueTokens(services: Services, input: IssueInput): Promise<IssuedTokens> {
  const { config, tokens } = services;
  const lifetime = accessTokenLifetime(config, input.client);
  const subjectId = input.userRef.slice(input.userRef.indexOf('/') + 1);
  const access = await tokens.signAccessToken(
    {
      sub: subjectId,
      login_id: input.loginId,
      client_id: input.client?.id,
      profile: input.membership.profile.reference,
      scope: input.scope,
      username: subjectId,
    },
    lifetime,
  );
  const response: TokenResponse = {
    access_token: access.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    scope: input.scope,
    project: { reference: input.membership.project.reference },
    profile: {
      reference: input.membership.profile.reference,
      ...(input.membership.profile.display ? { display: input.membership.profile.display } : {}),
    },
  };
  if (hasScope(input.scope, 'openid') && input.userRef.startsWith('User/')) {
    response.id_token = await tokens.signIdToken({
      sub: subjectId,
      // OIDC Core §2: aud is the client; without a ClientApplication (Medplum's /auth/login default)
      // the audience is this server's own identifier.
      clientId: input.client?.id ?? config.baseUrl,
      nonce: input.nonce,
      authTime: Math.floor(input.authTime.getTime() / 1000),
      fhirUser: `${config.baseUrl}fhir/R4/${input.membership.profile.reference}`,
      accessToken: access.token,
      lifetimeSeconds: lifetime,
      alg: input.client?.idTokenSignedResponseAlg === 'ES256' ? 'ES256' : 'RS256',
    });
  }
  if (input.refreshAllowed && hasScope(input.scope, 'offline_access') && input.persistRefresh === false) {
    response.refresh_token = randomSecret(32);
  } else if (input.refreshAllowed && hasScope(input.scope, 'offline_access')) {
    response.refresh_token = await services.refreshTokens.issue({
      loginId: input.loginId,
      clientId: input.client?.id,
      scope: input.scope,
      lifetimeSeconds: refreshTokenLifetime(config, input.client),
      expiresAt: input.refreshExpiresAt,
    });
  }
  return { response, issuedTo: issuedTo(input.userRef, input.loginId) };
}
