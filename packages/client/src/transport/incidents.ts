/**
 * Transport area: incidents (officers only: alerts grouped, exported as STIX 2.1, shared over TAXII) and the TAXII
 * side: partners' collections polled for indicators, imported bundles, partner tokens.
 */
import type { RequestCore } from "./core.js";
import type {
  ImportedIndicatorView,
  IndicatorImportReport,
  ServerIncident,
  TaxiiPartner,
  TaxiiToken,
  TlpLevel,
} from "./types.js";

const inc = (id: string) => `/v1/incidents/${encodeURIComponent(id)}`;

export class IncidentsApi {
  constructor(protected readonly http: RequestCore) {}

  createIncident(b: { title: string; alerts: number[]; note?: string }): Promise<ServerIncident> {
    return this.http.request("POST /v1/incidents", "/v1/incidents", { body: b });
  }
  async incidents(limit = 100): Promise<ServerIncident[]> {
    return (await this.http.request("GET /v1/incidents", `/v1/incidents?limit=${limit}`)).incidents;
  }
  incident(id: string): Promise<ServerIncident> {
    return this.http.request("GET /v1/incidents/:id", inc(id));
  }
  incidentStix(
    id: string,
    includeAccounts = false,
  ): Promise<{ type: "bundle"; id: string; objects: Record<string, unknown>[] }> {
    return this.http.request(
      "GET /v1/incidents/:id/stix",
      `${inc(id)}/stix${includeAccounts ? "?includeAccounts=true" : ""}`,
    );
  }
  /** Shares to the common collection, or to one partner's own (`partner`), marked with the chosen TLP 2.0 level. */
  shareIncident(
    id: string,
    includeAccounts = false,
    to: { partner?: string; tlp?: TlpLevel } = {},
  ): Promise<{ id: string; collection: string; partner?: string; tlp: string; objects: number; added: number }> {
    return this.http.request("POST /v1/incidents/:id/share", `${inc(id)}/share`, {
      body: {
        ...(includeAccounts ? { includeAccounts } : {}),
        ...(to.partner !== undefined ? { partner: to.partner } : {}),
        ...(to.tlp !== undefined ? { tlp: to.tlp } : {}),
      },
    });
  }
  /** Partners' TAXII collections this server polls for indicators (officers only). */
  addTaxiiPartner(b: { url: string; token: string; name: string }): Promise<TaxiiPartner> {
    return this.http.request("POST /v1/taxii/partners", "/v1/taxii/partners", { body: b });
  }
  async taxiiPartners(): Promise<TaxiiPartner[]> {
    return (await this.http.request("GET /v1/taxii/partners", "/v1/taxii/partners")).partners;
  }
  removeTaxiiPartner(id: string): Promise<TaxiiPartner> {
    return this.http.request("DELETE /v1/taxii/partners/:id", `/v1/taxii/partners/${encodeURIComponent(id)}`);
  }
  pollTaxiiPartner(
    id: string,
  ): Promise<
    TaxiiPartner & { report: Omit<IndicatorImportReport, "retro"> & { retro: IndicatorImportReport["retro"][] } }
  > {
    return this.http.request("POST /v1/taxii/partners/:id/poll", `/v1/taxii/partners/${encodeURIComponent(id)}/poll`);
  }
  importStixBundle(bundle: unknown): Promise<IndicatorImportReport> {
    return this.http.request("POST /v1/taxii/import", "/v1/taxii/import", { body: bundle });
  }
  async indicators(): Promise<ImportedIndicatorView[]> {
    return (await this.http.request("GET /v1/taxii/indicators", "/v1/taxii/indicators")).indicators;
  }
  /** TAXII partner tokens (officers only): the token is in this answer only. */
  issueTaxiiToken(partner: string): Promise<TaxiiToken & { token: string }> {
    return this.http.request("POST /v1/taxii/tokens", "/v1/taxii/tokens", { body: { partner } });
  }
  async taxiiTokens(): Promise<TaxiiToken[]> {
    return (await this.http.request("GET /v1/taxii/tokens", "/v1/taxii/tokens")).tokens;
  }
  revokeTaxiiToken(id: string): Promise<TaxiiToken> {
    return this.http.request("DELETE /v1/taxii/tokens/:id", `/v1/taxii/tokens/${encodeURIComponent(id)}`);
  }
}
