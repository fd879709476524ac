/**
 * The directory log over HTTP: the latest signed checkpoint (C2SP tlog-checkpoint), the tree in C2SP tlog-tiles
 * layout under /v1/log/directory/tile/, and RFC 9162 inclusion and consistency proofs as base64 JSON.
 *
 * What is public: the checkpoint and consistency proofs — what a witness needs, revealing only sizes and hashes.
 * Entries, hash tiles and inclusion proofs need a session: the entries are the ministry's directory (handles, units,
 * clearances), and leaf hashes would let an outsider confirm a guessed entry.
 */
import type { FastifyInstance } from "fastify";
import { ValiseError, toBase64 } from "@valise/core";
import { TILE_WIDTH } from "../storage/directory-log.js";
import { listLogHandovers } from "../storage/log-rotation.js";
import { type ServerContext, requireSession } from "./context.js";
import { audit, auditOf } from "../audit/http.js";

export const LOG_PREFIX = "/v1/log/directory";
/** Every directory-log route: public ones are audited too when the caller has a session (a log read). */
const LOG_READ = audit({ action: "directory.read", kind: "other", object: auditOf.fixed("directory-log") });
export const PUBLIC_LOG_ROUTES = [
  `${LOG_PREFIX}/checkpoint`,
  `${LOG_PREFIX}/proof/consistency`,
  `${LOG_PREFIX}/trust`,
  `${LOG_PREFIX}/key-handovers`,
];

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;

/** Parse attacker-controlled query parameters: exactly `names`, each once, each a safe non-negative integer. */
export function intParams<const N extends string>(query: unknown, names: readonly N[]): Record<N, number> {
  const q = (query ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(q))
    if (!names.includes(k as N)) throw new ValiseError("bad_request", `unknown query parameter ${JSON.stringify(k)}`);
  const out = {} as Record<N, number>;
  for (const n of names) {
    const v = q[n];
    if (typeof v !== "string" || !DECIMAL.test(v) || !Number.isSafeInteger(Number(v)))
      throw new ValiseError("bad_request", `${n} must be one non-negative decimal integer`);
    out[n] = Number(v);
  }
  return out;
}

export interface TilePath {
  /** "entries" for an entry bundle, else the tile level 0–63. */
  level: number | "entries";
  index: number;
  /** 256 for a full tile, 1–255 for a partial one. */
  width: number;
}

/** Parse `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]` (C2SP tlog-tiles); undefined if malformed. */
export function parseTilePath(path: string): TilePath | undefined {
  if (path.length > 200) return undefined;
  const parts = path.split("/");
  const head = parts.shift();
  let level: number | "entries";
  if (head === "entries") level = "entries";
  else if (head !== undefined && /^(0|[1-9][0-9]?)$/.test(head) && Number(head) <= 63) level = Number(head);
  else return undefined;
  let width = TILE_WIDTH;
  // A partial tile ends in `NNN.p/W`.
  if (parts.length >= 2 && parts[parts.length - 2]!.endsWith(".p")) {
    const w = parts.pop()!;
    if (!/^[1-9][0-9]{0,2}$/.test(w) || Number(w) > 255) return undefined;
    width = Number(w);
    parts[parts.length - 1] = parts[parts.length - 1]!.slice(0, -2);
  }
  if (parts.length === 0 || parts.length > 6) return undefined;
  let index = 0;
  for (const [i, p] of parts.entries()) {
    const last = i === parts.length - 1;
    const m = (last ? /^([0-9]{3})$/ : /^x([0-9]{3})$/).exec(p);
    if (!m) return undefined;
    index = index * 1000 + Number(m[1]);
  }
  // `x000/001` is not the canonical encoding of 1: the first element has no needless zero group.
  if (parts.length > 1 && parts[0] === "x000") return undefined;
  if (!Number.isSafeInteger(index * TILE_WIDTH + width)) return undefined;
  return { level, index, width };
}

