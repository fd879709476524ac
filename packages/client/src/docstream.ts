/**
 * Streamed document encryption over WebCrypto (browser-safe). The format is `@valise/core` docstream: AES-256-GCM over
 * 1 MiB chunks, STREAM nonces (prefix ‖ counter ‖ last flag), object id/version/label in every chunk's AAD, a key
 * commitment in the header. `node/docstream.ts` is the fast Node implementation of the same API and produces the same
 * bytes.
 *
 * Both directions re-chunk arbitrary input pieces, hold at most a couple of chunks, and can start at chunk k
 * (`fromChunk`) so an upload or a download that dropped can resume: see `docStreamResumePoint` and `skipBytes`.
 */
import {
  DOCSTREAM_CHUNK_SIZE,
  DOCSTREAM_HEADER_BYTES,
  DOCSTREAM_TAG_BYTES,
  createDocStreamHeader,
  docStreamAad,
  docStreamChunkOffset,
  docStreamCiphertextSize,
  docStreamError,
  docStreamNonce,
  docStreamPlaintextOffset,
  verifyDocStreamHeader,
  ValiseError,
  type DocStreamHeader,
  type DocStreamParams,
  type DocStreamProgress,
} from "@valise/core";
import type { StreamCipher } from "./content.js";

export interface EncryptStreamOptions {
  /**
   * The stream header (from `createDocStreamHeader`, or the first piece a previous run yielded). Required when
   * resuming (`fromChunk` > 0); when absent a fresh header with a random nonce prefix is made.
   */
  readonly header?: Uint8Array;
  /** Plaintext bytes per chunk for a fresh header (default 1 MiB); ignored when `header` is given. */
  readonly chunkSize?: number;
  /**
   * First chunk to produce. The source must then start at plaintext offset `fromChunk · chunkSize`, and the output
   * starts at ciphertext offset `docStreamChunkOffset(fromChunk)`; at 0 the header is yielded first, as its own piece.
   */
  readonly fromChunk?: number;
  readonly onProgress?: (p: DocStreamProgress) => void;
}

export interface DecryptStreamOptions {
  /**
   * The stream header, when the caller has it already: the source then holds only chunks, from
   * `docStreamChunkOffset(fromChunk)` on. Without it the source must start with the header (and `fromChunk` be 0).
   */
  readonly header?: Uint8Array;
  /** First chunk in the source (requires `header`). Output starts at plaintext offset `fromChunk · chunkSize`. */
  readonly fromChunk?: number;
  readonly onProgress?: (p: DocStreamProgress) => void;
}

/** A re-chunked piece of input: `last` is known only once the next byte (or the end) has been seen. */
export interface StreamChunk {
  readonly data: Uint8Array;
  readonly last: boolean;
  /** `data` is a fresh buffer of our own (not a view of the caller's input): it may be handed to a worker. */
  readonly owned: boolean;
}

/**
 * Cuts a byte stream into pieces of exactly `size` bytes and a last piece of 0…size bytes (0 only when the whole
 * stream is empty). Whole-chunk windows of large input pieces are passed through without copying, so the source
 * must not modify a piece after yielding it (Node streams and our file reader never do).
 */
export async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<StreamChunk> {
  let pending: StreamChunk | undefined;
  let buf: Uint8Array | undefined;
  let fill = 0;
  for await (const piece of source) {
    let off = 0;
    while (off < piece.length) {
      if (pending) {
        yield pending;
        pending = undefined;
      }
      if (fill === 0 && piece.length - off >= size) {
        pending = { data: piece.subarray(off, off + size), last: false, owned: false };
        off += size;
        continue;
      }
      buf ??= new Uint8Array(size);
      const n = Math.min(size - fill, piece.length - off);
      buf.set(piece.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === size) {
        pending = { data: buf, last: false, owned: true };
        buf = undefined;
        fill = 0;
      }
    }
  }
  if (pending) yield { ...pending, last: true };
  else yield { data: buf ? buf.subarray(0, fill) : new Uint8Array(0), last: true, owned: buf !== undefined };
}

/** Drops the first `n` bytes of a stream (resuming an upload at a byte offset inside a chunk). */
export async function* skipBytes(source: AsyncIterable<Uint8Array>, n: number): AsyncIterable<Uint8Array> {
  let left = n;
  for await (const piece of source) {
    if (left >= piece.length) {
      left -= piece.length;
      continue;
    }
    yield left > 0 ? piece.subarray(left) : piece;
    left = 0;
  }
}

