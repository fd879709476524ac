/**
 * Blobs: the ciphertext of documents and cables. Resumable upload (POST to announce the size, PATCH with
 * `Upload-Offset` to append; the body is streamed to the blob store, never buffered whole, and bytes written before a
 * dropped connection count), status, and streamed download with `Range: bytes=N-` (206). Once attached, the blob's
 * object (document or cable) decides who may read it; before, only its owner.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type, type Static } from "typebox";
import { ID_PATTERN, ValiseError, randomId } from "@valise/core";
import { CreateBlobBody as CreateBody, MAX_BLOB, MAX_WHOLE_BLOB } from "@valise/core/wire";
import type { ServerContext } from "./context.js";

export { MAX_BLOB };
import { auditObject, audit } from "../audit/http.js";
import { cableEntitled, documentEntitled, requireAccess, viewerOf, type Viewer } from "./need-to-know.js";
import type { BlobRecord } from "../storage/blob-meta.js";
import type { DocumentRecord } from "../storage/document-store.js";

/** How long a request waits for a concurrent upload to the same blob (e.g. one whose client just dropped). */
const UPLOAD_WAIT_MS = 10_000;
const BlobIdT = Type.String({ pattern: ID_PATTERN.blob });
const Params = Type.Object({ id: BlobIdT });

/** The audit unit of a document: the unit it is shared to, else its owner's (first) unit. */
export async function documentUnit(ctx: ServerContext, d: DocumentRecord): Promise<string | null> {
  if (d.to.kind === "unit") return d.to.name;
  return (await ctx.store.directory.getUser(d.owner))?.units[0] ?? null;
}

/**
 * Who may see a blob: its owner while it is not attached; afterwards whoever is entitled to and cleared for its object
 * (the audit record names the object, its label and canary flag). Throws the matching 403.
 */
async function blobAccess(ctx: ServerContext, req: FastifyRequest, v: Viewer, b: BlobRecord): Promise<void> {
  if (b.objectKind === "document" && b.objectId) {
    const d = await ctx.store.documents.get(b.objectId);
    if (!d) throw new ValiseError("internal", "blob attached to a missing document");
    auditObject(req, {
      action: "document.read",
      object: d.id,
      label: d.label,
      unit: await documentUnit(ctx, d),
      canary: d.canary,
    });
    requireAccess(v, documentEntitled(v, d), d.label, `document ${d.id}`);
    return;
  }
  if (b.objectKind === "cable" && b.objectId) {
    const c = await ctx.store.cables.get(b.objectId);
    if (!c) throw new ValiseError("internal", "blob attached to a missing cable");
    auditObject(req, { action: "cable.read", object: c.id, label: c.label, unit: c.originator });
    requireAccess(v, cableEntitled(v, c), c.label, `cable ${c.id}`);
    return;
  }
  if (b.owner !== v.handle) throw new ValiseError("forbidden", `blob ${b.id} is not yours`);
}

/**
 * An upload in progress belongs to the device that began it: only that device holds its key and what it sent, so
 * only it may see how far it got or continue it (another user, or another device of the same user, gets 403).
 */
function uploaderOnly(v: Viewer, b: BlobRecord): void {
  if (b.owner !== v.handle) throw new ValiseError("forbidden", `blob ${b.id} is not yours`);
  if (b.ownerDevice !== v.deviceId)
    throw new ValiseError(
      "forbidden",
      `blob ${b.id} is being uploaded by another of your devices; only it can continue`,
    );
}

/** Default time after which an upload never attached to a document or cable is reclaimed: 24 hours. */
export const DEFAULT_UPLOAD_TTL_MS = 24 * 3600 * 1000;

export interface BlobRouteOptions {
  /** Uploads not attached to an object this long (ms) after they were created are deleted, audited (`blob.expire`). */
  uploadTtlMs?: number;
  /** How often to look for them; default a quarter of the TTL, between 1 s and 10 min. */
  reapIntervalMs?: number;
  /** Per-user blob quota in bytes (announced sizes of the user's blobs); default DEFAULT_BLOB_QUOTA. */
  quotaBytes?: number;
}

/** Default per-user blob quota: 20 GiB. */
export const DEFAULT_BLOB_QUOTA = 20 * 1024 ** 3;

