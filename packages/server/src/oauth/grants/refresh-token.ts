import { digest } from '../../crypto/digest.ts';
import { InvalidClient, InvalidGrant, InvalidScope } from '../errors.ts';
import { issueTokens, type TokenResponse } from '../issue.ts';
import { refreshReuseGrace } from '../lifetimes.ts';
import { required } from '../params.ts';
import { grantableScope, isSubset } from '../scope.ts';
import type { Grant } from './types.ts';

/**
 * RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14.2): every use rotates the token; a
 * rotated token presented again within the client's grace (two browser tabs refreshing together —
 * the Medplum SDK has no cross-tab lock) answers the same successor pair; after the grace, or from
 * another client, it revokes the whole login family.
 */
export const refreshTokenGrant: Grant = {
  grantType: 'refresh_token',
  async handle({ services, params, identity }) {
    const token = required(params, 'refresh_token');
    // Every check that can fail comes before the rotation: a request refused for its client or its
    // scope must not consume the token (else the rightful client's next refresh looks like reuse and
    // revokes the session).
    const stored = await services.refreshTokens.find(token);
    if (!stored) throw new InvalidGrant('invalid or expired refresh token');
    if (stored.clientId && identity.clientId !== undefined && identity.clientId !== stored.clientId) {
      // A rotated token replayed by another client is reuse: revoke the family (protocol.md §5).
      if (stored.rotatedAt) await services.logins.revoke(stored.loginId);
      throw new InvalidGrant('refresh token was issued to another client');
    }
    const client = stored.clientId ? await services.clients.get(stored.clientId) : undefined;
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

    // One conditional UPDATE decides, across instances, which of concurrent uses rotates (RB-09).
    const rotation = await services.refreshTokens.rotate(token);
    if (rotation.outcome === 'unknown') throw new InvalidGrant('invalid or expired refresh token');
    const row = rotation.row;

    if (rotation.outcome === 'reused') {
      const grace = refreshReuseGrace(client);
      const age = (Date.now() - (row.rotatedAt?.getTime() ?? 0)) / 1000;
      if (age <= grace && (await services.logins.live(row.loginId))) {
        const sealed = await services.refreshTokens.successor(row.digest);
        if (sealed) return JSON.parse(await services.box.open(sealed)) as TokenResponse;
      }
      await services.logins.revoke(row.loginId);
      throw new InvalidGrant('refresh token was already used; the session is revoked');
    }

    const login = await services.logins.live(row.loginId);
    if (!login?.membershipId) throw new InvalidGrant('session revoked');
    const membership = await services.access.membership(login.membershipId);
    if (!membership || membership.active === false) throw new InvalidGrant('membership is not active');

    const full = await services.logins.get(row.loginId);
    const response = await issueTokens(services, {
      loginId: row.loginId,
      userRef: login.userRef,
      membership,
      client,
      scope,
      nonce: full?.nonce,
      authTime: full?.authTime ?? new Date(),
      refreshAllowed: true,
      refreshExpiresAt: row.expiresAt,
    });
    if (refreshReuseGrace(client) > 0) {
      await services.refreshTokens.storeSuccessor(
        digest(token),
        await services.box.seal(JSON.stringify(response)),
      );
    }
    return response;
  },
};
