/**
 * Reads a response body into memory with a byte cap. The stream it reads is the *decoded* body
 * (fetch has already undone gzip / deflate / br), so the cap also stops a decompression bomb after
 * at most `maxBytes` plus one chunk, whatever the compression ratio (security-cases RP-19, TX-17;
 * OWASP ASVS 5.0 13.1.3). fetch pulls from the socket only as fast as we read, so nothing beyond
 * that is buffered.
 */
import { OutboundError } from './outbound-error.ts';

/**
 * Buffers `body` and returns its bytes, or throws once more than `maxBytes` arrive.
 *
 * @param body - the response body stream (`null` for an empty body)
 * @param maxBytes - the cap, in decoded bytes
 * @param host - the target host, for the error message
 * @throws OutboundError `too_large` when the cap is exceeded; the stream is cancelled
 */
export async function readCappedBody(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  host: string,
): Promise<Uint8Array<ArrayBuffer>> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      // Cancelling tells fetch to stop pulling from the socket; the caller also aborts the request.
      reader.cancel().catch(() => {});
      throw new OutboundError('too_large', host);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
