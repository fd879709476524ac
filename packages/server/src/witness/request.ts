/**
 * The C2SP tlog-witness `add-checkpoint` wire format (c2sp.org/tlog-witness §add-checkpoint): the request body
 * `old <size>\n`, up to 63 base64 consistency-proof lines, an empty line, then the checkpoint as a signed note; the
 * 200 answer (cosignature lines) and the 409 answer (`<size>\n`, Content-Type text/x.tlog.size).
 * The body is attacker-controlled: parsing returns a result and never throws.
 */
import { HASH_SIZE, fromBase64, toBase64 } from "@valise/core";

/** §add-checkpoint: "The client MUST NOT send more than 63 consistency proof lines." */
export const MAX_PROOF_LINES = 63;
/** §add-checkpoint 409: the response Content-Type. */
export const TLOG_SIZE_CONTENT_TYPE = "text/x.tlog.size";

export interface AddCheckpointRequest {
  readonly oldSize: number;
  readonly proof: readonly Uint8Array[];
  /** The checkpoint signed note, as submitted. */
  readonly note: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parse a decimal tree size with no leading zeroes (§add-checkpoint: "old size line"). */
export function parseTreeSize(s: string): number | undefined {
  if (!DECIMAL.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function parseAddCheckpointRequest(body: Uint8Array | string): Parsed<AddCheckpointRequest> {
  let text: string;
  if (typeof body === "string") text = body;
  else {
    try {
      text = strictUtf8.decode(body);
    } catch {
      return { ok: false, reason: "body is not UTF-8" };
    }
  }
  // "Each line MUST terminate in a newline character": the old size line, the proof lines, the empty line.
  const oldEnd = text.indexOf("\n");
  if (oldEnd < 0) return { ok: false, reason: "missing old size line" };
  const oldLine = text.slice(0, oldEnd);
  const oldSize = oldLine.startsWith("old ") ? parseTreeSize(oldLine.slice(4)) : undefined;
  if (oldSize === undefined) return { ok: false, reason: "old size line must be `old <decimal>`" };
  const proof: Uint8Array[] = [];
  let at = oldEnd + 1;
  for (;;) {
    const end = text.indexOf("\n", at);
    if (end < 0) return { ok: false, reason: "missing empty line before the checkpoint" };
    const line = text.slice(at, end);
    at = end + 1;
    if (line === "") break;
    if (proof.length === MAX_PROOF_LINES) return { ok: false, reason: `more than ${MAX_PROOF_LINES} proof lines` };
    let h: Uint8Array;
    try {
      h = fromBase64(line);
    } catch {
      return { ok: false, reason: `proof line ${proof.length + 1} is not base64` };
    }
    if (h.length !== HASH_SIZE) return { ok: false, reason: `proof line ${proof.length + 1} is not a SHA-256 hash` };
    proof.push(h);
  }
  const note = text.slice(at);
  if (note.length === 0) return { ok: false, reason: "missing checkpoint" };
  return { ok: true, value: { oldSize, proof, note } };
}

export function formatAddCheckpointRequest(oldSize: number, proof: readonly Uint8Array[], note: string): string {
  return `old ${oldSize}\n${proof.map((h) => `${toBase64(h)}\n`).join("")}\n${note}`;
}

/** The 409 body: the witness's latest cosigned size. */
export function parseConflictSize(body: string): number | undefined {
  return body.endsWith("\n") ? parseTreeSize(body.slice(0, -1)) : undefined;
}

/** The 200 body: one or more note signature lines (`— <name> <base64>\n`); undefined if malformed. */
export function parseCosignatureLines(body: string): string[] | undefined {
  if (body.length === 0 || body.length > 64 * 1024 || !body.endsWith("\n")) return undefined;
  const lines = body.slice(0, -1).split("\n");
  if (!lines.every((l) => /^\u2014 \S+ [A-Za-z0-9+/=]+$/.test(l))) return undefined;
  return lines.map((l) => `${l}\n`);
}