export function logRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const log = ctx.store.directory.log;

  app.get(`${LOG_PREFIX}/checkpoint`, LOG_READ, async (_req, reply) => {
    // With witnesses configured, only a checkpoint cosigned by a quorum of them is published (DESIGN.md §3).
    const cp = ctx.witnessed ? await ctx.witnessed.latest() : await log.latestCheckpoint();
    if (!cp)
      throw new ValiseError(
        "not_found",
        ctx.witnessed
          ? "no directory log checkpoint has a quorum of witness cosignatures yet"
          : "the directory log has no checkpoint yet",
      );
    return reply
      .header("content-type", "text/plain; charset=utf-8")
      .header("cache-control", "no-cache, max-age=1")
      .send(cp.note);
  });

  // The log's head size (entries appended, witnessed or not yet). Every directory change is a log entry, so a client
  // that finds the same size as at its last membership check of a conversation knows the directory has not changed
  // since, and skips the check's lookups (issue 17: membership reconciled when the log changes, not per send). A
  // server that reports a stale size gains nothing it could not by withholding the log entry itself.
  app.get(`${LOG_PREFIX}/size`, LOG_READ, async (req) => {
    requireSession(req);
    return { size: await log.size() };
  });

  // The log's verifier key and the witnesses' keys, for a device enrolled with a code alone to pin on first use
  // (trust on first use: weaker than a bundle, which pins them out of band — the client says so).
  app.get(`${LOG_PREFIX}/trust`, LOG_READ, async () => {
    if (!ctx.trustAnchors) throw new ValiseError("not_found", "this server signs no directory log checkpoints");
    return ctx.trustAnchors;
  });

  // Log-key rotation (issue 19): every hand-over, oldest first, each signed by the old and the new key. Public, like
  // the checkpoint: devices and witnesses that pinned an old key follow them to the key in force.
  app.get(`${LOG_PREFIX}/key-handovers`, LOG_READ, async () => ({
    handovers: (await listLogHandovers(ctx.store.handle.db)).map((h) => h.note),
  }));

  app.get(`${LOG_PREFIX}/tile/*`, LOG_READ, async (req, reply) => {
    requireSession(req);
    const t = parseTilePath((req.params as { "*": string })["*"]);
    if (!t) throw new ValiseError("bad_request", "expected tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]");
    const body =
      t.level === "entries" ? await log.entryBundle(t.index, t.width) : await log.tile(t.level, t.index, t.width);
    if (!body) throw new ValiseError("not_found", "no such tile in the directory log (yet)");
    return reply
      .header("content-type", "application/octet-stream")
      .header("cache-control", "private, max-age=31536000, immutable")
      .send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  });

  // One entry by index (what a client needs to check one directory fact; a monitor reads entry bundles instead).
  app.get(`${LOG_PREFIX}/entry/:index`, LOG_READ, async (req) => {
    requireSession(req);
    const raw = (req.params as { index: string }).index;
    if (!DECIMAL.test(raw) || !Number.isSafeInteger(Number(raw)))
      throw new ValiseError("bad_request", "index must be one non-negative decimal integer");
    const index = Number(raw);
    const [entry] = await log.entries(index, 1);
    if (!entry) throw new ValiseError("not_found", `the directory log has no entry ${index} (yet)`);
    return { index, entry: toBase64(entry) };
  });

  app.get(`${LOG_PREFIX}/proof/inclusion`, LOG_READ, async (req) => {
    requireSession(req);
    const { index, size } = intParams(req.query, ["index", "size"]);
    const proof = await log.inclusionProof(index, size);
    return { index, size, proof: proof.map(toBase64) };
  });

  app.get(`${LOG_PREFIX}/proof/consistency`, LOG_READ, async (req) => {
    const { from, to } = intParams(req.query, ["from", "to"]);
    const proof = await log.consistencyProof(from, to);
    return { from, to, proof: proof.map(toBase64) };
  });
}
