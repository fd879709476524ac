/**
 * The witness over HTTP (c2sp.org/tlog-witness): `POST /add-checkpoint` and, for monitors,
 * `GET /<sha256(origin) hex>/checkpoint`. Submission and monitoring prefix are both the root.
 *
 * Check-then-persist is atomic (tlog-witness §add-checkpoint: otherwise two requests could roll the state back):
 * requests are decided and persisted one at a time, and the cosignature is returned only after the new state is on
 * disk.
 */
import Fastify, { type FastifyInstance } from "fastify";
import {
  auditLogOrigin,
  openNote,
  parseKeyHandoverText,
  parseNoteVerifierKey,
  systemClock,
  type Clock,
  type KeyHandover,
  type NoteVerifier,
} from "@valise/core";
import type { WitnessKey } from "./key.js";
import { parseAddCheckpointRequest, TLOG_SIZE_CONTENT_TYPE } from "./request.js";
import type { WitnessStateDir } from "./state.js";
import { originHash } from "./state.js";
import { cosignAccepted, verifyAddCheckpoint } from "./verify.js";

/** A log key trusted for an origin other than its own name (e.g. Valise's audit log, signed by the directory key). */
export interface TrustedLogKey {
  readonly origin: string;
  readonly key: NoteVerifier;
}

export interface WitnessAppOptions {
  key: WitnessKey;
  /** Trusted log verifier keys: a bare key is trusted for the origin equal to its name. */
  logKeys: readonly (NoteVerifier | TrustedLogKey)[];
  state: WitnessStateDir;
  clock?: Clock;
  logger?: boolean | { level: string; stream?: NodeJS.WritableStream };
}

/** Largest request accepted: 63 proof lines and a checkpoint with a generous number of signatures. */
const BODY_LIMIT = 64 * 1024;

