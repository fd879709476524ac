/**
 * Records archive (issue 14 part 3): what a third party needs to check an export without a profile or a server.
 * The manifest is signed by the archivist device's Ed25519 key over a domain-separated message (never a login
 * challenge, never an MLS label); it carries the directory-log checkpoint the export was verified at and the log
 * entries, with inclusion proofs in that checkpoint, that add the device (with its key) and assign the archive's
 * units. `verifyArchiveProofs` checks those against trust anchors (the log key, witnesses, quorum) when the verifier
 * has them. Browser-safe.
 */
import {
  fromBase64,
  leafHash,
  parseDirectoryEntry,
  parseNoteVerifierKey,
  parseCosignatureVerifierKey,
  utf8,
  verifyCheckpointQuorum,
  verifyInclusion,
  equalBytes,
} from "@valise/core";
import { verifyChallenge } from "@valise/protocol";
import type { TrustAnchors } from "./transparency.js";

export const ARCHIVE_FORMAT = "valise-archive/1";
const CONTEXT = utf8("valise-archive-manifest/1\n");

/** The bytes the archivist device signs: a fixed context, then the manifest file exactly as written. */
export function archiveSigningMessage(manifest: Uint8Array): Uint8Array {
  const out = new Uint8Array(CONTEXT.length + manifest.length);
  out.set(CONTEXT);
  out.set(manifest, CONTEXT.length);
  return out;
}

/** A directory log entry with its inclusion proof in the manifest's checkpoint. */
export interface ArchiveLogProof {
  index: number;
  /** base64 leaf bytes (the canonical entry). */
  entry: string;
  /** base64 RFC 9162 inclusion proof hashes. */
  proof: string[];
}

/** What the archivist device proves about itself in the manifest. */
export interface ArchiveEvidence {
  archivist: string;
  device: string;
  /** base64 Ed25519 public key of the device (the manifest's signer). */
  deviceKey: string;
  units: string[];
  checkpoint: { note: string; size: number; rootHash: string };
  /** The `device.add` of this device, and the `archive.assign` of each unit (the latest). */
  proofs: { device: ArchiveLogProof; assignments: ArchiveLogProof[] };
}

/** Is `sig` the archivist device's signature (key `deviceKey`, base64) over the manifest bytes? Never throws. */
export async function verifyArchiveSignature(
  deviceKey: string,
  manifest: Uint8Array,
  sig: Uint8Array,
): Promise<boolean> {
  try {
    return await verifyChallenge(fromBase64(deviceKey), archiveSigningMessage(manifest), sig);
  } catch {
    return false;
  }
}

/**
 * Checks the evidence against trust anchors: the checkpoint is signed by the log and cosigned by a witness quorum,
 * and its tree holds the entries that add this device with this key for this user and assign each unit to this
 * user. Returns the problems found (empty: proven).
 */
export function verifyArchiveProofs(ev: ArchiveEvidence, trust: TrustAnchors): string[] {
  const out: string[] = [];
  let root: Uint8Array;
  let size: number;
  try {
    const q = verifyCheckpointQuorum(
      ev.checkpoint.note,
      parseNoteVerifierKey(trust.logKey),
      trust.witnesses.map(parseCosignatureVerifierKey),
      trust.quorum,
    );
    if (!q.ok) return [`the checkpoint is not proven by these trust anchors: ${q.reason}`];
    root = q.checkpoint.rootHash;
    size = q.checkpoint.size;
    if (size !== ev.checkpoint.size || !equalBytes(root, fromBase64(ev.checkpoint.rootHash)))
      out.push("the manifest's checkpoint size or root differs from the signed note");
  } catch (e) {
    return [`the checkpoint cannot be read: ${e instanceof Error ? e.message : String(e)}`];
  }
  const entry = (p: ArchiveLogProof, what: string) => {
    try {
      const bytes = fromBase64(p.entry);
      if (!verifyInclusion(leafHash(bytes), p.index, size, p.proof.map(fromBase64), root)) {
        out.push(`${what}: entry ${p.index} is not in the checkpoint's tree`);
        return null;
      }
      const parsed = parseDirectoryEntry(bytes);
      if (!parsed.ok) {
        out.push(`${what}: entry ${p.index} is not a directory entry (${parsed.reason})`);
        return null;
      }
      return parsed.entry;
    } catch (e) {
      out.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      return null;
    }
  };
  const d = entry(ev.proofs.device, "the device");
  if (d && (d.type !== "device.add" || d.user !== ev.archivist || d.device !== ev.device || d.key !== ev.deviceKey))
    out.push(
      `entry ${ev.proofs.device.index} does not add device ${ev.device} of ${ev.archivist} with the signing key`,
    );
  for (const unit of ev.units) {
    const p = ev.proofs.assignments.find((a) => {
      const e = parseDirectoryEntry(safeBytes(a.entry));
      return e.ok && e.entry.type === "archive.assign" && e.entry.unit === unit;
    });
    if (!p) {
      out.push(`no archive.assign entry for ${unit}`);
      continue;
    }
    const a = entry(p, `the assignment of ${unit}`);
    if (a && (a.type !== "archive.assign" || a.user !== ev.archivist))
      out.push(`entry ${p.index} does not make ${ev.archivist} the archive of ${unit}`);
  }
  return out;
}

function safeBytes(b64: string): Uint8Array {
  try {
    return fromBase64(b64);
  } catch {
    return new Uint8Array();
  }
}
