import { digestMatches } from '../crypto/digest.ts';
import type { ClientStore, StoredClient } from './clients.ts';
import { InvalidClient, InvalidRequest } from './errors.ts';

export interface ClientCredentialsInput {
  authorization: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  clientAssertion: string | undefined;
}

/** Who the client says it is, and whether it proved it. */
export interface ClientIdentity {
  /** The claimed client id (Basic user name or `client_id` parameter), if any. */
  clientId: string | undefined;
  /** The client, when it exists and, if credentials were sent, they were correct. */
  client: StoredClient | undefined;
  /** True when a correct secret was presented. */
  authenticated: boolean;
  /** Digest of the secret that matched (current or retiring): tokens are tied to the secret used. */
  secretDigest?: string | undefined;
  usedBasic: boolean;
}

/**
 * RFC 6749 §2.3.1: the Basic user name and password are form-urlencoded before base64 — a secret
 * containing `:` `%` `+` arrives encoded, and `+` means a space.
 */
function formDecode(value: string): string {
  if (!value.includes('%') && !value.includes('+')) return value;
  return decodeURIComponent(value.replace(/\+/g, ' '));
}

function parseBasic(header: string): { id: string; secret: string } {
  const match = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header);
  if (!match?.[1]) throw new InvalidClient('malformed Basic credentials', true);
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new InvalidClient('malformed Basic credentials', true);
  try {
    return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    throw new InvalidClient('malformed Basic credentials', true);
  }
}

/** The digest of the stored secret the presented one matches, current or retiring, if any. */
function matchingSecret(client: StoredClient, secret: string): string | undefined {
  if (digestMatches(secret, client.secretDigest)) return client.secretDigest;
  // A rotated secret keeps working as the retiring one for its grace period.
  if (
    client.retiringSecretDigest !== undefined &&
    (client.retiringSecretExpires === undefined || Date.parse(client.retiringSecretExpires) > Date.now()) &&
    digestMatches(secret, client.retiringSecretDigest)
  ) {
    return client.retiringSecretDigest;
  }
  return undefined;
}

/**
 * Client authentication for every OAuth endpoint, in one place: `client_secret_basic` or
 * `client_secret_post` (never both: RFC 6749 §2.3), or a bare `client_id` (public use, allowed or not
 * by the caller). Every failure is `invalid_client` with one generic message, whether the client is
 * unknown or the secret wrong (OP-30: no oracle), and a digest comparison in constant time.
 */
export async function identifyClient(
  clients: ClientStore,
  input: ClientCredentialsInput,
): Promise<ClientIdentity> {
  if (input.clientAssertion !== undefined) {
    throw new InvalidClient('private_key_jwt client authentication is not supported yet');
  }
  let clientId = input.clientId;
  let secret = input.clientSecret;
  const usedBasic = typeof input.authorization === 'string' && /^Basic /i.test(input.authorization);
  if (usedBasic) {
    if (secret !== undefined)
      throw new InvalidRequest('client credentials sent both in the header and the body');
    const basic = parseBasic(input.authorization as string);
    if (clientId !== undefined && clientId !== basic.id) {
      throw new InvalidRequest('client_id does not match the Authorization header');
    }
    clientId = basic.id;
    secret = basic.secret;
  }
  if (clientId === undefined) {
    if (secret !== undefined) throw new InvalidRequest('client_secret without client_id');
    return { clientId: undefined, client: undefined, authenticated: false, usedBasic };
  }
  const client = await clients.get(clientId);
  if (secret !== undefined) {
    const matched = client && client.status !== 'off' ? matchingSecret(client, secret) : undefined;
    if (!client || !matched) throw new InvalidClient('client authentication failed', usedBasic);
    return { clientId, client, authenticated: true, usedBasic, secretDigest: matched };
  }
  if (client?.status === 'off') throw new InvalidClient('client authentication failed', usedBasic);
  return { clientId, client, authenticated: false, usedBasic };
}