export function blobRoutes(app: FastifyInstance, ctx: ServerContext, opts: BlobRouteOptions = {}): void {
  const { blobs, blobBytes } = ctx.store;
  /** One upload at a time per blob (in this process): blob id → the running append. */
  const uploads = new Map<string, Promise<unknown>>();

  // Abandoned uploads (the client went away and never attached the blob) would keep their bytes for ever.
  const ttl = opts.uploadTtlMs ?? DEFAULT_UPLOAD_TTL_MS;
  const reapEvery = opts.reapIntervalMs ?? Math.min(600_000, Math.max(1000, Math.floor(ttl / 4)));
  let reaping: Promise<void> = Promise.resolve();
  let reapBusy = false;
  const reap = async () => {
    for (const b of await blobs.abandoned(ctx.now() - ttl)) {
      if (uploads.has(b.id)) continue; // being written right now
      if (!(await blobs.deleteUnattached(b.id))) continue; // attached meanwhile
      const freed = (await blobBytes.size(b.id).catch(() => null)) ?? b.received;
      await blobBytes.delete(b.id);
      const owner = await ctx.store.directory.getUser(b.owner).catch(() => null);
      await ctx.audit.record({
        actor: "server",
        device: null,
        source: "server",
        client: null,
        action: "blob.expire",
        object: b.id,
        unit: owner?.units[0] ?? null,
        bytes: freed,
        outcome: "ok",
      });
      app.log.info({ blob: b.id, owner: b.owner, bytes: freed }, "abandoned upload reclaimed");
    }
  };
  const reapTimer = setInterval(() => {
    if (reapBusy) return;
    reapBusy = true;
    reaping = reap()
      .catch((e: unknown) =>
        app.log.warn({ err: { message: e instanceof Error ? e.message : String(e) } }, "upload reaper failed"),
      )
      .finally(() => {
        reapBusy = false;
      });
  }, reapEvery);
  reapTimer.unref();
  app.addHook("onClose", async () => {
    clearInterval(reapTimer);
    await reaping;
  });

  async function settled(id: string): Promise<boolean> {
    const deadline = Date.now() + UPLOAD_WAIT_MS;
    for (let cur = uploads.get(id); cur; cur = uploads.get(id)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([cur, new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
    return true;
  }

  async function exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (!(await settled(id)))
      throw new ValiseError("conflict", `another upload to blob ${id} is still in progress; retry later`);
    const run = fn();
    const mark = run.then(
      () => undefined,
      () => undefined,
    );
    uploads.set(id, mark);
    try {
      return await run;
    } finally {
      if (uploads.get(id) === mark) uploads.delete(id);
    }
  }

  const present = (b: BlobRecord, received: number) => ({
    id: b.id,
    size: b.size,
    received,
    complete: b.complete || received >= b.size,
  });

  /** Bytes durably on the store (what a client resumes from), never more than announced. */
  async function onStore(b: BlobRecord): Promise<number> {
    if (b.complete) return b.size;
    const n = await blobBytes.size(b.id);
    // Gone from the store, or on another node's disk (several nodes need a shared blob store): a 404, not a 500.
    if (n === null) {
      app.log.error({ blob: b.id }, "blob content missing from the blob store");
      throw new ValiseError("not_found", `blob ${b.id}: its content is missing on the server`);
    }
    return Math.min(n, b.size);
  }

  // The upload body is handed over as the raw request stream: the PATCH handler streams it to the blob store.
  app.addContentTypeParser("application/offset+octet-stream", (_req, payload, done) => done(null, payload));

  const postBlobsAudit = audit({ action: "document.write", write: true, fromRoute: true });
  app.post<{ Body: Static<typeof CreateBody> }>(
    "/v1/blobs",
    { ...postBlobsAudit, schema: { body: CreateBody } },
    async (req, reply) => {
      const v = await viewerOf(ctx, req);
      const id = randomId("b");
      auditObject(req, { object: id, unit: v.units[0] ?? null, bytes: 0 });
      const quota = opts.quotaBytes ?? DEFAULT_BLOB_QUOTA;
      const used = await blobs.usedBy(v.handle);
      if (used + req.body.size > quota)
        throw new ValiseError(
          "too_large",
          `blob quota exceeded: you hold ${used} bytes of your ${quota}; this upload needs ${req.body.size} more`,
          { quotaBytes: quota, usedBytes: used },
        );
      const b = await blobs.create({ id, owner: v.handle, ownerDevice: v.deviceId, size: req.body.size });
      await blobBytes.create(id);
      return reply.status(201).send(present(b, 0));
    },
  );

  // A small blob whole in one request (a cable without large attachments): created, written and complete, so the
  // sender makes one round trip instead of POST + PATCH. The size is the Content-Length (1..MAX_WHOLE_BLOB bytes); a
  // body that ends short leaves an incomplete blob of the owner's, as a dropped PATCH would (the reaper's).
  app.post(
    "/v1/blobs/whole",
    {
      ...audit({ action: "document.write", write: true, fromRoute: true }),
      bodyLimit: MAX_WHOLE_BLOB,
    },
    async (req, reply) => {
      const v = await viewerOf(ctx, req);
      const id = randomId("b");
      auditObject(req, { object: id, unit: v.units[0] ?? null, bytes: 0 });
      const length = req.headers["content-length"];
      if (typeof length !== "string" || !/^[1-9][0-9]{0,15}$/.test(length))
        throw new ValiseError("bad_request", "Content-Length required: the blob's size (at least 1 byte)");
      if (Number(length) > MAX_WHOLE_BLOB)
        throw new ValiseError(
          "too_large",
          `a blob sent whole has at most ${MAX_WHOLE_BLOB} bytes; larger ones: POST /v1/blobs, then PATCH in parts`,
        );
      const size = Number(length);
      const source = bodySource(req.body);
      if (!source)
        throw new ValiseError("bad_request", "body must be application/offset+octet-stream (the whole blob)");
      const quota = opts.quotaBytes ?? DEFAULT_BLOB_QUOTA;
      const used = await blobs.usedBy(v.handle);
      if (used + size > quota)
        throw new ValiseError(
          "too_large",
          `blob quota exceeded: you hold ${used} bytes of your ${quota}; this upload needs ${size} more`,
          { quotaBytes: quota, usedBytes: used },
        );
      const b = await blobs.create({ id, owner: v.handle, ownerDevice: v.deviceId, size });
      await blobBytes.create(id);
      const out = await blobBytes.append(id, 0, source, size); // nobody else knows the id yet
      if (out.overflow) throw new ValiseError("too_large", `the body is longer than its Content-Length (${size})`);
      if (out.error !== undefined || out.size !== size)
        throw new ValiseError("bad_request", `the body ended after ${out.size} of ${size} bytes`);
      const after = await blobs.setReceived(id, size);
      auditObject(req, { bytes: size });
      return reply.status(201).send(present({ ...b, ...after }, size));
    },
  );

  const getBlobsIdStatusAudit = audit({ action: "document.read", fromRoute: true });
  app.get<{ Params: Static<typeof Params> }>(
    "/v1/blobs/:id/status",
    { ...getBlobsIdStatusAudit, schema: { params: Params } },
    async (req) => {
      const v = await viewerOf(ctx, req);
      auditObject(req, { object: req.params.id, bytes: 0 });
      let b = await blobs.get(req.params.id);
      if (!b) throw new ValiseError("not_found", `no blob ${req.params.id}`);
      // Another device of the owner (a history transfer's receiver) learns only that the upload is not complete yet.
      if (!b.complete && b.owner === v.handle && b.ownerDevice !== v.deviceId)
        throw new ValiseError("conflict", `blob ${b.id} is still being uploaded by another of your devices`, {
          complete: false,
        });
      if (!b.complete) uploaderOnly(v, b);
      await blobAccess(ctx, req, v, b);
      // An upload whose client just dropped may still be writing: answer with what it left on disk.
      await settled(b.id);
      b = (await blobs.get(b.id))!;
      return present(b, await onStore(b));
    },
  );

  app.patch<{ Params: Static<typeof Params> }>(
    "/v1/blobs/:id",
    {
      ...audit({ action: "document.write", write: true, fromRoute: true }),
      schema: { params: Params },
      bodyLimit: MAX_BLOB + 1024,
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      const id = req.params.id;
      auditObject(req, { object: id, unit: v.units[0] ?? null, bytes: 0 });
      const header = req.headers["upload-offset"];
      if (typeof header !== "string" || !/^(0|[1-9][0-9]{0,15})$/.test(header))
        throw new ValiseError("bad_request", "Upload-Offset header required (a decimal byte offset)");
      const offset = Number(header);
      const body = req.body;
      const source = bodySource(body);
      if (!source)
        throw new ValiseError(
          "bad_request",
          "body must be application/offset+octet-stream (the next bytes of the blob)",
        );
      const b0 = await blobs.get(id);
      if (!b0) throw new ValiseError("not_found", `no blob ${id}`);
      uploaderOnly(v, b0);
      return exclusive(id, async () => {
        const b = (await blobs.get(id))!;
        if (b.complete) throw new ValiseError("conflict", `blob ${id} is complete; it can no longer change`);
        const received = await onStore(b);
        if (offset !== received)
          throw new ValiseError("offset_mismatch", `Upload-Offset ${offset} but the server holds ${received} bytes`, {
            received,
          });
        const length = req.headers["content-length"];
        if (length !== undefined && offset + Number(length) > b.size)
          throw new ValiseError("too_large", `the blob is ${b.size} bytes: at most ${b.size - offset} more`);
        const out = await blobBytes.append(id, offset, source, b.size - offset);
        const after = await blobs.setReceived(id, out.size);
        auditObject(req, { bytes: out.size - offset });
        if (out.overflow)
          throw new ValiseError("too_large", `the blob is ${b.size} bytes: at most ${b.size - offset} more`);
        if (out.error !== undefined) req.log.info({ blob: id, received: out.size }, "blob upload interrupted");
        return present(after, out.size);
      });
    },
  );

  const getBlobsIdAudit = audit({ action: "document.read", fromRoute: true });
  app.get<{ Params: Static<typeof Params> }>(
    "/v1/blobs/:id",
    { ...getBlobsIdAudit, schema: { params: Params } },
    async (req, reply) => {
      const v = await viewerOf(ctx, req);
      auditObject(req, { object: req.params.id, bytes: 0 });
      const b = await blobs.get(req.params.id);
      if (!b) throw new ValiseError("not_found", `no blob ${req.params.id}`);
      await blobAccess(ctx, req, v, b);
      if (!b.complete) throw new ValiseError("conflict", `blob ${b.id} is not completely uploaded yet`);
      // The file may be gone (operator error, a failed disk): a clear 404, never a 500 or a stream that breaks.
      const onDisk = await blobBytes.size(b.id);
      if (onDisk === null || onDisk < b.size) {
        req.log.error({ blob: b.id, onDisk }, "blob content missing from the blob store");
        throw new ValiseError("not_found", `blob ${b.id}: its content is missing on the server`);
      }
      let start = 0;
      const m = /^bytes=([0-9]{1,16})-([0-9]{0,16})$/.exec(req.headers.range ?? "");
      if (m) {
        start = Number(m[1]);
        const end = m[2] ? Math.min(Number(m[2]), b.size - 1) : b.size - 1;
        if (start >= b.size || end < start)
          return reply
            .status(416)
            .header("content-range", `bytes */${b.size}`)
            .send({ code: "bad_request", message: `range not satisfiable: the blob is ${b.size} bytes` });
        auditObject(req, { bytes: end - start + 1 });
        return reply
          .status(206)
          .header("content-type", "application/octet-stream")
          .header("accept-ranges", "bytes")
          .header("content-length", String(end - start + 1))
          .header("content-range", `bytes ${start}-${end}/${b.size}`)
          .send(blobBytes.read(b.id, start, end));
      }
      auditObject(req, { bytes: b.size });
      return reply
        .header("content-type", "application/octet-stream")
        .header("accept-ranges", "bytes")
        .header("content-length", String(b.size))
        .send(blobBytes.read(b.id, 0));
    },
  );
}

/** The upload body as a byte stream: the raw request (offset+octet-stream) or an already read buffer. */
function bodySource(body: unknown): AsyncIterable<Uint8Array> | null {
  if (body instanceof Uint8Array)
    return (async function* () {
      yield body;
    })();
  if (body && typeof body === "object" && Symbol.asyncIterator in body) return body as AsyncIterable<Uint8Array>;
  return null;
}
