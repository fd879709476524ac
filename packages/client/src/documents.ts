/**
 * Documents: files of any size encrypted on the client in a stream (1 MiB chunks, see `@valise/core` docstream),
 * uploaded resumably, versioned (each version its own key), shared with a user or a unit. The file name and the key
 * travel only inside MLS, to the conversation of the share target at the document's label.
 */
import {
  ValiseError,
  canonicalLabel,
  dominates,
  fromBase64,
  isUnitName,
  parseLabel,
  randomId,
  runningSha256,
  toBase64,
} from "@valise/core";
import type { ServerDocument } from "./transport.js";
import { MAX_FILE_NAME, type DocumentPayload } from "./items.js";
import { heldDocument } from "./held-keys.js";
import { nullRecord, own } from "./schema.js";
import type { PendingUpload } from "./profile.js";
import {
  downloadDecrypted,
  uploadEncrypted,
  type PlainSource,
  type Progress,
  type UploadCheckpoint,
} from "./content.js";
import { keyHolders } from "./cables.js";
import { missingKeyMessage } from "./missing-key.js";
import type { ContentHost } from "./host.js";

export interface PutSpec {
  /** A handle or a unit (new document), ignored for a new version. */
  to?: string | undefined;
  label?: string | undefined;
  name: string;
  source: PlainSource;
  /** Add a version to this document instead of creating one. */
  document?: string | undefined;
  /** Originating unit when sharing to a unit this user is not in. */
  fromUnit?: string | undefined;
  /**
   * Record the upload in the profile under this source id (the CLI: path, size, mtime) until the document version
   * exists, so that `resume` can continue it after this process was stopped.
   */
  sourceId?: string | undefined;
  /** Continue this interrupted upload (from `pendingUploads()`): same key, header, document and target. */
  resume?: PendingUpload | undefined;
}

export interface DocumentView extends ServerDocument {
  /** File name, where this device holds the key of that version (names are encrypted). */
  versions: (ServerDocument["versions"][number] & { name: string | null; plainSize: number | null })[];
}

export class Documents {
  constructor(private readonly host: ContentHost) {}