/** Reads the 51-byte header off the front of a ciphertext stream; returns it and the rest of the stream. */
export async function splitHeader(
  source: AsyncIterable<Uint8Array>,
): Promise<{ header: Uint8Array; rest: AsyncIterable<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  const header = new Uint8Array(DOCSTREAM_HEADER_BYTES);
  let got = 0;
  let extra: Uint8Array | undefined;
  while (got < DOCSTREAM_HEADER_BYTES) {
    const r = await it.next();
    if (r.done) throw docStreamError("document stream shorter than its header");
    const take = Math.min(DOCSTREAM_HEADER_BYTES - got, r.value.length);
    header.set(r.value.subarray(0, take), got);
    got += take;
    if (take < r.value.length) extra = r.value.subarray(take);
  }
  async function* rest(): AsyncIterable<Uint8Array> {
    if (extra) yield extra;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { header, rest: rest() };
}

/** Shared argument checks; returns the verified header and the first chunk index. */
export function startEncrypt(key: Uint8Array, opts: EncryptStreamOptions): { header: DocStreamHeader; k0: number } {
  const k0 = opts.fromChunk ?? 0;
  if (!Number.isSafeInteger(k0) || k0 < 0) throw new ValiseError("bad_request", "fromChunk must be ≥ 0");
  if (k0 > 0 && !opts.header) throw new ValiseError("bad_request", "resuming (fromChunk > 0) needs the stream header");
  const bytes = opts.header ?? createDocStreamHeader(key, { chunkSize: opts.chunkSize ?? DOCSTREAM_CHUNK_SIZE });
  return { header: verifyDocStreamHeader(key, bytes), k0 };
}

export async function startDecrypt(
  key: Uint8Array,
  source: AsyncIterable<Uint8Array>,
  opts: DecryptStreamOptions,
): Promise<{ header: DocStreamHeader; k0: number; body: AsyncIterable<Uint8Array> }> {
  const k0 = opts.fromChunk ?? 0;
  if (!Number.isSafeInteger(k0) || k0 < 0) throw new ValiseError("bad_request", "fromChunk must be ≥ 0");
  if (opts.header) return { header: verifyDocStreamHeader(key, opts.header), k0, body: source };
  if (k0 > 0) throw new ValiseError("bad_request", "resuming (fromChunk > 0) needs the stream header");
  const { header, rest } = await splitHeader(source);
  return { header: verifyDocStreamHeader(key, header), k0, body: rest };
}

/** Checks the shape of ciphertext chunk `index` before it is opened. */
export function checkCipherChunk(c: StreamChunk, index: number, k0: number): void {
  if (c.data.length < DOCSTREAM_TAG_BYTES)
    throw docStreamError(
      index === k0 && c.data.length === 0 ? "document stream has no chunks (truncated)" : "truncated chunk",
      { chunk: index },
    );
  if (c.data.length === DOCSTREAM_TAG_BYTES && index > 0)
    throw docStreamError("empty chunk after the first (extended or truncated stream)", { chunk: index });
}

/** Tracks progress in whole-stream coordinates. */
export function progressCounter(chunkSize: number, k0: number, onProgress?: (p: DocStreamProgress) => void) {
  let plain = docStreamPlaintextOffset(k0, chunkSize);
  let cipher = docStreamChunkOffset(k0, chunkSize);
  return (chunk: number, plainLen: number) => {
    plain += plainLen;
    cipher += plainLen + DOCSTREAM_TAG_BYTES;
    onProgress?.({ chunk, plaintextBytes: plain, ciphertextBytes: cipher });
  };
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new ValiseError("internal", "WebCrypto (crypto.subtle) is not available");
  return s;
}

async function importKey(key: Uint8Array, use: KeyUsage): Promise<CryptoKey> {
  return subtle().importKey("raw", key as Uint8Array<ArrayBuffer>, "AES-GCM", false, [use]);
}

/**
 * Encrypts a plaintext stream. Yields the header first (fresh streams), then each chunk's ciphertext ‖ tag.
 * Memory: one chunk being assembled plus one being sealed.
 */
export async function* encryptStream(
  key: Uint8Array,
  params: DocStreamParams,
  source: AsyncIterable<Uint8Array>,
  opts: EncryptStreamOptions = {},
): AsyncIterable<Uint8Array> {
  const { header, k0 } = startEncrypt(key, opts);
  const aad = docStreamAad(params) as Uint8Array<ArrayBuffer>;
  const ck = await importKey(key, "encrypt");
  const progress = progressCounter(header.chunkSize, k0, opts.onProgress);
  if (k0 === 0) yield header.bytes.slice();
  let i = k0;
  for await (const c of rechunk(source, header.chunkSize)) {
    if (c.last && c.data.length === 0 && i > 0)
      throw new ValiseError("bad_request", "nothing to encrypt at this chunk: the plaintext ends before it");
    const iv = docStreamNonce(header.noncePrefix, i, c.last) as Uint8Array<ArrayBuffer>;
    const out = await subtle().encrypt(
      { name: "AES-GCM", iv, additionalData: aad, tagLength: 128 },
      ck,
      c.data as Uint8Array<ArrayBuffer>,
    );
    progress(i, c.data.length);
    i++;
    yield new Uint8Array(out);
  }
}

/**
 * Decrypts a ciphertext stream, yielding exactly one piece of verified plaintext per chunk (an empty piece for an
 * empty file). Any tampering, truncation, extension, wrong key or binding throws `protocol_error` (details.docstream)
 * — possibly after earlier chunks were yielded, so the output is whole only if the iteration ends normally.
 */
export async function* decryptStream(
  key: Uint8Array,
  params: DocStreamParams,
  source: AsyncIterable<Uint8Array>,
  opts: DecryptStreamOptions = {},
): AsyncIterable<Uint8Array> {
  const { header, k0, body } = await startDecrypt(key, source, opts);
  const aad = docStreamAad(params) as Uint8Array<ArrayBuffer>;
  const ck = await importKey(key, "decrypt");
  const progress = progressCounter(header.chunkSize, k0, opts.onProgress);
  let i = k0;
  for await (const c of rechunk(body, header.chunkSize + DOCSTREAM_TAG_BYTES)) {
    checkCipherChunk(c, i, k0);
    const iv = docStreamNonce(header.noncePrefix, i, c.last) as Uint8Array<ArrayBuffer>;
    let out: ArrayBuffer;
    try {
      out = await subtle().decrypt(
        { name: "AES-GCM", iv, additionalData: aad, tagLength: 128 },
        ck,
        c.data as Uint8Array<ArrayBuffer>,
      );
    } catch {
      throw docStreamError(
        c.last
          ? `chunk ${i} failed authentication (tampered, wrong object/version/label, or the stream was truncated)`
          : `chunk ${i} failed authentication (tampered, reordered or wrong object/version/label)`,
        { chunk: i },
      );
    }
    progress(i, out.byteLength);
    i++;
    yield new Uint8Array(out);
  }
}

/** The WebCrypto implementation as the `StreamCipher` the documents and cables clients take. */
export function webCryptoStreamCipher(chunkSize = DOCSTREAM_CHUNK_SIZE): StreamCipher {
  return streamCipherOf(chunkSize, encryptStream, decryptStream);
}

type Encrypt = typeof encryptStream;
type Decrypt = typeof decryptStream;

/** Adapts an encrypt/decrypt pair to `StreamCipher` (shared with the Node implementation). */
export function streamCipherOf(chunkSize: number, encrypt: Encrypt, decrypt: Decrypt): StreamCipher {
  return {
    chunkSize,
    headerSize: DOCSTREAM_HEADER_BYTES,
    ciphertextSize: (n) => docStreamCiphertextSize(n, chunkSize),
    chunkOffset: (k) => docStreamChunkOffset(k, chunkSize),
    newHeader: (key) => createDocStreamHeader(key, { chunkSize }),
    encrypt: (key, header, params, plaintext, fromChunk) => encrypt(key, params, plaintext, { header, fromChunk }),
    decrypt: (key, header, params, ciphertext, fromChunk) => {
      if (verifyDocStreamHeader(key, header).chunkSize !== chunkSize)
        throw docStreamError("stream chunk size differs from this cipher's");
      return decrypt(key, params, ciphertext, { header, fromChunk });
    },
  };
}
