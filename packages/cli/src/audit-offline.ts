/**
 * Offline audit export (issue 19): a range of audit-log entries with everything an outside investigator needs to
 * check them on a machine with no access to the server — the signed, cosigned checkpoint note, each entry with its
 * RFC 9162 inclusion proof in that checkpoint's tree, and a consistency proof from the tree of the first `to` entries
 * (whose root is given) to the checkpoint, so a retained segment stays verifiable against later checkpoints.
 *
 * The file is canonical JSON (one line): `verifyOfflineExport` re-serialises what it verified and requires the same
 * bytes, and requires every signature line of the note to verify with a key the investigator supplied, so any altered
 * byte fails.
 */
import {
  auditLogOrigin,
  consistencyProof,
  fromBase64,
  inclusionProof,
  leafHash,
  prunedHashReader,
  rootFromReader,
  openNote,
  parseAuditEvent,
  parseCosignatureVerifierKey,
  parseNoteVerifierKey,
  toBase64,
  verifyCheckpointQuorum,
  verifyConsistency,
  verifyInclusion,
  type NoteVerifier,
} from "@valise/core";

export const OFFLINE_FORMAT = "valise-audit-export/1";

interface ExportFile {
  format: string;
  from: number;
  to: number;
  checkpoint: string;
  prefix: { size: number; rootHash: string; consistency: string[] };
  entries: { index: number; entry: string; proof: string[] }[];
}

/**
 * Builds the export of entries [from, to) of a log whose `entries` hash to the checkpoint in `note`. For a log pruned
 * below `pruned.before` (issue 19), `entries` start there and `pruned.frontier` stands for the prefix; `from` must not
 * be below it (those entries were exported before they were pruned).
 */
export function buildOfflineExport(
  note: string,
  entries: readonly Uint8Array[],
  from: number,
  to: number,
  pruned: { before: number; frontier: readonly Uint8Array[] } = { before: 0, frontier: [] },
): string {
  const base = pruned.before;
  const size = base + entries.length;
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && base <= from && from < to && to <= size))
    throw new Error(
      base > 0 && from < base
        ? `entries below ${base} were exported and pruned: the range ${from}…${to} starts before them`
        : `the range ${from}…${to} is not within the checkpointed log of ${size} entries`,
    );
  const reader = prunedHashReader(
    base,
    pruned.frontier,
    entries.map((e) => leafHash(e)),
  );
  const file: ExportFile = {
    format: OFFLINE_FORMAT,
    from,
    to,
    checkpoint: note,
    prefix: {
      size: to,
      rootHash: toBase64(rootFromReader(reader, to)),
      consistency: to === size ? [] : consistencyProof(reader, to, size).map(toBase64),
    },
    entries: entries.slice(from - base, to - base).map((entry, i) => ({
      index: from + i,
      entry: toBase64(entry),
      proof: inclusionProof(reader, from + i, size).map(toBase64),
    })),
  };
  return `${JSON.stringify(file)}\n`;
}

export type OfflineVerdict =
  | { ok: true; origin: string; size: number; from: number; to: number; entries: number; cosigners: string[] }
  | { ok: false; reason: string };

/** A witness given as `VKEY` or `URL=VKEY` (as in enrollment bundles). */
function witnessKey(spec: string): NoteVerifier {
  const m = /^https?:\/\/[^=\s]*=(.+)$/.exec(spec);
  return parseCosignatureVerifierKey(m ? m[1]! : spec);
}

/** Verifies an export file's bytes with the investigator's keys; never throws. */
export function verifyOfflineExport(
  bytes: Uint8Array,
  logKey: string,
  witnessSpecs: readonly string[],
  quorum: number = witnessSpecs.length,
  opts: { otherSignatures?: "allow" } = {},
): OfflineVerdict {
  const fail = (reason: string): OfflineVerdict => ({ ok: false, reason });
  let log: NoteVerifier;
  let witnesses: NoteVerifier[];
  try {
    log = parseNoteVerifierKey(logKey);
    witnesses = witnessSpecs.map(witnessKey);
  } catch (e) {
    return fail(`bad key: ${e instanceof Error ? e.message : String(e)}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return fail("the file is not UTF-8");
  }
  let f: ExportFile;
  try {
    f = JSON.parse(text) as ExportFile;
  } catch {
    return fail("the file is not JSON");
  }
  try {
    if (f.format !== OFFLINE_FORMAT) return fail(`not a ${OFFLINE_FORMAT} file`);
    // Canonical form: exactly the bytes this verifier would write for the same content.
    const canonical: ExportFile = {
      format: f.format,
      from: f.from,
      to: f.to,
      checkpoint: f.checkpoint,
      prefix: {
        size: f.prefix.size,
        rootHash: toBase64(fromBase64(f.prefix.rootHash)),
        consistency: f.prefix.consistency.map((p) => toBase64(fromBase64(p))),
      },
      entries: f.entries.map((e) => ({
        index: e.index,
        entry: toBase64(fromBase64(e.entry)),
        proof: e.proof.map((p) => toBase64(fromBase64(p))),
      })),
    };
    if (`${JSON.stringify(canonical)}\n` !== text) return fail("the file is not in canonical form (altered)");
  } catch (e) {
    return fail(`malformed export: ${e instanceof Error ? e.message : String(e)}`);
  }
  const q = verifyCheckpointQuorum(f.checkpoint, log, witnesses, quorum, { origin: auditLogOrigin(log.name) });
  if (!q.ok) return fail(`checkpoint does not verify: ${q.reason}`);
  const opened = openNote(f.checkpoint, [log, ...witnesses]);
  if (!opened.ok) return fail(`checkpoint does not verify: ${opened.reason}`);
  if (opened.unverifiedSigs.length > 0 && opts.otherSignatures !== "allow")
    return fail(`the checkpoint carries a signature by a key not given: ${opened.unverifiedSigs[0]!.name}`);
  const cp = q.checkpoint;
  if (!(Number.isSafeInteger(f.from) && Number.isSafeInteger(f.to) && 0 <= f.from && f.from < f.to && f.to <= cp.size))
    return fail(`the range ${f.from}…${f.to} is not within the checkpoint's ${cp.size} entries`);
  if (f.entries.length !== f.to - f.from) return fail(`${f.entries.length} entries for the range ${f.from}…${f.to}`);
  for (const [i, e] of f.entries.entries()) {
    if (e.index !== f.from + i) return fail(`entry ${i} has index ${e.index}, expected ${f.from + i}`);
    const data = fromBase64(e.entry);
    const p = parseAuditEvent(data);
    if (!p.ok) return fail(`entry ${e.index} is not an audit event: ${p.reason}`);
    if (!verifyInclusion(leafHash(data), e.index, cp.size, e.proof.map(fromBase64), cp.rootHash))
      return fail(`entry ${e.index} is not in the signed audit log (inclusion proof fails)`);
  }
  if (f.prefix.size !== f.to) return fail("the prefix tree is not the tree of the first `to` entries");
  const prefixRoot = fromBase64(f.prefix.rootHash);
  const consistent =
    f.to === cp.size
      ? f.prefix.consistency.length === 0 && equal(prefixRoot, cp.rootHash)
      : verifyConsistency(f.to, cp.size, f.prefix.consistency.map(fromBase64), prefixRoot, cp.rootHash);
  if (!consistent) return fail(`the tree of the first ${f.to} entries is not consistent with the checkpoint`);
  return {
    ok: true,
    origin: cp.origin,
    size: cp.size,
    from: f.from,
    to: f.to,
    entries: f.entries.length,
    cosigners: q.cosigners.map((c) => c.name),
  };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
