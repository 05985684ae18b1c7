/**
 * The resource model of protocol.md §1: FHIR-style JSON shapes, compatible with Medplum's.
 * Only the fields fedhir reads are typed; any other FHIR resource is a {@link Resource}.
 */

export interface Meta {
  versionId: string;
  lastUpdated: string;
  /** The owning Project's id, for project-owned resources. */
  project?: string;
}

export interface Reference<T extends string = string> {
  reference: `${T}/${string}` | string;
  display?: string;
}

export interface Resource {
  resourceType: string;
  id: string;
  meta: Meta;
  [field: string]: unknown;
}

/** A resource about to be created: the server assigns `id` and `meta`. */
export type NewResource<T extends Resource = Resource> = Omit<T, 'id' | 'meta'> & {
  id?: string;
  meta?: Partial<Meta>;
};

export interface Project extends Resource {
  resourceType: 'Project';
  name: string;
  owner?: Reference<'User'>;
  superAdmin?: boolean;
  features?: string[];
  setting?: { name: string; valueString?: string; valueBoolean?: boolean }[];
}

export interface User extends Resource {
  resourceType: 'User';
  firstName: string;
  lastName: string;
  /** Trimmed, NFC-normalised and lower-cased at every write ({@link normalizeEmail}). */
  email?: string;
  emailVerified?: boolean;
  /** argon2id hash; never served to anyone. */
  passwordHash?: string;
  /** Present for project-scoped users; absent for server-scoped users who may join several projects. */
  project?: Reference<'Project'>;
}

export type ProfileType = 'Practitioner' | 'Patient' | 'RelatedPerson' | 'ClientApplication';

export interface ProjectMembership extends Resource {
  resourceType: 'ProjectMembership';
  project: Reference<'Project'>;
  user: Reference<'User' | 'ClientApplication'>;
  profile: Reference<ProfileType>;
  active?: boolean;
  admin?: boolean;
  externalId?: string;
  accessPolicy?: Reference<'AccessPolicy'>;
}

export type TokenVerificationMethod = 'userinfo' | 'jwks' | 'introspection';

export interface IdentityProvider {
  issuer?: string;
  audience?: string;
  jwksUrl?: string;
  introspectionUrl?: string;
  authorizeUrl?: string;
  tokenUrl?: string;
  tokenAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  userInfoUrl?: string;
  clientId?: string;
  /** Write-only: stored encrypted (`clientSecretEncrypted`), never answered; reads show `clientSecretSet`. */
  clientSecret?: string;
  usePkce?: boolean;
  useSubject?: boolean;
  tokenVerificationMethod?: TokenVerificationMethod;
  justInTimeProvisioning?: boolean;
  /** `AccessPolicy/<id>` given to just-in-time provisioned memberships; required with provisioning on. */
  justInTimeAccessPolicy?: string;
  allowUnverifiedEmail?: boolean;
}

export interface ClientApplication extends Resource {
  resourceType: 'ClientApplication';
  name: string;
  description?: string;
  /** Stored as a SHA-256 digest (`secretDigest`); answered once, by the request that creates or rotates it. */
  secret?: string;
  redirectUris?: string[];
  /** Legacy single redirect URI (Medplum). */
  redirectUri?: string;
  pkceOptional?: boolean;
  identityProvider?: IdentityProvider;
  accessTokenLifetime?: string | number;
  refreshTokenLifetime?: string | number;
  refreshTokenReuseGrace?: number;
  allowedOrigin?: string[];
  grantType?: string[];
  status?: 'active' | 'off' | 'error';
  publicExchange?: boolean;
  requireClientAuth?: boolean;
  legacyExternalState?: boolean;
  idTokenSignedResponseAlg?: 'RS256' | 'ES256';
}

export interface DomainConfiguration extends Resource {
  resourceType: 'DomainConfiguration';
  domain: string;
  identityProvider: IdentityProvider;
  project?: Reference<'Project'>;
}

export interface HumanName {
  given?: string[];
  family?: string;
  text?: string;
}

export interface ProfileResource extends Resource {
  resourceType: 'Practitioner' | 'Patient' | 'RelatedPerson';
  name?: HumanName[];
  telecom?: { system?: string; value?: string; use?: string }[];
}

/** Resource types that only the server writes, or only through dedicated endpoints. */
export const AUTH_RESOURCE_TYPES = [
  'Project',
  'User',
  'ProjectMembership',
  'ClientApplication',
  'DomainConfiguration',
  'Login',
  'AuditEvent',
] as const;

export interface Practitioner extends ProfileResource {
  resourceType: 'Practitioner';
}

export interface Patient extends ProfileResource {
  resourceType: 'Patient';
}
