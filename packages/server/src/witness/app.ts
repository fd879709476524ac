/**
 * The witness over HTTP (c2sp.org/tlog-witness): `POST /add-checkpoint` and, for monitors,
 * `GET /<sha256(origin) hex>/checkpoint`. Submission and monitoring prefix are both the root.
 *
 * Check-then-persist is atomic (tlog-witness §add-checkpoint: otherwise two requests could roll the state back):
 * requests are decided and persisted one at a time, and the cosignature is returned only after the new state is on
 * disk.
 */
import Fastify, { type FastifyInstance } from "fastify";
import { systemClock, type Clock, type NoteVerifier } from "@valise/core";
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
