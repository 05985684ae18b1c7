import { escapeHtml, layout } from './html.ts';

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

/** Several memberships of the domain's project match: the user chooses (§7.15, never an implicit first). */
export function renderDomainChooserPage(input: DomainChooserInput): string {
  const options = input.choices
    .map(
      (c, i) =>
        `<div><input type="radio" id="m${i}" name="membership" value="${escapeHtml(c.id)}"${i === 0 ? ' required' : ''}>
<label for="m${i}" style="display:inline;font-weight:normal">${escapeHtml(c.label)}</label></div>`,
    )
    .join('\n');
  return layout(
    'Choose a profile',
    `<h1>Choose a profile</h1>
${input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''}
<form method="post" action="signin">
<input type="hidden" name="login" value="${escapeHtml(input.loginId)}">
<input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}">
<fieldset><legend>Sign in as</legend>
${options}
</fieldset>
<button type="submit">Continue</button>
</form>`,
  );
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
