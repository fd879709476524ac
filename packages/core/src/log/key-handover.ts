/**
 * Log-key rotation (issue 19): a signed hand-over from the log's old signing key to a new one. A signed note
 * (c2sp.org/signed-note), its text:
 *
 *     valise-log-key-handover/v1
 *     origin <the directory log's origin, the name of both keys>
 *     old <old verifier key>
 *     new <new verifier key>
 *     directory <directory log size>
 *     audit <audit log size>
 *
 * signed by the old key (the authority: only the key a device or witness pins can name its successor) and by the new
 * key (it exists and its holder took it over). From those sizes on, checkpoints of the directory and audit logs are
 * signed by the new key, and the old key signs nothing larger: whoever pinned the old key and accepted checkpoints up
 * to those sizes follows the hand-over and pins the new key; a checkpoint by the old key past the hand-over, or by a
 * key no hand-over from the pinned key names, is refused. Both keys carry the log's origin as their name, so
 * checkpoints keep their origin (witnesses keep their state for it) and only the key ID changes.
 *
 * Browser-safe.
 */
import { ValiseError } from "../errors.js";
import { openNote, parseNoteVerifierKey, signNote, type NoteSigner, type NoteVerifier } from "./note.js";

export const KEY_HANDOVER_HEADER = "valise-log-key-handover/v1";

export interface KeyHandover {
  origin: string;
  oldKey: string;
  newKey: string;
  /** Directory and audit log sizes from which the new key signs (the old key signed up to these). */
  directorySize: number;
  auditSize: number;
}

const SIZE = /^(0|[1-9][0-9]{0,15})$/;

export function formatKeyHandover(h: KeyHandover): string {
  return (
    `${KEY_HANDOVER_HEADER}\norigin ${h.origin}\nold ${h.oldKey}\nnew ${h.newKey}\n` +
    `directory ${h.directorySize}\naudit ${h.auditSize}\n`
  );
}

/** Parse a hand-over's text (strict: exactly the lines above). Throws ValiseError("bad_encoding"). */
export function parseKeyHandoverText(text: string): KeyHandover {
  const bad = (why: string) => new ValiseError("bad_encoding", `malformed key hand-over: ${why}`);
  const lines = text.split("\n");
  if (lines.length !== 7 || lines[6] !== "") throw bad("expected six lines");
  if (lines[0] !== KEY_HANDOVER_HEADER) throw bad(`first line must be ${KEY_HANDOVER_HEADER}`);
  const field = (i: number, name: string) => {
    const l = lines[i]!;
    if (!l.startsWith(`${name} `)) throw bad(`line ${i + 1} must start with "${name} "`);
    return l.slice(name.length + 1);
  };
  const origin = field(1, "origin");
  const oldKey = field(2, "old");
  const newKey = field(3, "new");
  const d = field(4, "directory");
  const a = field(5, "audit");
  if (!SIZE.test(d) || !SIZE.test(a) || !Number.isSafeInteger(Number(d)) || !Number.isSafeInteger(Number(a)))
    throw bad("sizes must be decimal integers");
  let o: NoteVerifier;
  let n: NoteVerifier;
  try {
    o = parseNoteVerifierKey(oldKey);
    n = parseNoteVerifierKey(newKey);
  } catch (e) {
    throw bad(e instanceof Error ? e.message : String(e));
  }
  if (o.name !== origin || n.name !== origin) throw bad("both keys must be named after the origin");
  if (oldKey === newKey || o.keyId === n.keyId) throw bad("the new key must differ from the old one");
  return { origin, oldKey, newKey, directorySize: Number(d), auditSize: Number(a) };
}

/** Sign a hand-over with the old and the new key. */
export function signKeyHandover(h: KeyHandover, oldSigner: NoteSigner, newSigner: NoteSigner): string {
  return signNote(formatKeyHandover(h), [oldSigner, newSigner]);
}

export type KeyHandoverVerdict = { ok: true; handover: KeyHandover } | { ok: false; reason: string };

/**
 * Verify a hand-over note against the key `pinned` (a verifier key string): it must hand over from exactly that key
 * and carry valid signatures by both the pinned key and the key it names. Never throws.
 */
export function verifyKeyHandover(note: string, pinned: string): KeyHandoverVerdict {
  const split = note.indexOf("\n\n");
  if (split < 0) return { ok: false, reason: "malformed key hand-over note" };
  let h: KeyHandover;
  try {
    h = parseKeyHandoverText(note.slice(0, split + 1));
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
  if (h.oldKey !== pinned)
    return { ok: false, reason: `the hand-over is from ${h.oldKey}, not from the pinned log key ${pinned}` };
  const oldV = parseNoteVerifierKey(h.oldKey);
  const newV = parseNoteVerifierKey(h.newKey);
  const opened = openNote(note, [oldV, newV]);
  if (!opened.ok) return { ok: false, reason: `key hand-over: ${opened.reason}` };
  const by = (v: NoteVerifier) => opened.sigs.some((s) => s.name === v.name && s.keyId === v.keyId);
  if (!by(oldV)) return { ok: false, reason: "the key hand-over is not signed by the pinned log key" };
  if (!by(newV)) return { ok: false, reason: "the key hand-over is not signed by the new key it names" };
  return { ok: true, handover: h };
}
