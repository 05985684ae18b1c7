/**
 * The peer: oidc-provider 9 serving client_credentials with ES256 JWT access tokens (RFC 9068 format),
 * default in-memory adapter. One client: `bench-client` / `bench-secret-…` (client_secret_basic or
 * client_secret_post). Token endpoint: POST /token, form `grant_type=client_credentials&scope=api`.
 * The issuer is http://127.0.0.1:<port>, which oidc-provider accepts (no TLS is needed in dev).
 */
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { listenAndAnnounce } from './common.ts';
import { PEER_CLIENT_ID, PEER_CLIENT_SECRET, PEER_RESOURCE } from './fixtures.ts';

const es = await generateKeyPair('ES256', { extractable: true });
const rs = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
const jwks = {
  keys: [
    { ...(await exportJWK(es.privateKey)), kid: 'es256-1', alg: 'ES256', use: 'sig' },
    // ID tokens default to RS256; client_credentials never issues one, but the keystore wants a key for it.
    { ...(await exportJWK(rs.privateKey)), kid: 'rs256-1', alg: 'RS256', use: 'sig' },
  ],
};

// The issuer names the port, so bind first (nothing is served before the handler is attached).
const server = createServer();
await listenAndAnnounce(server, undefined, (port) => {
  const provider = buildProvider(`http://127.0.0.1:${port}`);
  server.on('request', provider.callback());
});

function buildProvider(issuer: string): Provider {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: PEER_CLIENT_ID,
        client_secret: PEER_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks,
    cookies: { keys: ['bench-cookie-key-not-secret-0123456789'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => PEER_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api',
          audience: PEER_RESOURCE,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
  });
  provider.on('server_error', (_ctx, err) =>
    process.stderr.write(`server_error: ${err instanceof Error ? err.stack : String(err)}\n`),
  );
  return provider;
}
