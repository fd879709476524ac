/**
 * Transport area: blobs (the ciphertext of documents and cables, uploaded in resumable parts, downloaded as a
 * ranged stream) and documents.
 */
import { ValiseError } from "@valise/core";
import { answerError, type RequestCore } from "./core.js";
import type { BlobStatus, ServerDocument } from "./types.js";

const blob = (id: string) => `/v1/blobs/${encodeURIComponent(id)}`;
const doc = (id: string) => `/v1/documents/${encodeURIComponent(id)}`;

export class DocumentsApi {
  constructor(protected readonly http: RequestCore) {}

  createBlob(size: number): Promise<BlobStatus> {
    return this.http.request("POST /v1/blobs", "/v1/blobs", { body: { size } });
  }
  blobStatus(id: string): Promise<BlobStatus> {
    return this.http.request("GET /v1/blobs/:id/status", `${blob(id)}/status`);
  }
  /** Appends `part` at `offset` (must equal the server's `received`, else 409 offset_mismatch). */
  /** A small blob (≤ MAX_WHOLE_BLOB bytes) created, written and completed in one request. */
  putWholeBlob(bytes: Uint8Array): Promise<BlobStatus> {
    return this.http.request("POST /v1/blobs/whole", "/v1/blobs/whole", {
      body: bytes,
      headers: { "content-type": "application/offset+octet-stream" },
    });
  }
  appendBlob(id: string, offset: number, part: Uint8Array): Promise<BlobStatus> {
    return this.http.request("PATCH /v1/blobs/:id", blob(id), {
      body: part,
      headers: { "upload-offset": String(offset), "content-type": "application/offset+octet-stream" },
    });
  }
  /** The blob's bytes from `offset` (to `end`, inclusive) as a stream (the server answers 206 for a range). */
  async readBlob(id: string, offset = 0, end?: number): Promise<ReadableStream<Uint8Array>> {
    const ranged = offset > 0 || end !== undefined;
    const res = await this.http.send("GET /v1/blobs/:id", blob(id), {
      ...(ranged ? { headers: { range: `bytes=${offset}-${end ?? ""}` } } : {}),
    });
    if (!res.ok || !res.body) throw answerError("GET", `blob ${id}`, res.status, await res.text());
    if (ranged && res.status !== 206)
      throw new ValiseError("protocol_error", `server ignored the range request for blob ${id}`);
    return res.body;
  }

  createDocument(d: {
    id: string;
    label: string;
    to: { kind: "user" | "unit"; name: string };
    blob: string;
  }): Promise<ServerDocument> {
    return this.http.request("POST /v1/documents", "/v1/documents", { body: d });
  }
  addDocumentVersion(id: string, blobId: string): Promise<ServerDocument> {
    return this.http.request("POST /v1/documents/:id/versions", `${doc(id)}/versions`, { body: { blob: blobId } });
  }
  async documents(): Promise<ServerDocument[]> {
    return (await this.http.request("GET /v1/documents", "/v1/documents")).documents;
  }
  document(id: string): Promise<ServerDocument> {
    return this.http.request("GET /v1/documents/:id", doc(id));
  }
  setCanary(id: string, canary: boolean): Promise<{ id: string; canary: boolean }> {
    return this.http.request("PUT /v1/documents/:id/canary", `${doc(id)}/canary`, { body: { canary } });
  }
}