  /** Encrypts and uploads a file as a new document (version 1) or a new version; shares its key. */
  async put(spec: PutSpec, onProgress?: Progress): Promise<{ id: string; version: number; document: ServerDocument }> {
    if (spec.name.length === 0 || spec.name.length > MAX_FILE_NAME)
      throw new ValiseError("bad_request", `a file name has 1 to ${MAX_FILE_NAME} characters`);
    return this.host.authed(async () => {
      let id: string;
      let version: number;
      let label: string;
      let to: { kind: "user" | "unit"; name: string };
      const resume = spec.resume;
      if (resume) {
        ({ id, version, label, to } = resume);
      } else if (spec.document) {
        const doc = await this.host.transport.document(spec.document);
        id = doc.id;
        version = Math.max(0, ...doc.versions.map((v) => v.version)) + 1;
        label = canonicalLabel(doc.label);
        to = doc.to;
      } else {
        if (!spec.to) throw new ValiseError("bad_request", "say who the document is for (a handle or a unit)");
        if (!spec.label) throw new ValiseError("bad_request", "a document needs a label");
        id = randomId("f");
        version = 1;
        label = canonicalLabel(spec.label);
        to = isUnitName(spec.to) ? { kind: "unit", name: spec.to } : { kind: "user", name: spec.to };
      }
      const me = await this.host.me();
      if (!dominates(parseLabel(me.clearance), parseLabel(label)))
        throw new ValiseError("not_cleared", `your clearance does not cover ${label}`);
      if (to.kind === "user") {
        const u = await this.host.user(to.name);
        if (!u) throw new ValiseError("not_found", `no user ${to.name}`);
        if (!dominates(parseLabel(u.clearance), parseLabel(label)))
          throw new ValiseError("not_cleared", `${to.name} is not cleared for ${label}`);
      }
      const key = resume ? fromBase64(resume.key) : globalThis.crypto.getRandomValues(new Uint8Array(32));
      const newVersion = resume ? resume.newVersion : spec.document !== undefined;
      const fromUnit = resume ? resume.fromUnit : spec.fromUnit;
      let blobId = resume?.blob;
      const up = await uploadEncrypted(
        this.host.transport,
        this.host.cipher,
        key,
        { objectId: id, version, label },
        spec.source,
        onProgress,
        {
          ...(resume ? { resume: { blob: resume.blob, header: fromBase64(resume.header), sent: resume.sent } } : {}),
          onCreated: async (blob, header) => {
            blobId = blob;
            if (spec.sourceId === undefined) return;
            this.host.profile.uploads[blob] = {
              blob,
              source: spec.sourceId,
              name: spec.name,
              size: spec.source.size,
              startedAt: Date.now(),
              id,
              version,
              newVersion,
              label,
              to,
              ...(fromUnit !== undefined ? { fromUnit } : {}),
              key: toBase64(key),
              header: toBase64(header),
              sent: { plain: 0, sha256: toBase64(runningSha256().digest()) },
            };
            await this.host.save();
          },
          // Kept (sealed with the profile) before each part that carries new plaintext goes out.
          onCheckpoint: async (sent: UploadCheckpoint) => {
            const rec = blobId === undefined ? undefined : this.host.profile.upload(blobId);
            if (!rec) return; // not recorded (no sourceId): this upload cannot be resumed anyway
            rec.sent = sent;
            await this.host.save();
          },
        },
      );
      // A resumed upload may have been stopped after its document version was created.
      let doc: ServerDocument | undefined;
      if (resume) {
        const existing = await this.host.transport.document(id).catch((e: unknown) => {
          if (e instanceof ValiseError && e.code === "not_found") return undefined;
          throw e;
        });
        if (existing?.versions.some((v) => v.blob === up.blob)) doc = existing;
      }
      doc ??= newVersion
        ? await this.host.transport.addDocumentVersion(id, up.blob)
        : await this.host.transport.createDocument({ id, label, to, blob: up.blob });
      const stored = doc.versions.find((v) => v.blob === up.blob);
      if (!stored || stored.version !== version)
        throw new ValiseError("conflict", `another version of ${id} was uploaded meanwhile; upload again`);
      const payload: DocumentPayload = {
        t: "doc",
        id,
        version,
        label,
        name: spec.name,
        size: spec.source.size,
        blob: up.blob,
        key: toBase64(key),
        to,
        sender: this.host.handle,
        senderDevice: this.host.deviceId,
      };
      // This device just made this key: it is the authoritative copy (a peer's earlier copy for the same version
      // number, if any, was a forgery the server's record would not have matched).
      const docs = this.host.profile.documents;
      (own(docs, id) ?? (docs[id] = nullRecord<DocumentPayload>()))[String(version)] = payload;
      this.host.profile.deleteUpload(up.blob);
      await this.host.save();
      const target =
        to.kind === "user"
          ? ({ kind: "direct", peer: to.name, label } as const)
          : me.units.includes(to.name) && !fromUnit
            ? ({ kind: "unit", unit: to.name, label } as const)
            : ({
                kind: "link",
                fromUnit: fromUnit ?? firstUnit(me.units, to.name),
                unit: to.name,
                label,
              } as const);
      await this.host.deliver(target, payload);
      return { id, version, document: doc };
    });
  }

  /**
   * Continues an interrupted upload (one of `pendingUploads()`) from where the server's copy ends, with the same key,
   * header, document and target. The source's bytes already encrypted are read again and must hash to what was kept:
   * another file (even with the same name and size) is refused with `conflict` (`details.resume` "different_file")
   * before anything is sent; upload it as a new one (`put`) then. Only the device that began it can continue it.
   */
  async resumeUpload(
    upload: PendingUpload | string,
    source: PlainSource,
    onProgress?: Progress,
  ): Promise<{ id: string; version: number; document: ServerDocument }> {
    const u = typeof upload === "string" ? this.host.profile.upload(upload) : upload;
    if (!u)
      throw new ValiseError(
        "not_found",
        `no interrupted upload ${typeof upload === "string" ? upload : upload.blob} on this device`,
      );
    return this.put({ name: u.name, source, sourceId: u.source, resume: u }, onProgress);
  }

  /** Uploads this device began and did not finish (`valise doc put --resume`), oldest first. */
  pendingUploads(): PendingUpload[] {
    return this.host.profile.uploadList().sort((a, b) => a.startedAt - b.startedAt);
  }

