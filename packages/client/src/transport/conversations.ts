/** Transport area: conversations, their ordered message log (application messages and commits), the inbox. */
import { fromBase64, toBase64 } from "@valise/core";
import type { RequestCore } from "./core.js";
import type { AppendAnswer, InboxItem, ServerConversation, ServerMessage } from "./types.js";

const conv = (id: string) => `/v1/conversations/${encodeURIComponent(id)}`;

export class ConversationsApi {
  constructor(protected readonly http: RequestCore) {}

  createConversation(c: {
    id: string;
    kind: string;
    label: string;
    unit?: string;
    fromUnit?: string;
  }): Promise<ServerConversation> {
    return this.http.request("POST /v1/conversations", "/v1/conversations", { body: c });
  }
  async conversations(): Promise<ServerConversation[]> {
    return (await this.http.request("GET /v1/conversations", "/v1/conversations")).conversations;
  }
  async messages(id: string, after: number, limit = 500): Promise<ServerMessage[]> {
    const r = await this.http.request(
      "GET /v1/conversations/:id/messages",
      `${conv(id)}/messages?after=${after}&limit=${limit}`,
    );
    return r.messages.map((m) => ({ ...m, payload: fromBase64(m.payload) }));
  }
  /** `client`: the audit event's client field for this send (a key forward says so; see forward.ts). */
  postMessage(id: string, message: Uint8Array, idempotencyKey: string, client?: string): Promise<AppendAnswer> {
    return this.http.request("POST /v1/conversations/:id/messages", `${conv(id)}/messages`, {
      body: message,
      headers: { "idempotency-key": idempotencyKey, ...(client ? { "x-valise-client": client } : {}) },
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
  ): Promise<AppendAnswer> {
    return this.http.request("POST /v1/conversations/:id/commits", `${conv(id)}/commits`, {
      body: {
        commit: toBase64(c.commit),
        ...(c.welcome ? { welcome: toBase64(c.welcome) } : {}),
        groupInfo: toBase64(c.groupInfo),
        added: c.added,
        removed: c.removed,
        idempotencyKey: c.idempotencyKey,
        ...(c.external ? { external: true } : {}),
      },
    });
  }
  async groupInfo(id: string): Promise<Uint8Array> {
    return fromBase64(
      (await this.http.request("GET /v1/conversations/:id/group-info", `${conv(id)}/group-info`)).groupInfo,
    );
  }
  async inbox(after: number): Promise<InboxItem[]> {
    const r = await this.http.request("GET /v1/inbox", `/v1/inbox?after=${after}`);
    return r.items.map((i) => ({ ...i, welcome: fromBase64(i.welcome) }));
  }
}
