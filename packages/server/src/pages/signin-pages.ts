import { escapeHtml, layout } from './html.ts';
import { renderChooserPage } from './sign-in-page.ts';

/**
 * The hosted pages that finish a domain sign-in (protocol.md §3.1 "Without a client"): the chooser
 * when several memberships match, and the page that says the sign-in is complete.
 */

export interface DomainChooserInput {
  loginId: string;
  csrf: string;
  choices: { id: string; label: string }[];
  error?: string;
}

/** Several memberships of the domain's project match: the shared chooser, posting to /signin. */
export function renderDomainChooserPage(input: DomainChooserInput): string {
  return renderChooserPage({
    action: 'signin',
    hidden: { login: input.loginId, csrf: input.csrf },
    choices: input.choices,
    ...(input.error ? { error: input.error } : {}),
  });
}

export interface SignedInInput {
  profile: string;
  project: string | undefined;
}

/**
 * The sign-in is complete. A domain sign-in is not started by an application, so there is nothing
 * to return to: the page says so and links to the admin app.
 */
export function renderSignedInPage(input: SignedInInput): string {
  return layout(
    'Signed in',
    `<h1>Signed in</h1>
<p>You are signed in as <strong>${escapeHtml(input.profile)}</strong>${
      input.project ? ` in <strong>${escapeHtml(input.project)}</strong>` : ''
    }.</p>
<p>This sign-in was not started by an application, so there is no application to return to.
Open the application you want to use and sign in there, or go to the admin app.</p>
<a class="button" href="/">Open the admin app</a>`,
  );
}
