import type { Services } from '../../services/container.ts';
import type { ClientIdentity } from '../client-auth.ts';
import type { IssuedTokens } from '../issue.ts';
import type { OAuthParams } from '../params.ts';

export interface GrantRequest {
  services: Services;
  params: OAuthParams;
  identity: ClientIdentity;
  /** The caller's IP, for rate limits and audit. */
  ip: string;
}

/** One grant type: its handler and the parameters it accepts (others are ignored, RFC 6749 §3.2). */
export interface Grant {
  grantType: string;
  handle(request: GrantRequest): Promise<IssuedTokens>;
}
