import type { AuthContext } from '../auth/access.ts';
import { Forbidden } from '../errors/http-errors.ts';

/** Super admins may do anything; project admins may administer their own project only. */
export function assertProjectAdmin(auth: AuthContext, projectId: string): void {
  if (auth.superAdmin && auth.projectAdmin) return;
  if (auth.projectAdmin && auth.project.id === projectId) return;
  throw new Forbidden('Only an admin of this project may do this');
}

export function assertSuperAdmin(auth: AuthContext): void {
  if (auth.superAdmin && auth.projectAdmin) return;
  throw new Forbidden('Only the super admin may do this');
}
