/**
 * C2SP signed-note (c2sp.org/signed-note@v1.0.0): text, a blank line, then `— <name> base64(keyID || sig)` lines.
 * Opening follows golang.org/x/mod/sumdb/note `Open`, the reference implementation. Notes arrive from the network:
 * `openNote` returns a result and never throws.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { fromBase64, toBase64, utf8 } from "../bytes.js";
import { ValiseError } from "../errors.js";

/** Signature type 0x01: Ed25519 over the note text (signed-note §"Ed25519 signatures"). */
export const ALG_ED25519 = 0x01;
/** Go's limit; the spec requires accepting at least 16 (signed-note §Format). */
export const MAX_NOTE_SIGNATURES = 100;

export interface NoteSignature {
  readonly name: string;
  /** uint32 key ID, big-endian in the signature bytes. */
  readonly keyId: number;
  /** The base64 part of the line: base64(keyID || signature). */
  readonly base64: string;
}

/** A key the reader trusts: verifies a signature (without the 4-byte key ID) over the note text bytes. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  sign(text: Uint8Array): Uint8Array;
}

export type OpenedNote =
  { ok: true; text: string; sigs: NoteSignature[]; unverifiedSigs: NoteSignature[] } | { ok: false; reason: string };

const SIG_PREFIX = "\u2014 "; // em dash, space (signed-note §Format)
// signed-note §Format: no ASCII control characters other than newline.
const CONTROL = /[\x00-\x09\x0b-\x1f]/;
// Lone UTF-16 surrogates cannot be encoded as UTF-8.
const LONE_SURROGATE = /\p{Cs}/u;
// Unicode White_Space, as Go's unicode.IsSpace.
const UNICODE_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
// BOM kept: the signature covers the exact bytes.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** signed-note §Format: key names are non-empty, with no Unicode spaces and no '+'. */
export function isValidKeyName(name: string): boolean {
  return (
    name.length > 0 &&
    !UNICODE_SPACE.test(name) &&
    !name.includes("+") &&
    !CONTROL.test(name) &&
    !LONE_SURROGATE.test(name)
  );
}

/** key ID = SHA-256(key name || 0x0A || signature type || public key)[:4], big-endian (signed-note §Signatures). */
export function noteKeyId(name: string, alg: number, publicKey: Uint8Array): number {
  const h = sha256.create().update(utf8(name)).update(Uint8Array.of(0x0a, alg)).update(publicKey).digest();
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}
function u32be(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}
function tryBase64(s: string): Uint8Array | undefined {
  try {
    return fromBase64(s);
  } catch {
    return undefined;
  }
}
/** Go's strings.Cut: split at the first `sep`; the rest (which may contain `sep`) is the tail. */
function cut(s: string, sep: string): [string, string] | undefined {
  const i = s.indexOf(sep);
  return i < 0 ? undefined : [s.slice(0, i), s.slice(i + sep.length)];
}

/** The parts of a vkey `<name>+hex(keyID)+base64(type || key)`, with the key ID checked (signed-note §Verifier keys). */
export interface VerifierKeyParts {
  readonly name: string;
  readonly keyId: number;
  readonly alg: number;
  readonly publicKey: Uint8Array;
}

/** Parse the generic vkey form; throws ValiseError("bad_encoding") if malformed or the key ID does not match. */
export function parseVerifierKeyParts(vkey: string): VerifierKeyParts {
  const bad = (why: string) => new ValiseError("bad_encoding", `malformed verifier key: ${why}`);
  // Split on the first two '+' only: the base64 key material can itself contain '+'.
  const a = cut(vkey, "+");
  const b = a && cut(a[1], "+");
  if (!a || !b) throw bad("expected name+hash+key");
  const [name, [hash, key64]] = [a[0], b];
  if (!isValidKeyName(name)) throw bad("invalid key name");
  if (!/^[0-9a-f]{8}$/.test(hash)) throw bad("key ID must be 8 lowercase hex digits");
  const key = tryBase64(key64);
  if (!key || key.length < 1) throw bad("invalid base64 key");
  const keyId = parseInt(hash, 16);
  if (noteKeyId(name, key[0]!, key.subarray(1)) !== keyId) throw bad("key ID does not match name and key");
  return { name, keyId, alg: key[0]!, publicKey: key.slice(1) };
}

export function formatVerifierKey(name: string, alg: number, publicKey: Uint8Array): string {
  if (!isValidKeyName(name)) throw new ValiseError("bad_request", `invalid key name ${JSON.stringify(name)}`);
  return `${name}+${hex8(noteKeyId(name, alg, publicKey))}+${toBase64(Uint8Array.of(alg, ...publicKey))}`;
}

