/**
 * Test support for the cables/documents/blobs/clearance tests: enroll a device and log in over HTTP with an Ed25519
 * key, a small JSON client, blob upload, and a stand-in MLS inspector whose "messages" are JSON routing headers (the
 * server reads only routing headers; these tests are about the server's access rules, not MLS).
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { protocolServerMls, type ServerMls, type Store } from "../../src/index.js";

export interface Session {
  handle: string;
  device: string;
  token: string;
}

export async function login(url: string, store: Store, handle: string, device: string): Promise<Session> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
  const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
  await store.directory.redeemEnrollment(
    enrollmentCode,
    { id: device, name: "t", signaturePublicKey: raw },
    [],
    () => {},
  );
  const ch = await fetch(`${url}/v1/auth/challenge`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ device }),
  });
  const { challenge } = (await ch.json()) as { challenge: string };
  const signature = sign(null, Buffer.from(`valise-login:${challenge}`), privateKey).toString("base64");
  const s = await fetch(`${url}/v1/auth/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ device, challenge, signature }),
  });
  assert.equal(s.status, 201);
  return { handle, device, token: ((await s.json()) as { token: string }).token };
}

export interface Answer<T = Record<string, unknown>> {
  status: number;
  json: T;
  text: string;
  headers: Headers;
}

export async function call<T = Record<string, unknown>>(
  url: string,
  as: Session | null,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  const h: Record<string, string> = { ...headers };
  if (as) h.authorization = `Bearer ${as.token}`;
  let payload: string | Uint8Array | undefined;
  if (body instanceof Uint8Array) {
    payload = body;
    h["content-type"] ??= "application/offset+octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h["content-type"] = "application/json";
  }
  const init: RequestInit = { method, headers: h };
  if (payload !== undefined) init.body = typeof payload === "string" ? payload : new Blob([Buffer.from(payload)]);
  const r = await fetch(`${url}${path}`, init);
  const text = await r.text();
  let json: unknown = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = {};
  }
  return { status: r.status, json: json as T, text, headers: r.headers };
}

export interface BlobStatus {
  id: string;
  size: number;
  received: number;
  complete: boolean;
}

/** Uploads `bytes` as a new complete blob; returns its id. */
export async function uploadBlob(url: string, as: Session, bytes: Uint8Array): Promise<string> {
  const c = await call<BlobStatus>(url, as, "POST", "/v1/blobs", { size: bytes.length });
  assert.equal(c.status, 201, c.text);
  const p = await call<BlobStatus>(url, as, "PATCH", `/v1/blobs/${c.json.id}`, bytes, { "upload-offset": "0" });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.complete, true);
  return c.json.id;
}

/** Routing headers as JSON instead of MLS messages: `{"w": wireformat, "g": group, "e": epoch, "c": content}`. */
export const jsonMls: ServerMls = {
  inspectMlsMessage(bytes) {
    try {
      const h = JSON.parse(Buffer.from(bytes).toString("utf8")) as { w: string; g?: string; e?: number; c?: string };
      return {
        wireformat: h.w as "public",
        ...(h.g !== undefined ? { groupId: new TextEncoder().encode(h.g) } : {}),
        ...(h.e !== undefined ? { epoch: BigInt(h.e) } : {}),
        ...(h.c !== undefined ? { contentType: h.c as "application" } : {}),
      };
    } catch {
      return null;
    }
  },
  inspectKeyPackage: async () => null,
  /**
   * The stand-in commit names its sender (`s`), added (`a`) and removed (`r`) devices and whether it is external
   * (`x`); no keys (signaturePublicKey null). The real inspector (@valise/protocol inspectCommit) has its own tests.
   */
  async inspectCommit(commit) {
    try {
      const h = JSON.parse(Buffer.from(commit).toString("utf8")) as {
        s?: string;
        a?: string[];
        r?: string[];
        x?: boolean;
      };
      if (typeof h.s !== "string") return { ok: false, reason: "stand-in commit without sender" };
      return {
        ok: true,
        sender: { user: "", device: h.s, signaturePublicKey: null, kind: h.x ? "external" : "member" },
        added: (h.a ?? []).map((device) => ({ user: "", device, signaturePublicKey: null })),
        removed: h.r ?? [],
      };
    } catch {
      return { ok: false, reason: "not a stand-in commit" };
    }
  },
  verifySignature: (k, m, s) => protocolServerMls.verifySignature(k, m, s),
};

export const mlsBytes = (h: Record<string, unknown>) => new Uint8Array(Buffer.from(JSON.stringify(h)));
const b64 = (h: Record<string, unknown>) => Buffer.from(JSON.stringify(h)).toString("base64");

/** Posts an application message (JSON stand-in) to the conversation at `epoch`. */
export function sendMessage(url: string, as: Session, conv: string, epoch: number, idem: string) {
  return call(
    url,
    as,
    "POST",
    `/v1/conversations/${conv}/messages`,
    mlsBytes({ w: "private", g: conv, e: epoch, c: "application" }),
    {
      "content-type": "application/octet-stream",
      "idempotency-key": idem,
    },
  );
}

/** Posts a commit adding/removing devices at `epoch`. */
export function commit(
  url: string,
  as: Session,
  conv: string,
  epoch: number,
  change: { added?: string[]; removed?: string[] },
  idem: string,
) {
  return call(url, as, "POST", `/v1/conversations/${conv}/commits`, {
    commit: b64({
      w: "public",
      g: conv,
      e: epoch,
      c: "commit",
      s: as.device,
      a: change.added ?? [],
      r: change.removed ?? [],
    }),
    ...((change.added ?? []).length > 0 ? { welcome: b64({ w: "welcome" }) } : {}),
    groupInfo: b64({ w: "group_info", g: conv, e: epoch + 1 }),
    added: change.added ?? [],
    removed: change.removed ?? [],
    idempotencyKey: idem,
  });
}
