/**
 * C2SP tlog-cosignature (c2sp.org/tlog-cosignature), Ed25519 `cosignature/v1` (signature type 0x04), and a client
 * check of a checkpoint signed by its log and a quorum of witnesses.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import type { Clock } from "../clock.js";
import { fromBase64, utf8 } from "../bytes.js";
import { ValiseError } from "../errors.js";
import { parseCheckpoint, type Checkpoint } from "./checkpoint.js";
import {
  ed25519Verify,
  formatVerifierKey,
  noteKeyId,
  openNote,
  parseVerifierKeyParts,
  type NoteSigner,
  type NoteVerifier,
} from "./note.js";

/** Signature type 0x04: timestamped Ed25519 checkpoint cosignature (tlog-cosignature §Format). */
export const ALG_COSIGNATURE_V1 = 0x04;
const MAX_TIMESTAMP = 2n ** 63n - 1n; // tlog-cosignature §Format: MUST NOT exceed 2^63 - 1

/** SHA-256(<name> || "\n" || 0x04 || 32-byte Ed25519 public key)[:4] — tlog-cosignature §Format. */
export function cosignatureKeyId(name: string, publicKey: Uint8Array): number {
  return noteKeyId(name, ALG_COSIGNATURE_V1, publicKey);
}

/**
 * The signed message (tlog-cosignature §"Ed25519 signed message"): `cosignature/v1\n`, `time <decimal, no leading
 * zeroes>\n`, then the whole checkpoint note text (including its final newline and any extension lines).
 */
export function cosignatureMessage(checkpointText: string, timestamp: number | bigint): Uint8Array {
  return utf8(`cosignature/v1\ntime ${BigInt(timestamp).toString()}\n${checkpointText}`);
}

/** A `timestamped_signature` (tlog-cosignature §Format): u64 big-endian timestamp, then the 64-byte signature. */
export interface TimestampedSignature {
  /** POSIX seconds. */
  readonly timestamp: number;
  readonly signature: Uint8Array;
}

/** Parse the bytes after the key ID; undefined if the length is wrong or the timestamp out of range. */
export function parseTimestampedSignature(b: Uint8Array): TimestampedSignature | undefined {
  if (b.length !== 8 + 64) return undefined;
  const t = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, false);
  // §Format: MUST NOT exceed 2^63 - 1. Past 2^53 - 1 s (285 million years) is "in the future", which
  // verifiers MAY reject; we do, so timestamps stay exact numbers.
  if (t > MAX_TIMESTAMP || t > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { timestamp: Number(t), signature: b.slice(8) };
}

/** A note verifier for one witness's Ed25519 cosignatures; use with `openNote`. */
export function cosignatureVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (publicKey.length !== 32) throw new ValiseError("bad_request", "expected 32-byte Ed25519 public key");
  const pk = publicKey.slice();
  return {
    name,
    keyId: cosignatureKeyId(name, pk),
    verify(text, sig) {
      const ts = parseTimestampedSignature(sig);
      if (!ts) return false;
      const msg = new Uint8Array([...utf8(`cosignature/v1\ntime ${ts.timestamp}\n`), ...text]);
      return ed25519Verify(pk, msg, ts.signature);
    },
  };
}

/** Parse a cosigner vkey `name+hash+base64(0x04 || pubkey)` (tlog-cosignature §Format); throws ValiseError. */
export function parseCosignatureVerifierKey(vkey: string): NoteVerifier {
  const p = parseVerifierKeyParts(vkey);
  if (p.alg !== ALG_COSIGNATURE_V1 || p.publicKey.length !== 32)
    throw new ValiseError("bad_encoding", "expected a type 0x04 vkey with a 32-byte Ed25519 key");
  return cosignatureVerifier(p.name, p.publicKey);
}

export function formatCosignatureVerifierKey(name: string, publicKey: Uint8Array): string {
  return formatVerifierKey(name, ALG_COSIGNATURE_V1, publicKey);
}

