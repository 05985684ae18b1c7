import type { Grant } from './types.ts';

/**
 * RFC 8693 token exchange (protocol.md §4): the grant reads its parameters; the work is shared with
 * the legacy POST /auth/exchange in federation/exchange.ts.
 */
export const tokenExchangeGrant: Grant = {
  grantType: 'urn:ietf:params:oauth:grant-type:token-exchange',
  handle({ services, params, identity }) {
    return services.exchange.exchange({
      identity,
      subjectToken: params.subject_token,
      subjectTokenType: params.subject_token_type,
      scope: params.scope,
      membershipId: params.membership_id,
      audience: params.audience,
      resource: params.resource,
      requestedTokenType: params.requested_token_type,
      actorToken: params.actor_token,
      actorTokenType: params.actor_token_type,
    });
  },
};
