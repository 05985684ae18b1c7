/** One request before the warm-up, to fail early and clearly when a case's server answers wrongly. */
import type { LoadSpec } from './measure.ts';

export interface ProbeResult {
  status: number;
  body: string;
}

/** Sends one request as the load would (generator applied); throws unless it answers 2xx within 10 s. */
export async function probe(spec: LoadSpec, timeoutMs = 10_000): Promise<ProbeResult> {
  const o = spec.next?.() ?? {};
  const path = o.path ?? spec.path;
  const body = o.body ?? spec.body;
  const res = await fetch(new URL(path, spec.origin), {
    method: spec.method ?? 'GET',
    headers: { ...spec.headers, ...o.headers },
    ...(body !== undefined && spec.method !== 'GET' ? { body } : {}),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (res.status < 200 || res.status > 299)
    throw new Error(`probe ${spec.method ?? 'GET'} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
  return { status: res.status, body: text };
}
