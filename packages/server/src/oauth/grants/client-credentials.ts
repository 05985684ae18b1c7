import { InvalidClient, UnauthorizedClient } from '../errors.ts';
import { issueTokens } from '../issue.ts';
import { grantableScope } from '../scope.ts';
import type { Grant } from './types.ts';

/**
 * RFC 6749 §4.4: a confidential client acting through its own ProjectMembership. Its tokens carry a
 * `login_id` of one long-lived Login per client secret (protocol.md §5), found once and cached, so a
 * token costs a signature and no database write (performance.md).
 */
export const clientCredentialsGrant: Grant = {
  grantType: 'client_credentials',
  async handle({ services, params, identity }) {
    const client = identity.client;
    if (!client || !identity.authenticated) {
      throw new InvalidClient('client_credentials requires client authentication', identity.usedBasic);
    }
    if (client.grantType && !client.grantType.includes('client_credentials')) {
      throw new UnauthorizedClient('this client may not use client_credentials');
    }
    const membership = await services.clients.ownMembership(client);
    if (!membership || membership.active === false) {
      throw new UnauthorizedClient('this client has no active membership');
    }
    const login = await services.clientLogins.loginFor(client, membership, identity.secretDigest ?? '');
    // OP-40: no refresh token; no ID token (there is no end user). Scopes are what the client asked,
    // narrowed to those we understand, without offline_access.
    const scope = grantableScope(params.scope, 'openid')
      .split(' ')
      .filter((s) => s !== 'offline_access')
      .join(' ');
    return issueTokens(services, {
      loginId: login,
      userRef: `ClientApplication/${client.id}`,
      membership,
      client,
      scope,
      authTime: new Date(),
      refreshAllowed: false,
    });
  },
};
