import { setTimeout as sleep } from 'node:timers/promises';
import { verifyPassword } from '../crypto/password.ts';
import { BadRequest } from '../errors/http-errors.ts';
import { attempt } from '../http/attempts.ts';
import { normalizeEmail } from '../model/email.ts';
import type { User } from '../model/types.ts';
import { accountKey } from '../rate-limit/failure-limiter.ts';
import type { Services } from '../services/container.ts';

/** One message for an unknown e-mail and a wrong password: no account oracle (§7.14). */
export const BAD_CREDENTIALS = 'Email or password is invalid';

/**
 * Checks an e-mail and password. The user is looked up project-scoped first (when a project is
 * known), then server-scoped; an unknown e-mail pays the same argon2id cost as a known one.
 */
export async function authenticatePassword(
  services: Services,
  input: { email: unknown; password: unknown; projectId: string | undefined; ip: string },
): Promise<User> {
  const email = normalizeEmail(input.email);
  // §7.14: a per-account and per-IP failure budget — slower answers past half of it, then 429.
  const keys = [accountKey(email ?? String(input.email ?? '').slice(0, 320))];
  return attempt(
    services,
    { action: 'login', ip: input.ip, keys, surface: 'http' },
    async () => {
      const delay = services.limiter.delayFor(keys);
      if (delay > 0) await sleep(delay);
      return checkPassword(services, email, input);
    },
    (user) => ({ userId: user.id, ...(user.meta.project ? { projectId: user.meta.project } : {}) }),
  );
}

async function checkPassword(
  services: Services,
  email: string | undefined,
  input: { password: unknown; projectId: string | undefined },
): Promise<User> {
  const password = typeof input.password === 'string' ? input.password : '';
  let user: User | undefined;
  if (email) {
    user = await services.repo.findUserByEmail(email, input.projectId);
    if (!user && !input.projectId) {
      // Without a project, a project-scoped user is found only when the e-mail is unambiguous.
      const all = await services.repo.findUsersByEmail(email);
      if (all.length === 1) user = all[0];
    }
  }
  const ok = await verifyPassword(user?.passwordHash, password);
  if (!user || !ok || password.length === 0) throw new BadRequest(BAD_CREDENTIALS, undefined, 'login');
  return user;
}
