/**
 * What security officers do from the SDK: detection alerts (list, acknowledge, watch pushed), incidents (STIX 2.1,
 * shared over TAXII), allies' indicators, and clearances. The server refuses anyone else (403 `forbidden`); each call
 * logs in again once on an expired session.
 */
import { canonicalLabel } from "@valise/core";
import type { HttpTransport, ServerAlert, TlpLevel } from "./transport.js";
import type { Authed } from "./session.js";
import { isAlertFrame, openPush, type AlertFrame, type WebSocketFactory } from "./push.js";

export class OfficerApi {
  constructor(
    private readonly transport: HttpTransport,
    private readonly authed: Authed,
    private readonly login: () => Promise<void>,
    private readonly serverUrl: string,
  ) {}

  /** Officers: set a user's clearance. Devices no longer cleared are cut off before this returns. */
  setClearance(handle: string, clearance: string) {
    return this.authed(() => this.transport.setClearance(handle, canonicalLabel(clearance)));
  }

  /** Detection alerts (security officers only; anyone else gets 403 `forbidden`), in id order. */
  alerts(q: { after?: number; limit?: number; severity?: ServerAlert["severity"]; since?: string } = {}) {
    return this.authed(() => this.transport.alerts(q));
  }

  /** Incidents: alerts grouped under a title, exported as a STIX 2.1 bundle and shared to the TAXII collection. */
  readonly incidents = {
    create: (b: { title: string; alerts: number[]; note?: string }) =>
      this.authed(() => this.transport.createIncident(b)),
    list: (limit = 100) => this.authed(() => this.transport.incidents(limit)),
    show: (id: string) => this.authed(() => this.transport.incident(id)),
    stix: (id: string, includeAccounts = false) => this.authed(() => this.transport.incidentStix(id, includeAccounts)),
    share: (id: string, includeAccounts = false, to: { partner?: string; tlp?: TlpLevel } = {}) =>
      this.authed(() => this.transport.shareIncident(id, includeAccounts, to)),
  };

  /** Allies' indicators: partners' TAXII collections polled by the server, STIX bundles imported by hand. */
  readonly taxii = {
    addPartner: (b: { url: string; token: string; name: string }) =>
      this.authed(() => this.transport.addTaxiiPartner(b)),
    partners: () => this.authed(() => this.transport.taxiiPartners()),
    removePartner: (id: string) => this.authed(() => this.transport.removeTaxiiPartner(id)),
    poll: (id: string) => this.authed(() => this.transport.pollTaxiiPartner(id)),
    importBundle: (bundle: unknown) => this.authed(() => this.transport.importStixBundle(bundle)),
    indicators: () => this.authed(() => this.transport.indicators()),
  };

  /** Acknowledges an alert (officers only); the first acknowledgement stays. */
  ackAlert(id: number): Promise<ServerAlert> {
    return this.authed(() => this.transport.ackAlert(id));
  }

  /** Alerts as the server pushes them (officers only: other sessions get no alert frames). */
  async watchAlerts(factory: WebSocketFactory, onAlert: (a: AlertFrame) => void): Promise<{ close(): void }> {
    await this.login();
    return openPush(factory, this.serverUrl, this.transport.token ?? "", (ev) => {
      if (isAlertFrame(ev)) onAlert(ev);
    });
  }
}
