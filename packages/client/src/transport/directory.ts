/**
 * Transport area: the directory (users, units, key packages) and its transparency log. Everything from the log is
 * checked by the caller against the trusted log key; directory answers against the log (see transparency.ts).
 */
import { fromBase64, toBase64 } from "@valise/core";
import type { RequestCore } from "./core.js";
import type { KtReport, ServerUser } from "./types.js";

/** C2SP tlog-tiles index encoding: 3-digit groups, all but the last prefixed with `x` (1234067 → x001/x234/067). */
export function tileIndexPath(n: number): string {
  const groups: string[] = [];
  do {
    groups.unshift(String(n % 1000).padStart(3, "0"));
    n = Math.floor(n / 1000);
  } while (n > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join("/");
}

export class DirectoryApi {
  constructor(protected readonly http: RequestCore) {}

  user(handle: string): Promise<ServerUser> {
    return this.http.request("GET /v1/users/:handle", `/v1/users/${encodeURIComponent(handle)}`);
  }
  /** Units with their highest label (and their `unit.share` window when not `all`). */
  units(): Promise<{ units: { name: string; maxLabel: string; share?: string }[] }> {
    return this.http.request("GET /v1/units", "/v1/units");
  }
  /** The handles of a unit's active members. */
  unitMembers(unit: string): Promise<{ unit: string; members: string[] }> {
    return this.http.request("GET /v1/unit-members", `/v1/unit-members?unit=${encodeURIComponent(unit)}`);
  }
  uploadKeyPackages(kps: Uint8Array[]): Promise<{ count: number }> {
    return this.http.request("POST /v1/keypackages", "/v1/keypackages", {
      body: { keyPackages: kps.map(toBase64) },
    });
  }
  keyPackageCount(): Promise<{ count: number }> {
    return this.http.request("GET /v1/keypackages/count", "/v1/keypackages/count");
  }
  /** Key packages of `devices`, to add them to `conversation` (the server checks the caller may). */
  async claimKeyPackages(devices: string[], conversation: string) {
    if (devices.length === 0) return [];
    const r = await this.http.request("POST /v1/keypackages/claim", "/v1/keypackages/claim", {
      body: { devices, conversation },
    });
    return r.keyPackages.map((k) => ({ handle: k.handle, device: k.device, keyPackage: fromBase64(k.keyPackage) }));
  }

  // The directory log (key transparency).
  /** The latest checkpoint as a signed note (with witness cosignatures), untrusted until verified. */
  logCheckpoint(): Promise<string> {
    return this.http.request("GET /v1/log/directory/checkpoint", "/v1/log/directory/checkpoint");
  }
  /** The directory log's head size as the server reports it: grows with every directory change. */
  logSize(): Promise<{ size: number }> {
    return this.http.request("GET /v1/log/directory/size", "/v1/log/directory/size");
  }
  /** The server's directory log key and witnesses (public; for trust on first use). */
  logTrust(): Promise<{ logKey: string; witnesses: string[]; quorum: number }> {
    return this.http.request("GET /v1/log/directory/trust", "/v1/log/directory/trust");
  }
  /** Log-key hand-overs (signed notes, oldest first), untrusted until verified against the pinned key. */
  async logKeyHandovers(): Promise<string[]> {
    return (await this.http.request("GET /v1/log/directory/key-handovers", "/v1/log/directory/key-handovers"))
      .handovers;
  }
  async logEntry(index: number): Promise<Uint8Array> {
    const r = await this.http.request("GET /v1/log/directory/entry/:index", `/v1/log/directory/entry/${index}`);
    return fromBase64(r.entry);
  }
  async logInclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    const r = await this.http.request(
      "GET /v1/log/directory/proof/inclusion",
      `/v1/log/directory/proof/inclusion?index=${index}&size=${size}`,
    );
    return r.proof.map(fromBase64);
  }
  async logConsistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    const r = await this.http.request(
      "GET /v1/log/directory/proof/consistency",
      `/v1/log/directory/proof/consistency?from=${from}&to=${to}`,
    );
    return r.proof.map(fromBase64);
  }
  /** C2SP tlog-tiles entry bundle `index` holding `width` entries (256 = full). */
  logEntryBundle(index: number, width: number): Promise<Uint8Array> {
    return this.http.request(
      "GET /v1/log/directory/tile/*",
      `/v1/log/directory/tile/entries/${tileIndexPath(index)}${width < 256 ? `.p/${width}` : ""}`,
    );
  }
  /** Any device: tell the security officers what key transparency found (raises an alert; deduplicated per hour). */
  reportKt(body: KtReport): Promise<{ id: number; duplicate: boolean; incident?: string }> {
    return this.http.request("POST /v1/kt/reports", "/v1/kt/reports", { body });
  }
}
