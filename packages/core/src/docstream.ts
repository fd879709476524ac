/**
 * Streamed document encryption, the format only (browser-safe; the ciphers live in packages/client).
 *
 * AES-256-GCM over fixed-size plaintext chunks with the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár
 * ("Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015): chunk i is sealed under
 * nonce = prefix(7) ‖ uint32be(i) ‖ lastFlag(1), so dropping, adding, reordering or truncating chunks, and moving a
 * chunk between streams, all fail authentication. Every chunk's AAD binds the object id, its version and its canonical
 * label. Each version has its own random 32-byte key; the header carries a key commitment so a sender cannot craft one
 * ciphertext that opens under two keys (GCM alone is not key-committing).
 *
 * Byte layout (all integers big-endian):
 *
 *   header (51 bytes)
 *     0  magic          4   0x89 'V' 'D' 'S'
 *     4  format version 1   1
 *     5  reserved       3   zero
 *     8  chunk size     4   plaintext bytes per chunk (DOCSTREAM_MIN_CHUNK_SIZE…DOCSTREAM_MAX_CHUNK_SIZE)
 *    12  nonce prefix   7   random per stream
 *    19  commitment    32   HMAC-SHA-256(key, "valise-stream-commit" ‖ 0x00 ‖ header[0..19))
 *   chunk 0 … n−1: ciphertext ‖ 16-byte tag; chunks 0…n−2 hold exactly `chunk size` plaintext bytes, the last one
 *   1…chunk size bytes — or 0 bytes when the whole plaintext is empty (an empty file is one empty last chunk).
 *
 * The commitment covers the header fields too, so a wrong key or an edited header field is refused before the first
 * chunk; a different object id, version or label fails the first chunk's tag. Encryption is deterministic given key
 * and header, which is what makes resumption work: chunk k is at `docStreamChunkOffset(k)` and can be re-encrypted
 * on its own. Decryption is online: chunks before the last are released before the end is seen, so a consumer must
 * treat the output as complete only when the iteration finishes without an error.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ValiseError } from "./errors.js";
import { canonicalLabel } from "./label.js";
import { equalBytes, utf8 } from "./bytes.js";

export const DOCSTREAM_MAGIC: Uint8Array = Uint8Array.of(0x89, 0x56, 0x44, 0x53);
export const DOCSTREAM_FORMAT_VERSION = 1;
export const DOCSTREAM_CHUNK_SIZE = 1 << 20;
export const DOCSTREAM_MIN_CHUNK_SIZE = 1 << 10;
export const DOCSTREAM_MAX_CHUNK_SIZE = 1 << 24;
export const DOCSTREAM_KEY_BYTES = 32;
export const DOCSTREAM_NONCE_PREFIX_BYTES = 7;
export const DOCSTREAM_NONCE_BYTES = 12;
export const DOCSTREAM_TAG_BYTES = 16;
export const DOCSTREAM_COMMITMENT_BYTES = 32;
/** Header bytes before the commitment (magic, version, reserved, chunk size, nonce prefix). */
const FIELDS_BYTES = 19;
export const DOCSTREAM_HEADER_BYTES = FIELDS_BYTES + DOCSTREAM_COMMITMENT_BYTES; // 51
/** The chunk counter is 32 bits. */
export const DOCSTREAM_MAX_CHUNKS = 2 ** 32;

const COMMIT_LABEL = utf8("valise-stream-commit\0");

/** What a stream is bound to: every chunk's AAD and the header commitment cover these. */
export interface DocStreamParams {
  /** Document (`f-…`) or cable (`k-…`) id. */
  readonly objectId: string;
  /** Version number of the object (documents: 1, 2, …; cables: 1). */
  readonly version: number;
  /** Classification label; canonicalised here, so equal labels give equal AAD. */
  readonly label: string;
}

export interface DocStreamHeader {
  readonly formatVersion: number;
  readonly chunkSize: number;
  readonly noncePrefix: Uint8Array;
  readonly commitment: Uint8Array;
  /** The 51 header bytes as they appear on the wire. */
  readonly bytes: Uint8Array;
}

/** Progress of an encryption or decryption, reported after each chunk. */
export interface DocStreamProgress {
  /** Index of the chunk just finished. */
  readonly chunk: number;
  /** Plaintext bytes done, counted from byte 0 of the file (a resumed run starts at `fromChunk · chunkSize`). */
  readonly plaintextBytes: number;
  /** Ciphertext bytes done, counted from byte 0 of the stream (header included). */
  readonly ciphertextBytes: number;
}

/**
 * Every authentication or format failure of a stream: `protocol_error` with `details.docstream = true` (a dedicated
 * code would need a row in the server's exhaustive status map).
 */
export function docStreamError(message: string, details?: Record<string, unknown>): ValiseError {
  return new ValiseError("protocol_error", message, { docstream: true, ...details });
}
function bad(message: string, details?: Record<string, unknown>): never {
  throw docStreamError(message, details);
}

