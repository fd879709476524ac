/** Transport area: cables (release, the unit's queue, reading by id or reference, receipts). */
import type { RequestCore } from "./core.js";
import type { CableRelease, ServerCable } from "./types.js";

const cable = (id: string) => `/v1/cables/${encodeURIComponent(id)}`;

export class CablesApi {
  constructor(protected readonly http: RequestCore) {}

  releaseCable(c: CableRelease): Promise<ServerCable> {
    return this.http.request("POST /v1/cables", "/v1/cables", { body: c });
  }
  async cables(
    q: { limit?: number; offset?: number; unit?: string; precedence?: string } = {},
  ): Promise<ServerCable[]> {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
    return (await this.http.request("GET /v1/cables", `/v1/cables?${p.toString()}`)).cables;
  }
  async cableQueue(limit = 200): Promise<ServerCable[]> {
    return (await this.http.request("GET /v1/cables/queue", `/v1/cables/queue?limit=${limit}`)).cables;
  }
  cable(id: string): Promise<ServerCable> {
    return this.http.request("GET /v1/cables/:id", cable(id));
  }
  cableByReference(reference: string): Promise<ServerCable> {
    return this.http.request(
      "GET /v1/cables/by-reference",
      `/v1/cables/by-reference?reference=${encodeURIComponent(reference)}`,
    );
  }
  cableReceipt(id: string, state: "delivered" | "read"): Promise<ServerCable> {
    return this.http.request("POST /v1/cables/:id/receipts", `${cable(id)}/receipts`, { body: { state } });
  }
}
