/** Small, strict helpers around ts-mls's TLS decoders and our own local (not wire) encodings. */
import { ValiseError, concatBytes, equalBytes, utf8 } from "@valise/core";
import type { Decoder } from "ts-mls";

/** Upper bound on any MLS message we parse (a Welcome to a 1,000-device X-Wing group is ~3 MB). */
export const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/**
 * Run a ts-mls decoder over attacker bytes: never throws, and the value must span the input exactly (RFC 9420 §2.1.2:
 * no trailing data).
 */
export function decodeExact<T>(dec: Decoder<T>, bytes: Uint8Array): T | null {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > MAX_MESSAGE_BYTES) return null;
  try {
    const r = dec(bytes, 0);
    if (r === undefined || r[1] !== bytes.length) return null;
    return r[0];
  } catch {
    return null;
  }
}

/** Local encoding: a magic tag, then u32-length-prefixed fields. */
export function packFields(magic: string, fields: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [utf8(magic)];
  for (const f of fields) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, f.length);
    parts.push(len, f);
  }
  return concatBytes(...parts);
}

export function unpackFields(magic: string, count: number, bytes: Uint8Array, what: string): Uint8Array[] {
  const m = utf8(magic);
  const bad = () => new ValiseError("protocol_error", `${what}: malformed encoding`);
  if (!(bytes instanceof Uint8Array) || bytes.length < m.length || !equalBytes(bytes.subarray(0, m.length), m))
    throw bad();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let o = m.length;
  for (let i = 0; i < count; i++) {
    if (o + 4 > bytes.length) throw bad();
    const n = view.getUint32(o);
    o += 4;
    if (o + n > bytes.length) throw bad();
    out.push(bytes.slice(o, o + n));
    o += n;
  }
  if (o !== bytes.length) throw bad();
  return out;
}