function checkChunkSize(n: number): void {
  if (!Number.isInteger(n) || n < DOCSTREAM_MIN_CHUNK_SIZE || n > DOCSTREAM_MAX_CHUNK_SIZE)
    throw new ValiseError(
      "bad_request",
      `chunk size must be an integer in ${DOCSTREAM_MIN_CHUNK_SIZE}…${DOCSTREAM_MAX_CHUNK_SIZE}`,
    );
}

export function checkDocStreamKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== DOCSTREAM_KEY_BYTES)
    throw new ValiseError("bad_request", `document key must be ${DOCSTREAM_KEY_BYTES} bytes`);
}

/** A fresh random 32-byte key for one document version. */
export function generateDocStreamKey(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(DOCSTREAM_KEY_BYTES));
}

/** `valise-stream/1\n<objectId>\n<version>\n<canonical label>` as UTF-8. */
export function docStreamAad(params: DocStreamParams): Uint8Array {
  const { objectId, version } = params;
  if (typeof objectId !== "string" || objectId.length === 0 || objectId.length > 256 || /[\n\0]/.test(objectId))
    throw new ValiseError("bad_request", "object id must be 1…256 characters without newlines");
  if (!Number.isSafeInteger(version) || version < 0)
    throw new ValiseError("bad_request", "version must be a non-negative integer");
  return utf8(`valise-stream/${DOCSTREAM_FORMAT_VERSION}\n${objectId}\n${version}\n${canonicalLabel(params.label)}`);
}

/** Nonce of chunk `index`: prefix ‖ uint32be(index) ‖ (last ? 1 : 0). Written into `out` when given. */
export function docStreamNonce(
  noncePrefix: Uint8Array,
  index: number,
  last: boolean,
  out: Uint8Array = new Uint8Array(DOCSTREAM_NONCE_BYTES),
): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index >= DOCSTREAM_MAX_CHUNKS)
    throw new ValiseError("too_large", "chunk index out of range (32-bit counter)");
  out.set(noncePrefix.subarray(0, DOCSTREAM_NONCE_PREFIX_BYTES), 0);
  out[7] = index >>> 24;
  out[8] = (index >>> 16) & 0xff;
  out[9] = (index >>> 8) & 0xff;
  out[10] = index & 0xff;
  out[11] = last ? 1 : 0;
  return out;
}

function commitment(key: Uint8Array, fields: Uint8Array): Uint8Array {
  const h = hmac.create(sha256, key);
  h.update(COMMIT_LABEL);
  h.update(fields);
  return h.digest();
}

/**
 * The header for a new stream. `noncePrefix` defaults to 7 random bytes; pass the stored header instead of calling
 * this again when resuming (a new header means a new, different ciphertext).
 */
export function createDocStreamHeader(
  key: Uint8Array,
  opts: { chunkSize?: number; noncePrefix?: Uint8Array } = {},
): Uint8Array {
  checkDocStreamKey(key);
  const chunkSize = opts.chunkSize ?? DOCSTREAM_CHUNK_SIZE;
  checkChunkSize(chunkSize);
  const prefix = opts.noncePrefix ?? globalThis.crypto.getRandomValues(new Uint8Array(DOCSTREAM_NONCE_PREFIX_BYTES));
  if (prefix.length !== DOCSTREAM_NONCE_PREFIX_BYTES)
    throw new ValiseError("bad_request", `nonce prefix must be ${DOCSTREAM_NONCE_PREFIX_BYTES} bytes`);
  const out = new Uint8Array(DOCSTREAM_HEADER_BYTES);
  out.set(DOCSTREAM_MAGIC, 0);
  out[4] = DOCSTREAM_FORMAT_VERSION;
  new DataView(out.buffer).setUint32(8, chunkSize);
  out.set(prefix, 12);
  out.set(commitment(key, out.subarray(0, FIELDS_BYTES)), FIELDS_BYTES);
  return out;
}

/** Structure only (no key): magic, version, reserved bytes, chunk size bounds. Throws `protocol_error`. */
export function parseDocStreamHeader(bytes: Uint8Array): DocStreamHeader {
  if (bytes.length < DOCSTREAM_HEADER_BYTES) bad("document stream shorter than its header");
  const b = bytes.subarray(0, DOCSTREAM_HEADER_BYTES);
  if (!equalBytes(b.subarray(0, 4), DOCSTREAM_MAGIC)) bad("not a Valise document stream (bad magic)");
  if (b[4] !== DOCSTREAM_FORMAT_VERSION) bad(`unsupported document stream format ${b[4]}`);
  if (b[5] !== 0 || b[6] !== 0 || b[7] !== 0) bad("document stream header: reserved bytes not zero");
  const chunkSize = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(8);
  if (chunkSize < DOCSTREAM_MIN_CHUNK_SIZE || chunkSize > DOCSTREAM_MAX_CHUNK_SIZE)
    bad("document stream header: chunk size out of range", { chunkSize });
  return {
    formatVersion: b[4],
    chunkSize,
    noncePrefix: b.slice(12, FIELDS_BYTES),
    commitment: b.slice(FIELDS_BYTES),
    bytes: b.slice(),
  };
}

