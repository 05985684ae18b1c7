import { verifyPassword } from '../crypto/password.ts';
import { BadRequest } from '../errors/http-errors.ts';
import { normalizeEmail } from '../model/email.ts';
import type { User } from '../model/types.ts';
import type { Services } from '../services/container.ts';

/** One message for an unknown e-mail and a wrong password: no account oracle (§7.14). */
export const BAD_CREDENTIALS = 'Email or password is invalid';

/**
 * Checks an e-mail and password. The user is looked up project-scoped first (when a project is
 * known), then server-scoped; an unknown e-mail pays the same argon2id cost as a known one.
 */
export async function authenticatePassword(
  services: Services,
  input: { email: unknown; password: unknown; projectId: string | undefined },
): Promise<User> {
  const email = normalizeEmail(input.email);
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
