import type { FastifyInstance } from 'fastify';
import type { Services } from '../services/container.ts';
import { GRANTS } from './grants/index.ts';

/**
 * RFC 8414 / OIDC Discovery: exactly what is implemented (OP-41). `issuer` is BASE_URL byte for byte,
 * the same string every token's `iss` carries.
 */
export function discoveryDocument(services: Services) {
  const base = services.config.baseUrl;
  return {
    issuer: base,
    authorization_endpoint: `${base}oauth2/authorize`,
    token_endpoint: `${base}oauth2/token`,
    userinfo_endpoint: `${base}oauth2/userinfo`,
    jwks_uri: `${base}.well-known/jwks.json`,
    introspection_endpoint: `${base}oauth2/introspect`,
    revocation_endpoint: `${base}oauth2/revoke`,
    end_session_endpoint: `${base}oauth2/logout`,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: [...GRANTS.keys()],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256', 'ES256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: [
      'openid',
      'profile',
      'email',
      'offline_access',
      'fhirUser',
      'launch',
      'launch/patient',
    ],
    claims_supported: [
      'sub',
      'iss',
      'aud',
      'exp',
      'iat',
      'auth_time',
      'nonce',
      'at_hash',
      'fhirUser',
      'email',
      'email_verified',
      'name',
      'given_name',
      'family_name',
    ],
    authorization_response_iss_parameter_supported: true,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    claims_parameter_supported: false,
  };
}

export function registerDiscovery(app: FastifyInstance, services: Services): void {
  const cacheable = 'public, max-age=300';
  app.get('/.well-known/openid-configuration', async (_req, reply) =>
    reply.header('cache-control', cacheable).send(discoveryDocument(services)),
  );
  app.get('/.well-known/oauth-authorization-server', async (_req, reply) =>
    reply.header('cache-control', cacheable).send(discoveryDocument(services)),
  );
  app.get('/.well-known/jwks.json', async (_req, reply) =>
    // Short cache: clients must see a new key soon after rotation (OP-43).
    reply.header('cache-control', 'public, max-age=60').send(services.keys.jwks()),
  );
  app.get('/.well-known/smart-configuration', async (_req, reply) => {
    const doc = discoveryDocument(services);
    return reply.header('cache-control', cacheable).send({
      issuer: doc.issuer,
      jwks_uri: doc.jwks_uri,
      authorization_endpoint: doc.authorization_endpoint,
      token_endpoint: doc.token_endpoint,
      introspection_endpoint: doc.introspection_endpoint,
      revocation_endpoint: doc.revocation_endpoint,
      userinfo_endpoint: doc.userinfo_endpoint,
      grant_types_supported: doc.grant_types_supported,
      token_endpoint_auth_methods_supported: doc.token_endpoint_auth_methods_supported,
      scopes_supported: doc.scopes_supported,
      response_types_supported: doc.response_types_supported,
      code_challenge_methods_supported: doc.code_challenge_methods_supported,
      capabilities: [
        'launch-standalone',
        'client-public',
        'client-confidential-symmetric',
        'sso-openid-connect',
        'context-standalone-patient',
        'permission-offline',
        'permission-user',
        'permission-patient',
        'permission-v1',
        'permission-v2',
      ],
    });
  });
}
