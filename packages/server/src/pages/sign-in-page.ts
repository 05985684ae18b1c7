import { escapeHtml, layout } from './html.ts';

export interface SignInPageInput {
  /** Authorization parameters carried through the form unchanged. */
  hidden: Record<string, string>;
  clientName: string;
  email?: string;
  error?: string;
  /** The client's identity provider: a link to `/auth/external/start` with the same parameters (§3.2). */
  external?: { label: string; href: string };
}

function hiddenFields(hidden: Record<string, string>): string {
  return Object.entries(hidden)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
    .join('\n');
}

/** The hosted sign-in form of /oauth2/authorize: labelled fields, works without JavaScript. */
export function renderSignInPage(input: SignInPageInput): string {
  return layout(
    'Sign in',
    `<h1>Sign in to ${escapeHtml(input.clientName)}</h1>
${input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''}
<form method="post" action="authorize">
${hiddenFields(input.hidden)}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="${escapeHtml(input.email ?? '')}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>${
      input.external
        ? `
<p>or</p>
<a class="button" href="${escapeHtml(input.external.href)}">Continue with ${escapeHtml(input.external.label)}</a>`
        : ''
    }`,
  );
}

export interface ChooserInput {
  /** Where the form posts (relative to the page): `authorize` or `signin`. */
  action: 'authorize' | 'signin';
  hidden: Record<string, string>;
  choices: { id: string; label: string }[];
  error?: string;
}

/** Several memberships match: the user chooses (§7.15, never an implicit first). */
export function renderChooserPage(input: ChooserInput): string {
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
<form method="post" action="${input.action}">
${hiddenFields(input.hidden)}
<fieldset><legend>Sign in as</legend>
${options}
</fieldset>
<button type="submit">Continue</button>
</form>`,
  );
}
