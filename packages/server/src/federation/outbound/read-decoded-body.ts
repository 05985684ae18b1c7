/**
 * Reads an identity provider's response body into memory with a cap on the *decoded* bytes: the
 * content coding (gzip, deflate, br — what the request offered) is undone by node:zlib while
 * reading, so the cap stops a decompression bomb after at most `maxBytes` plus one chunk, whatever
 * the compression ratio (security-cases RP-19, TX-17; OWASP ASVS 5.0 13.1.3). The socket is read
 * only as fast as we consume, so nothing beyond that is buffered.
 */
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { OutboundError } from './outbound-error.ts';

const DECODERS: Record<string, () => NodeJS.ReadWriteStream> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/**
 * Buffers `body`, decoded per `contentEncoding`, and returns its bytes.
 *
 * @param body - the raw response body stream
 * @param contentEncoding - the response's Content-Encoding (codings applied in order, RFC 9110 §8.4)
 * @param maxBytes - the cap, in decoded bytes
 * @param host - the target host, for the error message
 * @throws OutboundError `too_large` when the cap is exceeded, `network` for an unknown coding or a
 *   corrupt compressed body; the streams are destroyed either way
 */
export async function readDecodedBody(
  body: Readable,
  contentEncoding: string | undefined,
  maxBytes: number,
  host: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  const streams: (Readable | NodeJS.ReadWriteStream)[] = [body];
  for (const coding of codings.reverse()) {
    const decoder = DECODERS[coding];
    if (!decoder) {
      body.destroy();
      throw new OutboundError('network', host, { cause: new Error(`unsupported content coding ${coding}`) });
    }
    const next = decoder();
    (streams.at(-1) as Readable).pipe(next);
    streams.push(next);
  }
  const decoded = streams.at(-1) as AsyncIterable<Buffer>;
  const destroyAll = () => {
    for (const stream of streams) (stream as Readable).destroy();
  };
  // A failing upstream stream does not fail the decoder it pipes into: forward its error.
  for (const [i, stream] of streams.entries()) {
    const next = streams[i + 1] as Readable | undefined;
    if (next) stream.once('error', (err) => next.destroy(err));
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of decoded) {
      total += chunk.byteLength;
      if (total > maxBytes) throw new OutboundError('too_large', host);
      chunks.push(chunk);
    }
  } catch (err) {
    destroyAll();
    if (err instanceof OutboundError) throw err;
    // A corrupt compressed body (zlib's Z_DATA_ERROR, …) is trouble on the wire like a reset; an
    // abort (our deadline, the caller's signal) rethrows as is, for the caller to translate.
    if (
      typeof (err as { code?: unknown }).code === 'string' &&
      String((err as { code: string }).code).startsWith('Z_')
    )
      throw new OutboundError('network', host, { cause: err });
    throw err;
  }
  return Buffer.concat(chunks, total);
}
