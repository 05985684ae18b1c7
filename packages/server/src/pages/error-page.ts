import { escapeHtml, layout } from './html.ts';

/** The page a browser sees when a flow cannot continue and must not redirect (e.g. OP-01, RP-03). */
export function renderErrorPage(message: string): string {
  return layout(
    'Sign-in error',
    `<h1>Sign-in could not continue</h1>
<p class="error" role="alert">${escapeHtml(message)}</p>
<p>Go back to the application and start again.</p>`,
  );
}
