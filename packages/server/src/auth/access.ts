import type { FastifyRequest } from 'fastify';
import type { Project, ProjectMembership } from '../model/types.ts';
import { InvalidToken } from '../oauth/errors.ts';
import type { AccessTokenClaims, TokenService } from '../oauth/tokens.ts';
import type { InvalidationBus } from '../services/invalidation.ts';
import { TtlCache } from '../services/ttl-cache.ts';
import type { ResourceRepository } from '../storage/resources.ts';
import type { LiveLogin, LoginStore } from './logins.ts';

/** Who is calling, established from a bearer token on every protected request. */
export interface AuthContext {
  claims: AccessTokenClaims;
  login: LiveLogin;
  membership: ProjectMembership;
  project: Project;
  /** A membership of the super-admin project. */
  superAdmin: boolean;
  /** An admin of `project`. */
  projectAdmin: boolean;
}

const CACHE_TTL_MS = 5_000;

/**
 * The bearer check every protected route uses (protocol.md §6): signature and expiry (cached by
 * token), then login not revoked and membership active (cached ≤ 5 s with invalidation), then the
 * project. On a warm cache it makes no database round trip.
 */
export class AccessResolver {
  private readonly memberships = new TtlCache<ProjectMembership | null>(CACHE_TTL_MS, 50_000);
  private readonly projects = new TtlCache<Project | null>(CACHE_TTL_MS, 10_000);

  constructor(
    private readonly tokens: TokenService,
    private readonly logins: LoginStore,
    private readonly repo: ResourceRepository,
    bus: InvalidationBus,
  ) {
    bus.subscribe((event) => {
      if (event.topic === 'membership') this.memberships.delete(event.id);
      if (event.topic === 'project') this.projects.delete(event.id);
    });
  }

  /** The bearer token of a request (RFC 6750 §2.1: the Authorization header only), or undefined. */
  static bearerToken(request: FastifyRequest): string | undefined {
    const header = request.headers.authorization;
    if (typeof header !== 'string') return undefined;
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
    if (!match) throw new InvalidToken('malformed Authorization header');
    return match[1];
  }

  async resolve(token: string): Promise<AuthContext> {
    const claims = await this.tokens.verifyAccessToken(token);
    const login = await this.logins.live(claims.login_id);
    if (!login) throw new InvalidToken('session revoked or expired');
    if (!login.membershipId) throw new InvalidToken('session has no membership');
    const membership = await this.membership(login.membershipId);
    if (!membership || membership.active === false) throw new InvalidToken('membership inactive');
    const projectId = membership.project.reference.replace(/^Project\//, '');
    const project = await this.project(projectId);
    if (!project) throw new InvalidToken('project not found');
    return {
      claims,
      login,
      membership,
      project,
      superAdmin: project.superAdmin === true,
      projectAdmin: membership.admin === true,
    };
  }

  async membership(id: string): Promise<ProjectMembership | undefined> {
    const cached = this.memberships.get(id);
    if (cached !== undefined) return cached ?? undefined;
    const membership = await this.repo.read<ProjectMembership>('ProjectMembership', id);
    this.memberships.set(id, membership ?? null);
    return membership;
  }

  async project(id: string): Promise<Project | undefined> {
    const cached = this.projects.get(id);
    if (cached !== undefined) return cached ?? undefined;
    const project = await this.repo.read<Project>('Project', id);
    this.projects.set(id, project ?? null);
    return project;
  }
}