/** Parse and check the header's key commitment. Throws `protocol_error` on a wrong key or any edited header byte. */
export function verifyDocStreamHeader(key: Uint8Array, bytes: Uint8Array): DocStreamHeader {
  checkDocStreamKey(key);
  const h = parseDocStreamHeader(bytes);
  if (bytes.length !== DOCSTREAM_HEADER_BYTES) bad("document stream header must be exactly 51 bytes");
  const expect = commitment(key, h.bytes.subarray(0, FIELDS_BYTES));
  if (!equalBytes(expect, h.commitment))
    bad("document stream key commitment mismatch (wrong key or a tampered header)");
  return h;
}

// ---- size arithmetic (plain numbers: exact up to 2^53 bytes) ----

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ValiseError("bad_request", `${what} must be a non-negative integer`);
}

/** Number of chunks for a plaintext of `plaintextSize` bytes (an empty plaintext is one empty chunk). */
export function docStreamChunkCount(plaintextSize: number, chunkSize = DOCSTREAM_CHUNK_SIZE): number {
  checkSize(plaintextSize, "plaintext size");
  checkChunkSize(chunkSize);
  return Math.max(1, Math.ceil(plaintextSize / chunkSize));
}

export function docStreamCiphertextSize(plaintextSize: number, chunkSize = DOCSTREAM_CHUNK_SIZE): number {
  const n = docStreamChunkCount(plaintextSize, chunkSize);
  if (n > DOCSTREAM_MAX_CHUNKS) throw new ValiseError("too_large", "plaintext too large for a 32-bit chunk counter");
  return DOCSTREAM_HEADER_BYTES + plaintextSize + n * DOCSTREAM_TAG_BYTES;
}

/** Inverse of `docStreamCiphertextSize`; throws `protocol_error` for a length no stream can have. */
export function docStreamPlaintextSize(ciphertextSize: number, chunkSize = DOCSTREAM_CHUNK_SIZE): number {
  checkSize(ciphertextSize, "ciphertext size");
  checkChunkSize(chunkSize);
  const body = ciphertextSize - DOCSTREAM_HEADER_BYTES;
  if (body < DOCSTREAM_TAG_BYTES) bad("document stream too short", { ciphertextSize });
  const full = chunkSize + DOCSTREAM_TAG_BYTES;
  const whole = Math.floor(body / full);
  const rest = body - whole * full;
  if (rest === 0) return whole * chunkSize; // last chunk is full
  if (rest < DOCSTREAM_TAG_BYTES || (rest === DOCSTREAM_TAG_BYTES && whole > 0))
    bad("impossible document stream length", { ciphertextSize });
  return whole * chunkSize + rest - DOCSTREAM_TAG_BYTES;
}

/** Ciphertext byte offset where chunk `k` starts (header included). */
export function docStreamChunkOffset(k: number, chunkSize = DOCSTREAM_CHUNK_SIZE): number {
  checkSize(k, "chunk index");
  checkChunkSize(chunkSize);
  return DOCSTREAM_HEADER_BYTES + k * (chunkSize + DOCSTREAM_TAG_BYTES);
}

/** Plaintext byte offset of chunk `k`. */
export function docStreamPlaintextOffset(k: number, chunkSize = DOCSTREAM_CHUNK_SIZE): number {
  checkSize(k, "chunk index");
  checkChunkSize(chunkSize);
  return k * chunkSize;
}

/**
 * Where to resume after `ciphertextBytesDone` bytes of the stream were transferred (e.g. the server's `received`, or
 * the bytes already on disk of a download): the last whole chunk boundary at or before it. Chunk 0 when the header
 * itself is incomplete, in which case `ciphertextOffset` is 0 and the header must be sent again too.
 */
export function docStreamResumePoint(
  ciphertextBytesDone: number,
  chunkSize = DOCSTREAM_CHUNK_SIZE,
): { chunk: number; ciphertextOffset: number; plaintextOffset: number } {
  checkSize(ciphertextBytesDone, "byte offset");
  checkChunkSize(chunkSize);
  if (ciphertextBytesDone < DOCSTREAM_HEADER_BYTES) return { chunk: 0, ciphertextOffset: 0, plaintextOffset: 0 };
  const chunk = Math.floor((ciphertextBytesDone - DOCSTREAM_HEADER_BYTES) / (chunkSize + DOCSTREAM_TAG_BYTES));
  return {
    chunk,
    ciphertextOffset: chunk === 0 ? 0 : docStreamChunkOffset(chunk, chunkSize),
    plaintextOffset: chunk * chunkSize,
  };
}

/** An incremental SHA-256 whose digest so far can be read without ending it (the plaintext an upload encrypted). */
export interface RunningHash {
  update(bytes: Uint8Array): void;
  /** SHA-256 of every byte passed so far; the hash goes on. */
  digest(): Uint8Array;
}

/** `RunningHash` over @noble/hashes (browser-safe; the Node client passes node:crypto's instead). */
export function runningSha256(): RunningHash {
  const h = sha256.create();
  return {
    update: (bytes) => void h.update(bytes),
    digest: () => h.clone().digest(),
  };
}