export async function buildWitnessApp(opts: WitnessAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger === undefined ? false : opts.logger === true ? { level: "info" } : opts.logger,
    bodyLimit: BODY_LIMIT,
    trustProxy: false,
  });
  const signer = opts.key.signer(opts.clock ?? systemClock);
  const logs = new Map<string, NoteVerifier[]>();
  for (const k of opts.logKeys) {
    const [origin, key] = "origin" in k ? [k.origin, k.key] : [k.name, k];
    logs.set(origin, [...(logs.get(origin) ?? []), key]);
  }
  const byHash = new Map([...logs.keys()].map((o) => [originHash(o), o]));

  /**
   * Log-key rotation (issue 19): follow a hand-over signed by a key trusted for the log's origin (and by the new key
   * it names) — for the directory origin and its audit origin — if this witness has not cosigned past the sizes it
   * hands over at. From then on the new key replaces the old one for those origins: the old key's checkpoints get
   * 403 (a rollback to the old key). Returns the HTTP status and a reason.
   */
  const follow = (
    note: string,
    persist: boolean,
  ): Promise<{ status: number; reason: string }> | { status: number; reason: string } => {
    const split = note.indexOf("\n\n");
    let h: KeyHandover;
    try {
      if (split < 0) throw new Error("malformed note");
      h = parseKeyHandoverText(note.slice(0, split + 1));
    } catch (e) {
      return { status: 400, reason: e instanceof Error ? e.message : String(e) };
    }
    const oldV = parseNoteVerifierKey(h.oldKey);
    const newV = parseNoteVerifierKey(h.newKey);
    const same = (a: { name: string; keyId: number }, b: { name: string; keyId: number }) =>
      a.name === b.name && a.keyId === b.keyId;
    const sizes = new Map([
      [h.origin, h.directorySize],
      [auditLogOrigin(h.origin), h.auditSize],
    ]);
    const targets: { origin: string; trusted: NoteVerifier }[] = [];
    for (const origin of sizes.keys()) {
      const keys = logs.get(origin) ?? [];
      const trusted = keys.find((k) => same(k, oldV));
      if (trusted) targets.push({ origin, trusted });
    }
    if (targets.length === 0) {
      const followed = [...sizes.keys()].some((o) => (logs.get(o) ?? []).some((k) => same(k, newV)));
      return followed
        ? { status: 200, reason: "already followed" }
        : { status: 403, reason: "the hand-over is from a key this witness does not trust for the log" };
    }
    for (const t of targets) {
      // Signed by the trusted key itself (not merely one with the same name and key ID) and by the new key.
      const byOld = openNote(note, [t.trusted]);
      if (!byOld.ok || !byOld.sigs.some((x) => same(x, t.trusted)))
        return { status: 403, reason: "the hand-over is not signed by the log key this witness trusts" };
      const byNew = openNote(note, [newV]);
      if (!byNew.ok) return { status: 403, reason: "the hand-over is not signed by the new key it names" };
      const cosigned = opts.state.get(t.origin)?.size ?? 0;
      if (persist && cosigned > sizes.get(t.origin)!)
        return {
          status: 422,
          reason: `this witness cosigned ${cosigned} entries of ${t.origin} under the old key, past the hand-over at ${sizes.get(t.origin)}`,
        };
    }
    const apply = () => {
      for (const t of targets)
        logs.set(
          t.origin,
          (logs.get(t.origin) ?? []).map((k) => (same(k, t.trusted) ? newV : k)),
        );
      return { status: 200, reason: "followed" };
    };
    return persist ? opts.state.addHandover(note).then(apply) : apply();
  };
  // Hand-overs followed before a restart.
  for (const note of opts.state.handovers()) void follow(note, false);

  // Bodies are the protocol's text, whatever the Content-Type says.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));

  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  };

  app.post("/add-checkpoint", async (req, reply) => {
    const body = Buffer.isBuffer(req.body) ? new Uint8Array(req.body) : new Uint8Array();
    const parsed = parseAddCheckpointRequest(body);
    if (!parsed.ok) return reply.code(400).type("text/plain; charset=utf-8").send(`${parsed.reason}\n`);
    return serialized(async () => {
      const v = verifyAddCheckpoint(parsed.value, logs, (origin) => opts.state.get(origin));
      if (!v.ok) {
        if (v.status === 409)
          return reply
            .code(409)
            .type(TLOG_SIZE_CONTENT_TYPE)
            .send(`${v.size ?? 0}\n`);
        // A validly signed checkpoint that fails the consistency checks may be evidence of a split view: keep it.
        if (v.status === 422 && v.origin !== undefined) {
          const file = await opts.state.recordEvidence(v.origin, v.reason, Buffer.from(body).toString("utf8"));
          req.log.warn({ reason: v.reason, origin: v.origin, evidence: file }, "refused a validly signed checkpoint");
        }
        return reply.code(v.status).type("text/plain; charset=utf-8").send(`${v.reason}\n`);
      }
      const { response, note } = cosignAccepted(v, signer);
      await opts.state.put(v.checkpoint.origin, note); // durable before the cosignature leaves
      req.log.info({ origin: v.checkpoint.origin, size: v.checkpoint.size }, "cosigned checkpoint");
      return reply.code(200).type("text/plain; charset=utf-8").send(response);
    });
  });

  app.post("/key-handover", async (req, reply) => {
    const body = Buffer.isBuffer(req.body) ? req.body.toString("utf8") : "";
    if (body.length > BODY_LIMIT) return reply.code(400).send("too large\n");
    return serialized(async () => {
      const r = await follow(body, true);
      if (r.status === 200 && r.reason === "followed") req.log.info({}, "followed a log-key hand-over");
      else if (r.status !== 200) req.log.warn({ reason: r.reason }, "refused a log-key hand-over");
      return reply.code(r.status).type("text/plain; charset=utf-8").send(`${r.reason}\n`);
    });
  });

  app.get<{ Params: { hash: string } }>("/:hash/checkpoint", async (req, reply) => {
    const origin = byHash.get(req.params.hash);
    const s = origin === undefined ? undefined : opts.state.get(origin);
    if (!s) return reply.code(404).type("text/plain; charset=utf-8").send("no checkpoint cosigned for this log\n");
    return reply.type("text/plain; charset=utf-8").header("cache-control", "no-cache").send(s.note);
  });

  app.get("/healthz", async () => ({ ok: true, witness: opts.key.vkey }));

  app.addHook("onClose", async () => {
    await queue;
  });
  return app;
}
