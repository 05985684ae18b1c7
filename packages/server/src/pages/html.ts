/** HTML escaping for server-rendered pages: every interpolated value goes through {@link escapeHtml}. */
const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** The shared page frame: no scripts, no external resources, readable without CSS. */
export function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · fedhir</title>
<style>
body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.4rem}label{display:block;margin-top:.8rem;font-weight:600}
input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button,.button{display:block;width:100%;margin-top:1rem;padding:.6rem;font-size:1rem;cursor:pointer;text-align:center}
.error{color:#a40000;border:1px solid #a40000;padding:.6rem;border-radius:4px}
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}