  /** Forgets an interrupted upload (the server reclaims its bytes after its upload TTL). */
  async forgetUpload(blob: string): Promise<void> {
    this.host.profile.deleteUpload(blob);
    await this.host.save();
  }

  /** Documents this user may read (per the server), with file names where this device holds the keys. */
  async list(): Promise<DocumentView[]> {
    return this.host.authed(async () => {
      const docs = await this.host.transport.documents();
      return docs.map((d) => this.view(d));
    });
  }

  private view(d: ServerDocument): DocumentView {
    const local = own(this.host.profile.heldKeys.documents, d.id);
    return {
      ...d,
      versions: d.versions.map((v) => {
        const p = own(local, String(v.version));
        const ok = p && sameAsServer(p, d, v);
        return { ...v, name: ok ? p.name : null, plainSize: ok ? p.size : null };
      }),
    };
  }

  /**
   * A version (default: the latest) as verified plaintext pieces. The caller writes them out; the stream throws if
   * any chunk fails authentication, is missing, reordered or swapped, or the content was truncated.
   */
  async get(
    id: string,
    opts: { version?: number | undefined; onProgress?: Progress } = {},
  ): Promise<{ name: string; size: number; version: number; label: string; bytes: AsyncIterable<Uint8Array> }> {
    return this.host.authed(async () => {
      const doc = await this.host.transport.document(id);
      const version = opts.version ?? Math.max(...doc.versions.map((v) => v.version));
      const v = doc.versions.find((x) => x.version === version);
      if (!v) throw new ValiseError("not_found", `document ${id} has no version ${version}`);
      let p = heldDocument(this.host.profile.heldKeys, id, version);
      if (!p) {
        await this.host.catchUp();
        p = heldDocument(this.host.profile.heldKeys, id, version);
      }
      if (!p)
        throw new ValiseError(
          "not_found",
          `${missingKeyMessage(
            `document ${id} version ${version} [shared by ${doc.owner} with ${doc.to.name}]`,
            doc.label,
            await this.host.user(this.host.handle),
            doc.to.kind === "unit" ? await keyHolders(this.host, [doc.to.name], doc.label) : [doc.owner, doc.to.name],
          )}; \`valise doc list\` lists the others`,
          { document: id, version, label: doc.label },
        );
      if (!sameAsServer(p, doc, v))
        throw new ValiseError(
          "protocol_error",
          `the server's record of ${id} v${version} differs from what was shared`,
        );
      const payload = p;
      const bytes = checkLength(
        downloadDecrypted(
          this.host.transport,
          this.host.cipher,
          fromBase64(payload.key),
          { objectId: id, version, label: payload.label },
          v.blob,
          opts.onProgress,
        ),
        payload.size,
      );
      return { name: payload.name, size: payload.size, version, label: payload.label, bytes };
    });
  }

  /** Officers: mark (or unmark) a canary document. */
  async setCanary(id: string, canary: boolean): Promise<void> {
    await this.host.authed(() => this.host.transport.setCanary(id, canary));
  }
}

/**
 * The server's record of a version must match what its uploader bound to the key: blob, label, and who uploaded it
 * (sender "" only in records kept from before senders were bound).
 */
export function sameAsServer(p: DocumentPayload, d: ServerDocument, v: ServerDocument["versions"][number]): boolean {
  let label: string;
  try {
    label = canonicalLabel(d.label);
  } catch {
    return false;
  }
  return p.blob === v.blob && p.label === label && (p.sender === "" || p.sender === v.createdBy);
}

function firstUnit(units: string[], target: string): string {
  const u = units[0];
  if (!u) throw new ValiseError("forbidden", `you belong to no unit, so you cannot share with unit ${target}`);
  return u;
}

async function* checkLength(source: AsyncIterable<Uint8Array>, size: number): AsyncIterable<Uint8Array> {
  let n = 0;
  for await (const p of source) {
    n += p.length;
    if (n > size) throw new ValiseError("protocol_error", "document is longer than its sender said");
    yield p;
  }
  if (n !== size) throw new ValiseError("protocol_error", "document is shorter than its sender said");
}
