import type { Services } from '../../services/container.ts';
import type { StoredClient } from '../clients.ts';
import { InvalidClient, InvalidGrant, InvalidScope } from '../errors.ts';
import { type IssuedTokens, issuedTo, issueTokens, type TokenResponse } from '../issue.ts';
import { refreshReuseGrace, refreshTokenLifetime } from '../lifetimes.ts';
import { required } from '../params.ts';
import type { RefreshLookup } from '../refresh-tokens.ts';
import { grantableScope, isSubset } from '../scope.ts';
import type { Grant } from './types.ts';

/**
 * A rotated token presented again: within the client's grace (two browser tabs refreshing together —
 * the Medplum SDK has no cross-tab lock) it answers the same successor pair; after the grace it
 * revokes the whole login family (protocol.md §5, RFC 9700 §4.14.2).
 */
async function reuse(
  services: Services,
  stored: RefreshLookup,
  client: StoredClient | undefined,
): Promise<IssuedTokens> {
  const grace = refreshReuseGrace(client);
  const age = (Date.now() - (stored.rotatedAt?.getTime() ?? Date.now())) / 1000;
  if (age <= grace && (await services.logins.live(stored.loginId))) {
    const sealed = await services.refreshTokens.successor(stored.digest);
    if (sealed) {
      const response = JSON.parse(await services.box.open(sealed)) as TokenResponse;
      return { response, issuedTo: issuedTo(stored.login.userRef, stored.loginId) };
    }
  }
  await services.logins.revoke(stored.loginId);
  throw new InvalidGrant('refresh token was already used; the session is revoked');
}

/**
 * RFC 6749 §6 with rotation and reuse detection. Two round trips: one read (token and session
 * together), one statement that consumes the token and writes its successor.
 */
export const refreshTokenGrant: Grant = {
  grantType: 'refresh_token',
  async handle({ services, params, identity }) {
    const token = required(params, 'refresh_token');
    // Every check that can fail comes before the rotation: a request refused for its client or its
    // scope must not consume the token (else the rightful client's next refresh looks like reuse and
    // revokes the session).
    const stored = await services.refreshTokens.find(token);
    if (!stored || stored.expiresAt.getTime() <= Date.now())
      throw new InvalidGrant('invalid or expired refresh token');
    if (stored.clientId && identity.clientId !== undefined && identity.clientId !== stored.clientId) {
      // A rotated token replayed by another client is reuse: revoke the family (protocol.md §5).
      if (stored.rotatedAt) await services.logins.revoke(stored.loginId);
      throw new InvalidGrant('refresh token was issued to another client');
    }
    const client = stored.clientId ? await services.clients.get(stored.clientId) : undefined;
    // A disabled or deleted client's sessions end with it, whatever client_id the request names.
    if (stored.clientId && (!client || client.status === 'off'))
      throw new InvalidGrant('client no longer exists or is disabled');
    if (client?.requireClientAuth && !identity.authenticated) {
      throw new InvalidClient('client authentication required', identity.usedBasic);
    }
    let scope = stored.scope;
    if (params.scope !== undefined) {
      // RFC 6749 §6: a refresh may narrow the scope, never widen it.
      const asked = grantableScope(params.scope, '');
      if (!isSubset(asked, stored.scope)) throw new InvalidScope('scope exceeds the original grant');
      scope = asked;
    }
    if (stored.rotatedAt) return reuse(services, stored, client);
    if (stored.login.revoked || !stored.login.membershipId) throw new InvalidGrant('session revoked');
    const membership = await services.access.membership(stored.login.membershipId);
    if (!membership || membership.active === false) throw new InvalidGrant('membership is not active');

    const issued = await issueTokens(services, {
      loginId: stored.loginId,
      userRef: stored.login.userRef,
      membership,
      client,
      scope,
      nonce: stored.login.nonce,
      authTime: stored.login.authTime,
      refreshAllowed: true,
      persistRefresh: false,
    });
    const { response } = issued;
    const grace = refreshReuseGrace(client);
    const won = await services.refreshTokens.rotateTo(
      token,
      response.refresh_token
        ? {
            token: response.refresh_token,
            loginId: stored.loginId,
            clientId: stored.clientId,
            scope,
            // Rotation never extends a session (OP-34): the successor keeps the family's expiry.
            expiresAt:
              stored.expiresAt ?? new Date(Date.now() + refreshTokenLifetime(services.config, client) * 1000),
          }
        : undefined,
      grace > 0 ? await services.box.seal(JSON.stringify(response)) : undefined,
    );
    // Another use rotated it between our read and our write: this one is the reuse.
    if (!won) return reuse(services, { ...stored, rotatedAt: new Date() }, client);
    return issued;
  },
};
