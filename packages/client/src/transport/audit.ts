/**
 * Transport area: the audit log (security officers) and detection alerts. Log entries are leaf bytes; the caller
 * verifies them against a signed checkpoint (see ../audit.ts).
 */
import { ValiseError, fromBase64 } from "@valise/core";
import type { RequestCore } from "./core.js";
import type { AlertsLearning, AuditFilter, ServerAlert } from "./types.js";

const query = (o: object) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined) p.set(k, String(v));
  return p.toString();
};

export class AuditApi {
  constructor(protected readonly http: RequestCore) {}

  /** The audit log's latest checkpoint as a signed note, untrusted until verified (not retried: fresh or failed). */
  async auditCheckpoint(): Promise<string> {
    try {
      return await this.http.request("GET /v1/log/audit/checkpoint", "/v1/log/audit/checkpoint", { retry: false });
    } catch (e) {
      const status = e instanceof ValiseError ? e.details?.status : undefined;
      if (typeof status !== "number") throw e;
      throw new ValiseError(
        status === 404 ? "not_found" : "transport_error",
        `audit checkpoint: ${e instanceof Error ? e.message : String(e)}`,
        { status },
      );
    }
  }
  /** The server's claim of its log key and the audit log's origin (trust it only on first use, or pin it). */
  auditKey(): Promise<{ vkey: string; origin: string }> {
    return this.http.request("GET /v1/log/audit/key", "/v1/log/audit/key");
  }
  /** RFC 9162 consistency proof between two sizes of the audit log, untrusted until verified. */
  async auditConsistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    const r = await this.http.request(
      "GET /v1/log/audit/proof/consistency",
      `/v1/log/audit/proof/consistency?from=${from}&to=${to}`,
    );
    return r.proof.map(fromBase64);
  }
  /** Where the audit log was pruned: entries below `before` were exported and deleted; the prefix's frontier. */
  async auditPruned(): Promise<{ before: number; frontier: Uint8Array[] }> {
    const r = await this.http.request("GET /v1/log/audit/pruned", "/v1/log/audit/pruned");
    return { before: r.before, frontier: r.frontier.map(fromBase64) };
  }
  /** Entries [start, start+count) of the audit log (count ≤ 1000), as leaf bytes. */
  async auditEntries(start: number, count: number): Promise<Uint8Array[]> {
    const r = await this.http.request(
      "GET /v1/log/audit/entries",
      `/v1/log/audit/entries?start=${start}&count=${count}`,
    );
    return r.entries.map(fromBase64);
  }
  /** Entries matching a filter, newest first; with `size`, each with its inclusion proof in that tree. */
  async auditEvents(
    f: AuditFilter & { size?: number | undefined },
  ): Promise<{ index: number; entry: Uint8Array; proof: Uint8Array[] }[]> {
    const r = await this.http.request("GET /v1/log/audit/events", `/v1/log/audit/events?${query(f)}`);
    return r.events.map((e) => ({
      index: e.index,
      entry: fromBase64(e.entry),
      proof: (e.proof ?? []).map(fromBase64),
    }));
  }
  /** A cable's metadata by reference, for officers' audit queries (no subject or content). */
  auditCableByReference(
    reference: string,
  ): Promise<{ id: string; reference: string; originator: string; label: string; createdAt: number }> {
    return this.http.request(
      "GET /v1/audit/cables/by-reference",
      `/v1/audit/cables/by-reference?reference=${encodeURIComponent(reference)}`,
    );
  }
  /** Detection alerts in id order (officers only): after an id, at least a severity, triggered since a time. */
  async alerts(
    q: { after?: number; limit?: number; severity?: ServerAlert["severity"]; since?: string } = {},
  ): Promise<ServerAlert[]> {
    return (await this.http.request("GET /v1/alerts", `/v1/alerts?${query(q)}`)).alerts;
  }
  /** Whether detection is still learning (GET /v1/alerts's `learning`; null from a server without it). */
  async alertsLearning(): Promise<AlertsLearning | null> {
    return (await this.http.request("GET /v1/alerts", "/v1/alerts?limit=1")).learning ?? null;
  }
  ackAlert(id: number): Promise<ServerAlert> {
    return this.http.request("POST /v1/alerts/:id/ack", `/v1/alerts/${encodeURIComponent(String(id))}/ack`, {
      body: {},
    });
  }
}
