import type { ProjectMembership } from '../../model/types.ts';
import { InvalidClient, InvalidGrant } from '../errors.ts';
import { issueTokens } from '../issue.ts';
import { required } from '../params.ts';
import { verifierMatches } from '../pkce.ts';
import type { Grant } from './types.ts';

/**
 * RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6) and the hardening of protocol.md §5: single-use codes
 * (a second redemption revokes what the first issued, RFC 6749 §4.1.2), bound to their client and,
 * when the code came from /oauth2/authorize with one, to the redirect_uri.
 */
export const authorizationCodeGrant: Grant = {
  grantType: 'authorization_code',
  async handle({ services, params, identity }) {
    const code = required(params, 'code');
    const redemption = await services.logins.redeemCode(code);
    if (redemption.outcome === 'reused') {
      await services.logins.revoke(redemption.login.id);
      throw new InvalidGrant('authorization code was already used; the grant is revoked');
    }
    if (redemption.outcome !== 'ok') throw new InvalidGrant('invalid or expired authorization code');
    const login = redemption.login;

    // Client binding: a code issued to a client is redeemed by that client only (OP-21). An empty or
    // missing client_id means the client recorded on the code (RFC 6749 §3.2; the Medplum SDK).
    if (login.clientId && identity.clientId !== undefined && identity.clientId !== login.clientId) {
      throw new InvalidGrant('authorization code was issued to another client');
    }
    const client = login.clientId ? await services.clients.get(login.clientId) : undefined;
    if (login.clientId && (!client || client.status === 'off'))
      throw new InvalidGrant('client no longer exists or is disabled');
    if (client?.requireClientAuth && !identity.authenticated) {
      throw new InvalidClient('client authentication required', identity.usedBasic);
    }

    // PKCE. A code issued without a challenge and redeemed with a verifier is a downgrade attempt
    // (RFC 9700 §4.8.2, OP-25).
    const verifier = params.code_verifier;
    if (login.codeChallenge) {
      if (verifier === undefined) throw new InvalidGrant('code_verifier is required');
      if (!verifierMatches(verifier, login.codeChallenge))
        throw new InvalidGrant('code_verifier does not match');
    } else if (verifier !== undefined) {
      throw new InvalidGrant('code_verifier sent for a code issued without code_challenge');
    }

    // RFC 6749 §4.1.3: compared only when the authorization request carried one (OP-22); codes from
    // /auth/login and /auth/external are bound by PKCE (the SDK sends its page origin here).
    if (
      login.details?.authorizeRedirectUri !== undefined &&
      params.redirect_uri !== login.details.authorizeRedirectUri
    ) {
      throw new InvalidGrant('redirect_uri does not match the authorization request');
    }

    if (!login.membershipId) throw new InvalidGrant('sign-in was not completed');
    const membership: ProjectMembership | undefined = await services.access.membership(login.membershipId);
    if (!membership || membership.active === false) throw new InvalidGrant('membership is not active');
    const project = await services.access.project(membership.project.reference.replace('Project/', ''));
    services.logins.remember(login);
    return issueTokens(services, {
      loginId: login.id,
      userRef: login.userRef,
      membership,
      client,
      scope: login.scope,
      nonce: login.nonce,
      authTime: login.authTime,
      refreshAllowed: project?.superAdmin !== true,
    });
  },
};
