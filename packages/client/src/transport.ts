/**
 * HTTP transport to a Valise server, on `fetch` (browser and Node alike). Every method maps one endpoint; errors
 * come back as ValiseError with the server's stable `code`. Responses are server-controlled data: the SDK treats
 * them as untrusted (shapes checked where used, cryptographic checks in the protocol layer).
 */
import { ValiseError, type ValiseErrorCode, fromBase64, toBase64 } from "@valise/core";

export interface ServerConversation {
  id: string;
  kind: "direct" | "group" | "unit";
  label: string;
  unit: string | null;
  creator: string;
  epoch: number;
  headSeq: number;
  joinedSeq?: number;
  leftSeq?: number | null;
}
export interface ServerMessage {
  seq: number;
  kind: "application" | "commit" | "proposal";
  epoch: number;
  sender: string;
  payload: Uint8Array;
  createdAt: number;
}
export interface ServerUser {
  handle: string;
  units: string[];
  clearance: string;
  role: string;
  devices: { id: string; name: string; signaturePublicKey: string; createdAt: number; revokedAt: number | null }[];
}
export interface InboxItem {
  id: number;
  conversation: ServerConversation;
  commitSeq: number;
  welcome: Uint8Array;
  createdAt: number;
}
export interface AppendAnswer {
  seq: number;
  epoch: number;
  duplicate: boolean;
}

export class HttpTransport {
  token: string | null = null;
  constructor(
    readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis),
  ) {}

  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    extraHeaders: Record<string, string> = {},
  ): Promise<T> {
    const headers: Record<string, string> = { ...extraHeaders };
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array) {
      headers["content-type"] = "application/octet-stream";
      payload = body as unknown as BodyInit;
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await this.fetchImpl(new URL(path, this.baseUrl), { method, headers, body: payload ?? null });
    } catch (e) {
      throw new ValiseError(
        "transport_error",
        `cannot reach ${this.baseUrl}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      /* non-JSON */
    }
    if (!res.ok) {
      const err = (json ?? {}) as { code?: string; message?: string; epoch?: number };
      const code = (
        typeof err.code === "string" ? err.code : res.status >= 500 ? "transport_error" : "bad_request"
      ) as ValiseErrorCode;
      throw new ValiseError(code, `${method} ${path}: ${res.status} ${err.message ?? text.slice(0, 200)}`, {
        status: res.status,
        epoch: err.epoch,
      });
    }
    return json as T;
  }

  enroll(
    code: string,
    device: { id: string; name: string; signaturePublicKey: Uint8Array },
    keyPackages: Uint8Array[],
  ) {
    return this.call<{
      user: { handle: string; units: string[]; clearance: string; role: string };
      device: { id: string };
    }>("POST", "/v1/enroll", {
      code,
      device: { id: device.id, name: device.name, signaturePublicKey: toBase64(device.signaturePublicKey) },
      keyPackages: keyPackages.map(toBase64),
    });
  }
  challenge(device: string) {
    return this.call<{ challenge: string; expiresAt: number }>("POST", "/v1/auth/challenge", { device });
  }
  session(device: string, challenge: string, signature: Uint8Array) {
    return this.call<{ token: string; expiresAt: number }>("POST", "/v1/auth/session", {
      device,
      challenge,
      signature: toBase64(signature),
    });
  }
  me() {
    return this.call<ServerUser & { device: string }>("GET", "/v1/me");
  }
  user(handle: string) {
    return this.call<ServerUser>("GET", `/v1/users/${encodeURIComponent(handle)}`);
  }
  unitMembers(unit: string) {
    return this.call<{ unit: string; members: string[] }>("GET", `/v1/unit-members?unit=${encodeURIComponent(unit)}`);
  }
  uploadKeyPackages(kps: Uint8Array[]) {
    return this.call<{ count: number }>("POST", "/v1/keypackages", { keyPackages: kps.map(toBase64) });
  }
  keyPackageCount() {
    return this.call<{ count: number }>("GET", "/v1/keypackages/count");
  }
  async claimKeyPackages(devices: string[]) {
    if (devices.length === 0) return [];
    const r = await this.call<{ keyPackages: { handle: string; device: string; keyPackage: string }[] }>(
      "POST",
      "/v1/keypackages/claim",
      { devices },
    );
    return r.keyPackages.map((k) => ({ handle: k.handle, device: k.device, keyPackage: fromBase64(k.keyPackage) }));
  }
  createConversation(c: { id: string; kind: string; label: string; unit?: string }) {
    return this.call<ServerConversation>("POST", "/v1/conversations", c);
  }
  async conversations() {
    return (await this.call<{ conversations: ServerConversation[] }>("GET", "/v1/conversations")).conversations;
  }
  async messages(id: string, after: number, limit = 500): Promise<ServerMessage[]> {
    const r = await this.call<{ messages: (Omit<ServerMessage, "payload"> & { payload: string })[] }>(
      "GET",
      `/v1/conversations/${encodeURIComponent(id)}/messages?after=${after}&limit=${limit}`,
    );
    return r.messages.map((m) => ({ ...m, payload: fromBase64(m.payload) }));
  }
  postMessage(id: string, message: Uint8Array, idempotencyKey: string) {
    return this.call<AppendAnswer>("POST", `/v1/conversations/${encodeURIComponent(id)}/messages`, message, {
      "idempotency-key": idempotencyKey,
    });
  }
  postCommit(
    id: string,
    c: {
      commit: Uint8Array;
      welcome?: Uint8Array | undefined;
      groupInfo: Uint8Array;
      added: string[];
      removed: string[];
      idempotencyKey: string;
      external?: boolean;
    },
  ) {
    return this.call<AppendAnswer>("POST", `/v1/conversations/${encodeURIComponent(id)}/commits`, {
      commit: toBase64(c.commit),
      ...(c.welcome ? { welcome: toBase64(c.welcome) } : {}),
      groupInfo: toBase64(c.groupInfo),
      added: c.added,
      removed: c.removed,
      idempotencyKey: c.idempotencyKey,
      ...(c.external ? { external: true } : {}),
    });
  }
  async groupInfo(id: string) {
    return fromBase64(
      (await this.call<{ groupInfo: string }>("GET", `/v1/conversations/${encodeURIComponent(id)}/group-info`))
        .groupInfo,
    );
  }
  async inbox(after: number): Promise<InboxItem[]> {
    const r = await this.call<{ items: (Omit<InboxItem, "welcome"> & { welcome: string })[] }>(
      "GET",
      `/v1/inbox?after=${after}`,
    );
    return r.items.map((i) => ({ ...i, welcome: fromBase64(i.welcome) }));
  }
}
