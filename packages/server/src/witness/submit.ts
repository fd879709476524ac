/**
 * The log's side of c2sp.org/tlog-witness: submit a checkpoint with a consistency proof to one witness and read its
 * answer. Witnesses are remote and may be slow, down or hostile: every call has a timeout, answers are size-capped
 * and parsed defensively, and the result is a value, never a throw.
 */
import {
  ValiseError,
  fromBase64,
  openNote,
  parseCosignatureVerifierKey,
  parseNoteVerifierKey,
  type NoteVerifier,
} from "@valise/core";
import { formatAddCheckpointRequest, parseConflictSize, parseCosignatureLines } from "./request.js";

export interface WitnessEndpoint {
  /** The submission prefix; the server POSTs to `<url>/add-checkpoint`. */
  readonly url: string;
  /** The witness's cosignature vkey, as configured. */
  readonly vkey: string;
  readonly verifier: NoteVerifier;
}

/**
 * Parse `URL=VKEY` (`valise serve --witness`). Both halves may contain '=' (a query string, base64 padding), so the
 * split is the first '=' after which a valid cosignature vkey follows. Throws ValiseError("bad_request").
 */
export function parseWitnessSpec(spec: string): WitnessEndpoint {
  for (let i = spec.indexOf("="); i >= 0; i = spec.indexOf("=", i + 1)) {
    const url = spec.slice(0, i).replace(/\/+$/, "");
    const vkey = spec.slice(i + 1);
    let verifier: NoteVerifier;
    try {
      verifier = parseCosignatureVerifierKey(vkey);
    } catch {
      continue;
    }
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      break;
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") break;
    return { url, vkey, verifier };
  }
  throw new ValiseError(
    "bad_request",
    `expected --witness URL=VKEY (an http(s) URL and the witness's cosignature verifier key), got ${JSON.stringify(spec)}`,
  );
}

/**
 * Parse a witness's `--log-key`: a log verifier key `VKEY` (trusted for the origin equal to its name) or
 * `ORIGIN=VKEY` (a log whose checkpoints carry another origin, e.g. `valise.example/audit=valise.example/directory+…`).
 * Throws ValiseError("bad_request").
 */
export function parseLogKeySpec(spec: string): NoteVerifier | { origin: string; key: NoteVerifier } {
  // The split is the first '=' (or none) after which a valid vkey follows; base64 keys end in '=' themselves.
  const splits = [-1, ...[...spec.matchAll(/=/g)].map((m) => m.index)];
  for (const i of splits) {
    let key: NoteVerifier;
    try {
      key = parseNoteVerifierKey(spec.slice(i + 1));
    } catch {
      continue;
    }
    if (i < 0) return key;
    const origin = spec.slice(0, i);
    if (origin.length > 0 && !/[\x00-\x1f]/.test(origin)) return { origin, key };
  }
  throw new ValiseError(
    "bad_request",
    `expected a log verifier key VKEY or ORIGIN=VKEY (valise admin log key), got ${JSON.stringify(spec)}`,
  );
}

export type SubmitResult =
  { kind: "cosigned"; lines: string[] } | { kind: "conflict"; size: number } | { kind: "failed"; reason: string };

const MAX_ANSWER = 64 * 1024;

/** POST one add-checkpoint request; `lines` are the witness's verified cosignature lines for `note`. */
export async function submitToWitness(
  w: WitnessEndpoint,
  oldSize: number,
  proof: readonly Uint8Array[],
  note: string,
  opts: { timeoutMs: number; signal?: AbortSignal; fetch?: typeof fetch },
): Promise<SubmitResult> {
  const signals = [AbortSignal.timeout(opts.timeoutMs), ...(opts.signal ? [opts.signal] : [])];
  let status: number;
  let body: string;
  try {
    const res = await (opts.fetch ?? fetch)(`${w.url}/add-checkpoint`, {
      method: "POST",
      headers: { "content-type": "text/plain; charset=utf-8" },
      body: formatAddCheckpointRequest(oldSize, proof, note),
      signal: AbortSignal.any(signals),
      redirect: "error",
    });
    status = res.status;
    body = await res.text();
  } catch (e) {
    return { kind: "failed", reason: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  if (body.length > MAX_ANSWER) return { kind: "failed", reason: `answer too large (${body.length} characters)` };
  if (status === 409) {
    const size = parseConflictSize(body);
    return size === undefined ? { kind: "failed", reason: "malformed 409 answer" } : { kind: "conflict", size };
  }
  if (status !== 200) return { kind: "failed", reason: `HTTP ${status}: ${body.slice(0, 200).trim()}` };
  const lines = parseCosignatureLines(body);
  if (!lines) return { kind: "failed", reason: "malformed cosignature answer" };
  // "The client MUST ignore any cosignatures from unknown keys": keep this witness's lines, and only if they verify.
  const own = lines.filter((l) => isLineBy(l, w.verifier));
  if (own.length === 0) return { kind: "failed", reason: "no cosignature by the configured witness key" };
  const opened = openNote(note + own.join(""), [w.verifier]);
  if (!opened.ok) return { kind: "failed", reason: `cosignature does not verify: ${opened.reason}` };
  return { kind: "cosigned", lines: own.slice(0, 1) };
}

function isLineBy(line: string, v: NoteVerifier): boolean {
  const [, name, b64] = line.slice(0, -1).split(" ");
  if (name !== v.name || b64 === undefined) return false;
  try {
    const raw = fromBase64(b64);
    return raw.length >= 4 && ((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0 === v.keyId;
  } catch {
    return false;
  }
}