/** A note signer that cosigns at the clock's current second; use with `signNote` on a checkpoint. */
export function cosignatureSigner(name: string, secretKey: Uint8Array, clock: Clock): NoteSigner {
  if (secretKey.length !== 32) throw new ValiseError("bad_request", "Ed25519 secret key must be 32 bytes");
  const sk = secretKey.slice();
  return {
    name,
    keyId: cosignatureKeyId(name, ed25519.getPublicKey(sk)),
    sign(text) {
      const t = Math.floor(clock.now() / 1000);
      if (!Number.isSafeInteger(t) || t < 0) throw new ValiseError("internal", "clock out of range");
      const msg = new Uint8Array([...utf8(`cosignature/v1\ntime ${t}\n`), ...text]);
      const out = new Uint8Array(8 + 64);
      new DataView(out.buffer).setBigUint64(0, BigInt(t), false);
      out.set(ed25519.sign(msg, sk), 8);
      return out;
    },
  };
}

export interface Cosigner {
  readonly name: string;
  readonly keyId: number;
  readonly timestamp: number;
}

export type CheckpointQuorum =
  { ok: true; checkpoint: Checkpoint; cosigners: Cosigner[] } | { ok: false; reason: string };

export interface QuorumOptions {
  /** Expected origin line; defaults to the log key's name (tlog-checkpoint §Signatures: it SHOULD match). */
  readonly origin?: string;
  /** If given, cosignatures timestamped after now + maxSkewSeconds are rejected (tlog-cosignature §Format: MAY). */
  readonly clock?: Clock;
  readonly maxSkewSeconds?: number;
}

/**
 * Open a checkpoint note that must carry a valid signature by `log` and valid cosignatures by at least `quorum`
 * distinct `witnesses`. Follows signed-note rules: unknown signatures are ignored, and a bad signature by any known
 * key (log or witness) rejects the whole note. Never throws.
 */
export function verifyCheckpointQuorum(
  note: Uint8Array | string,
  log: NoteVerifier,
  witnesses: readonly NoteVerifier[],
  quorum: number,
  opts: QuorumOptions = {},
): CheckpointQuorum {
  if (!Number.isSafeInteger(quorum) || quorum < 0 || quorum > witnesses.length)
    return { ok: false, reason: `quorum ${String(quorum)} unreachable with ${witnesses.length} witnesses` };
  const opened = openNote(note, [log, ...witnesses]);
  if (!opened.ok) return opened;
  const isKey = (v: NoteVerifier, s: { name: string; keyId: number }) => v.name === s.name && v.keyId === s.keyId;
  if (!opened.sigs.some((s) => isKey(log, s))) return { ok: false, reason: "checkpoint not signed by the log" };
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpoint(opened.text);
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : "malformed checkpoint" };
  }
  const origin = opts.origin ?? log.name;
  if (checkpoint.origin !== origin)
    return { ok: false, reason: `unexpected origin ${JSON.stringify(checkpoint.origin)}` };
  const latest = opts.clock ? Math.floor(opts.clock.now() / 1000) + (opts.maxSkewSeconds ?? 0) : Infinity;
  const cosigners: Cosigner[] = [];
  for (const s of opened.sigs) {
    if (isKey(log, s) || !witnesses.some((w) => isKey(w, s))) continue;
    // Verified already, so the line decodes to keyID(4) || timestamp(8) || signature(64).
    const raw = fromBase64(s.base64);
    const ts = parseTimestampedSignature(raw.subarray(4));
    if (!ts) return { ok: false, reason: `cosignature by ${s.name} is not a timestamped signature` };
    if (ts.timestamp > latest) return { ok: false, reason: `cosignature by ${s.name} is from the future` };
    cosigners.push({ name: s.name, keyId: s.keyId, timestamp: ts.timestamp });
  }
  if (cosigners.length < quorum)
    return { ok: false, reason: `${cosigners.length} of ${quorum} required witness cosignatures` };
  return { ok: true, checkpoint, cosigners };
}