/** RFC 8032 Ed25519 with strict (non-ZIP-215) decoding; false on any malformed input. */
export function ed25519Verify(publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64 || publicKey.length !== 32) return false;
  try {
    return ed25519.verify(sig, msg, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** A type-0x01 Ed25519 note verifier. */
export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (publicKey.length !== 32) throw new ValiseError("bad_request", "expected 32-byte Ed25519 public key");
  const pk = publicKey.slice();
  const keyId = noteKeyId(name, ALG_ED25519, pk);
  return { name, keyId, verify: (text, sig) => ed25519Verify(pk, text, sig) };
}

/** Parse a type-0x01 Ed25519 vkey (signed-note §Verifier keys); throws ValiseError on anything else. */
export function parseNoteVerifierKey(vkey: string): NoteVerifier {
  const p = parseVerifierKeyParts(vkey);
  if (p.alg !== ALG_ED25519)
    throw new ValiseError("bad_encoding", `unsupported signature type 0x${p.alg.toString(16)}`);
  if (p.publicKey.length !== 32) throw new ValiseError("bad_encoding", "Ed25519 public key must be 32 bytes");
  return ed25519NoteVerifier(p.name, p.publicKey);
}

/** Generate an Ed25519 signer key as golang.org/x/mod/sumdb/note: `PRIVATE+KEY+name+hash+base64(0x01 || seed)`. */
export function generateNoteKey(name: string, seed?: Uint8Array): { skey: string; vkey: string } {
  if (!isValidKeyName(name)) throw new ValiseError("bad_request", `invalid key name ${JSON.stringify(name)}`);
  const sk = seed ?? ed25519.utils.randomSecretKey();
  if (sk.length !== 32) throw new ValiseError("bad_request", "Ed25519 seed must be 32 bytes");
  const pub = ed25519.getPublicKey(sk);
  const keyId = noteKeyId(name, ALG_ED25519, pub);
  return {
    skey: `PRIVATE+KEY+${name}+${hex8(keyId)}+${toBase64(Uint8Array.of(ALG_ED25519, ...sk))}`,
    vkey: formatVerifierKey(name, ALG_ED25519, pub),
  };
}

/** Parse a signer key (Go's NewSigner); throws ValiseError("bad_encoding") if malformed or the hash mismatches. */
export function parseNoteSignerKey(skey: string): NoteSigner {
  const bad = (why: string) => new ValiseError("bad_encoding", `malformed signer key: ${why}`);
  if (!skey.startsWith("PRIVATE+KEY+")) throw bad("expected PRIVATE+KEY+ prefix");
  const a = cut(skey.slice("PRIVATE+KEY+".length), "+");
  const b = a && cut(a[1], "+");
  if (!a || !b) throw bad("expected name+hash+key");
  const [name, [hash, key64]] = [a[0], b];
  if (!isValidKeyName(name)) throw bad("invalid key name");
  if (!/^[0-9a-f]{8}$/.test(hash)) throw bad("key ID must be 8 lowercase hex digits");
  const key = tryBase64(key64);
  if (!key || key.length !== 33 || key[0] !== ALG_ED25519) throw bad("expected 0x01 || 32-byte Ed25519 seed");
  const sk = key.slice(1);
  const pub = ed25519.getPublicKey(sk);
  const keyId = noteKeyId(name, ALG_ED25519, pub);
  if (keyId !== parseInt(hash, 16)) throw bad("key ID does not match");
  return { name, keyId, sign: (text) => ed25519.sign(text, sk) };
}

/** Decode and check the byte-level rules (signed-note §Format: valid UTF-8, no control characters but newline). */
function decodeNote(msg: Uint8Array | string): string | undefined {
  let s: string;
  if (typeof msg === "string") {
    if (LONE_SURROGATE.test(msg)) return undefined;
    s = msg;
  } else {
    try {
      s = strictUtf8.decode(msg);
    } catch {
      return undefined;
    }
  }
  return CONTROL.test(s) ? undefined : s;
}

interface ParsedLine {
  readonly line: string;
  readonly sig: NoteSignature;
  readonly raw: Uint8Array;
}

/** Split a note into text and well-formed signature lines; undefined if malformed. */
function splitNote(msg: Uint8Array | string): { text: string; lines: ParsedLine[] } | undefined {
  const s = decodeNote(msg);
  if (s === undefined) return undefined;
  // signed-note §Format: the text is separated from the signatures by the last empty line.
  const split = s.lastIndexOf("\n\n");
  if (split < 0) return undefined;
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  // One or more signature lines, each ending in a newline.
  if (block.length === 0 || !block.endsWith("\n")) return undefined;
  const lines: ParsedLine[] = [];
  for (const line of block.slice(0, -1).split("\n")) {
    if (!line.startsWith(SIG_PREFIX)) return undefined;
    const parts = cut(line.slice(SIG_PREFIX.length), " ");
    if (!parts) return undefined;
    const [name, b64] = parts;
    const raw = tryBase64(b64);
    // signed-note §Format: a valid key name and 4+n bytes (n ≥ 1).
    if (!isValidKeyName(name) || !raw || raw.length < 5) return undefined;
    if (lines.length === MAX_NOTE_SIGNATURES) return undefined; // too many signatures
    const keyId = ((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0;
    lines.push({ line, sig: { name, keyId, base64: b64 }, raw });
  }
  return { text, lines };
}

/**
 * Open a signed note against the verifiers the reader trusts (signed-note §Signatures):
 * signatures from unknown keys (name and key ID not both matching) are ignored, and returned as `unverifiedSigs`;
 * a known key's signature that fails rejects the whole note; a note with no verified signature is rejected.
 * Repeated signatures by one known key and repeated identical unknown lines are dropped (as Go's note.Open).
 */
export function openNote(msg: Uint8Array | string, verifiers: readonly NoteVerifier[]): OpenedNote {
  const parsed = splitNote(msg);
  if (!parsed) return { ok: false, reason: "malformed note" };
  const textBytes = utf8(parsed.text);
  const sigs: NoteSignature[] = [];
  const unverifiedSigs: NoteSignature[] = [];
  const seen = new Set<string>();
  const seenUnverified = new Set<string>();
  for (const { line, sig, raw } of parsed.lines) {
    const matches = verifiers.filter((v) => v.name === sig.name && v.keyId === sig.keyId);
    if (matches.length === 0) {
      // Unknown key: MUST be ignored, even if it shares a name or an ID (but not both) with a known key.
      if (!seenUnverified.has(line)) unverifiedSigs.push(sig);
      seenUnverified.add(line);
      continue;
    }
    const id = `${sig.name}+${hex8(sig.keyId)}`;
    if (matches.length > 1) return { ok: false, reason: `ambiguous key ${id}` };
    if (seen.has(id)) continue;
    seen.add(id);
    // A known key MUST be verified; if it fails, reject the whole note (SHOULD).
    if (!matches[0]!.verify(textBytes, raw.subarray(4)))
      return { ok: false, reason: `invalid signature for key ${id}` };
    sigs.push(sig);
  }
  // If no signature from a known key verifies, clients MUST reject the note.
  if (sigs.length === 0) return { ok: false, reason: "note has no verifiable signatures" };
  return { ok: true, text: parsed.text, sigs, unverifiedSigs };
}

/** Check note text for signing: ends in newline, no control characters, encodable (signed-note §Format). */
function checkText(text: string): void {
  if (!text.endsWith("\n") || CONTROL.test(text) || LONE_SURROGATE.test(text))
    throw new ValiseError("bad_request", "malformed note text: must end in newline, no control characters");
}

function sigLine(name: string, keyId: number, sig: Uint8Array): string {
  const raw = new Uint8Array(4 + sig.length);
  raw.set(u32be(keyId));
  raw.set(sig, 4);
  return `${SIG_PREFIX}${name} ${toBase64(raw)}\n`;
}

/**
 * Sign `text` (Go's note.Sign): existing signatures are kept in order unless a new signer has the same name and key
 * ID; the new signature lines follow them.
 */
export function signNote(
  text: string,
  signers: readonly NoteSigner[],
  existing: readonly NoteSignature[] = [],
): string {
  checkText(text);
  const textBytes = utf8(text);
  const replaced = new Set(signers.map((s) => `${s.name}+${s.keyId}`));
  let out = text + "\n";
  for (const e of existing) {
    if (replaced.has(`${e.name}+${e.keyId}`)) continue;
    const raw = tryBase64(e.base64);
    if (!isValidKeyName(e.name) || !raw || raw.length < 5)
      throw new ValiseError("bad_request", "malformed existing signature");
    if (((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0 !== e.keyId)
      throw new ValiseError("bad_request", "existing signature key ID does not match its bytes");
    out += `${SIG_PREFIX}${e.name} ${e.base64}\n`;
  }
  for (const s of signers) {
    if (!isValidKeyName(s.name)) throw new ValiseError("bad_request", `invalid signer name ${JSON.stringify(s.name)}`);
    out += sigLine(s.name, s.keyId, s.sign(textBytes));
  }
  return out;
}
