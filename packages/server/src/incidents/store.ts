/**
 * Incidents, TAXII partner tokens and the TAXII collection (migration 008). An incident is a title, a note and a
 * list of alert ids (migration 007's `alerts`); its STIX bundle is rebuilt from the alerts and the audit events
 * behind them each time (stix.ts is deterministic, so the same incident gives the same bundle). Sharing adds the
 * bundle's objects to the collection, each version once, with a unique, increasing `added_at` (ms): the TAXII
 * "date added" that `added_after` pages over. Partner tokens are stored as SHA-256 hashes only.
 */
import { MAX_INCIDENT_ALERTS } from "@valise/core/wire";
import { createHmac, randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { ValiseError, parseAuditEvent, type AuditEvent } from "@valise/core";
import type { Database } from "../storage/schema.js";
import type { AuditLog } from "../storage/audit-log.js";
import { randomToken, sha256Hex } from "../storage/secrets.js";
import {
  incidentBundle,
  uuidv5,
  VALISE_NAMESPACE,
  type IncidentAlert,
  type StixBundle,
  type TlpLevel,
} from "./stix.js";

/** The one TAXII collection: incidents the officers shared. */
export const TAXII_COLLECTION_ID = uuidv5(VALISE_NAMESPACE, "taxii/collection/shared-incidents");
export { MAX_INCIDENT_ALERTS };

/**
 * A partner's own collection (issue 16): what the officers shared with that partner alone. A partner's tokens read
 * the common collection and their own, never another partner's.
 */
export function partnerCollectionId(partner: string): string {
  return uuidv5(VALISE_NAMESPACE, `taxii/collection/partner/${partner}`);
}
/** How far back from an alert its events may lie (the longest rule window is a week). */
const EVENT_LOOKBACK_MS = 8 * 86_400_000;

export interface IncidentView {
  id: string;
  title: string;
  createdBy: string;
  createdAt: string;
  alerts: number[];
  note: string | null;
  shared: boolean;
  sharedAt: string | null;
  sharedBy: string | null;
}

export interface TaxiiTokenView {
  id: string;
  partner: string;
  createdBy: string;
  createdAt: string;
  revokedAt: string | null;
}

/**
 * A TAXII query over the collection (TAXII 2.1 filtering: `added_after`, `next`, `match[…]`). Omitted fields do not
 * filter. `versions` is `match[version]`: the first and/or last version of each object, all of them, and/or the
 * versions with these exact timestamps (ms); at least one must be asked for (the default, `last`, is the caller's).
 */
export interface TaxiiQuery {
  after?: number;
  ids?: readonly string[];
  /** STIX types; only `[a-z0-9-]` names can match (others are ignored, as no object has them). */
  types?: readonly string[];
  specVersions?: ReadonlySet<string>;
  versions: { all?: boolean; first?: boolean; last?: boolean; at?: readonly number[] };
}

/** One version of an object in the collection, as a manifest record needs it. */
export interface TaxiiEntry {
  /** The TAXII date added (ms, unique). */
  addedAt: number;
  id: string;
  /** TAXII version: the object's `modified`, else `created`, else its date added (TAXII 2.1 manifest-record). */
  version: string;
  specVersion: string;
  object: Record<string, unknown>;
}

const STIX_TYPE_RE = /^[a-z0-9][a-z0-9-]{0,249}$/;

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

function incidentView(r: Database["incidents"]): IncidentView {
  let alerts: number[] = [];
  try {
    const v: unknown = JSON.parse(r.alerts);
    if (Array.isArray(v)) alerts = v.map(Number);
  } catch {
    /* stored by us */
  }
  return {
    id: r.id,
    title: r.title,
    createdBy: r.created_by,
    createdAt: iso(r.created_at)!,
    alerts,
    note: r.note,
    shared: r.shared_at !== null,
    sharedAt: iso(r.shared_at),
    sharedBy: r.shared_by,
  };
}

export class IncidentStore {
  private pseudonymSecret: Promise<Buffer> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditLog,
    private readonly now: () => number,
  ) {}

  async create(p: { title: string; alerts: number[]; note: string | null; createdBy: string }): Promise<IncidentView> {
    const ids = [...new Set(p.alerts)];
    if (ids.length === 0 || ids.length > MAX_INCIDENT_ALERTS)
      throw new ValiseError("bad_request", `an incident needs 1-${MAX_INCIDENT_ALERTS} alerts`);
    const found = await this.db.selectFrom("alerts").select("id").where("id", "in", ids).execute();
    const known = new Set(found.map((r) => Number(r.id)));
    const missing = ids.filter((i) => !known.has(i));
    if (missing.length > 0) throw new ValiseError("not_found", `no such alert: ${missing.join(", ")}`);
    const row: Database["incidents"] = {
      id: `inc-${randomBytes(8).toString("hex")}`,
      title: p.title,
      created_by: p.createdBy,
      created_at: this.now(),
      alerts: JSON.stringify(ids),
      note: p.note,
      shared_at: null,
      shared_by: null,
    };
    await this.db.insertInto("incidents").values(row).execute();
    return incidentView(row);
  }

  async list(limit: number, before?: string): Promise<IncidentView[]> {
    let q = this.db.selectFrom("incidents").selectAll();
    if (before !== undefined) q = q.where("id", "<", before);
    const rows = await q.orderBy("created_at", "desc").orderBy("id", "desc").limit(limit).execute();
    return rows.map(incidentView);
  }

  async get(id: string): Promise<IncidentView | null> {
    const r = await this.db.selectFrom("incidents").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? incidentView(r) : null;
  }

  /** A stable pseudonym (`user-…`, `device-…`): HMAC-SHA256 under a per-server secret made on first use. */
  async pseudonymizer(): Promise<(kind: "user" | "device", value: string) => string> {
    this.pseudonymSecret ??= (async () => {
      await this.db
        .insertInto("incident_keys")
        .values({ name: "pseudonym", secret: randomBytes(32).toString("hex"), created_at: this.now() })
        .onConflict((oc) => oc.column("name").doNothing())
        .execute();
      const r = await this.db
        .selectFrom("incident_keys")
        .select("secret")
        .where("name", "=", "pseudonym")
        .executeTakeFirstOrThrow();
      return Buffer.from(r.secret, "hex");
    })().catch((e: unknown) => {
      this.pseudonymSecret = undefined;
      throw e;
    });
    const key = await this.pseudonymSecret;
    return (kind, value) =>
      `${kind}-${createHmac("sha256", key).update(`${kind}:${value}`).digest("hex").slice(0, 16)}`;
  }

  /** The incident's alerts and the audit events behind them (read from the audit log by actor, before each alert). */
  async evidence(inc: IncidentView): Promise<{ alerts: IncidentAlert[]; events: AuditEvent[] }> {
    const rows = inc.alerts.length
      ? await this.db.selectFrom("alerts").selectAll().where("id", "in", inc.alerts).orderBy("id").execute()
      : [];
    const alerts: IncidentAlert[] = [];
    const events = new Map<string, AuditEvent>();
    for (const r of rows) {
      let ids: string[] = [];
      try {
        const v: unknown = JSON.parse(r.events);
        if (Array.isArray(v)) ids = v.map(String);
      } catch {
        /* stored by the detector */
      }
      alerts.push({
        id: String(r.id),
        time: new Date(Number(r.time)).toISOString(),
        actor: r.actor,
        rule: r.rule,
        severity: r.severity,
        events: ids,
      });
      const wanted = new Set(ids.filter((id) => !events.has(id)));
      let before = Number(r.log_index) + 1;
      const since = Number(r.time) - EVENT_LOOKBACK_MS;
      for (let page = 0; wanted.size > 0 && page < 50; page++) {
        const found = await this.audit.query({ actor: r.actor, before, since, limit: 1000 });
        for (const f of found) {
          const p = parseAuditEvent(f.data);
          if (p.ok && wanted.delete(p.event.id)) events.set(p.event.id, p.event);
        }
        if (found.length < 1000) break;
        before = found[found.length - 1]!.index;
      }
    }
    return { alerts, events: [...events.values()] };
  }

  async bundle(inc: IncidentView, orgName: string, includeAccounts: boolean, tlp?: TlpLevel): Promise<StixBundle> {
    const { alerts, events } = await this.evidence(inc);
    return incidentBundle(
      {
        id: inc.id,
        title: inc.title,
        note: inc.note,
        createdAt: Date.parse(inc.createdAt),
        alerts,
        events,
      },
      { orgName, includeAccounts, pseudonym: await this.pseudonymizer(), ...(tlp ? { tlp } : {}) },
    );
  }

  /**
   * Adds objects to the TAXII collection: each (id, version) once, in order, `added_at` one ms apart and above every
   * earlier one. Returns how many were new. Concurrent shares collide on the unique `added_at` and retry.
   */
  async share(
    inc: IncidentView,
    objects: readonly Record<string, unknown>[],
    by: string,
    collection: string = TAXII_COLLECTION_ID,
  ): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction().execute(async (trx) => {
          const max = await trx
            .selectFrom("taxii_objects")
            .select((eb) => eb.fn.max("added_at").as("m"))
            .executeTakeFirst();
          let at = Math.max(Number(max?.m ?? 0) + 1, this.now());
          let added = 0;
          for (const o of objects) {
            const id = String(o.id);
            const version =
              typeof o.modified === "string" ? o.modified : typeof o.created === "string" ? o.created : "";
            const dup = await trx
              .selectFrom("taxii_objects")
              .select("added_at")
              .where("collection_id", "=", collection)
              .where("object_id", "=", id)
              .where("version", "=", version)
              .executeTakeFirst();
            if (dup) continue;
            await trx
              .insertInto("taxii_objects")
              .values({
                collection_id: collection,
                object_id: id,
                version,
                added_at: at++,
                object: JSON.stringify(o),
              })
              .execute();
            added++;
          }
          await trx
            .updateTable("incidents")
            .set({ shared_at: this.now(), shared_by: by })
            .where("id", "=", inc.id)
            .execute();
          return added;
        });
      } catch (e) {
        if (attempt >= 4 || !/unique|duplicate/i.test(e instanceof Error ? e.message : String(e))) throw e;
      }
    }
  }

  /**
   * The versions of objects in the collection that match `q`, oldest date added first, at most `limit`, and whether
   * more match after them. Everything but `spec_version` is filtered in SQL; `spec_version` (inside the JSON) is
   * checked here, reading ahead until the page is full. First/last compare `version` strings: every stored version
   * is a STIX timestamp as stix.ts writes it (ISO 8601, milliseconds, Z), so string order is time order; an object
   * without `modified`/`created` is stored with version "" and has exactly one version (its date added).
   */
  async entries(collection: string, q: TaxiiQuery, limit: number): Promise<{ entries: TaxiiEntry[]; more: boolean }> {
    const v = q.versions;
    const at = [...new Set(v.at ?? [])];
    const types = q.types?.filter((t) => STIX_TYPE_RE.test(t));
    if (
      (q.ids !== undefined && q.ids.length === 0) ||
      (types !== undefined && types.length === 0) ||
      (q.specVersions !== undefined && q.specVersions.size === 0) ||
      (!v.all && !v.first && !v.last && at.length === 0)
    )
      return { entries: [], more: false };
    const page = async (after: number | undefined) => {
      let sel = this.db
        .selectFrom("taxii_objects as t")
        .select(["t.added_at", "t.object_id", "t.version", "t.object"])
        .where("t.collection_id", "=", collection);
      if (after !== undefined) sel = sel.where("t.added_at", ">", after);
      if (q.ids !== undefined) sel = sel.where("t.object_id", "in", [...new Set(q.ids)]);
      if (types !== undefined) sel = sel.where((eb) => eb.or(types.map((t) => eb("t.object_id", "like", `${t}--%`))));
      if (!v.all)
        sel = sel.where((eb) => {
          const none = (op: "<" | ">") =>
            eb.not(
              eb.exists(
                eb
                  .selectFrom("taxii_objects as o")
                  .select("o.added_at")
                  .whereRef("o.collection_id", "=", "t.collection_id")
                  .whereRef("o.object_id", "=", "t.object_id")
                  .whereRef("o.version", op, "t.version"),
              ),
            );
          const alts = [];
          if (v.first) alts.push(none("<"));
          if (v.last) alts.push(none(">"));
          if (at.length > 0) {
            alts.push(
              eb(
                "t.version",
                "in",
                at.map((ms) => new Date(ms).toISOString()),
              ),
            );
            alts.push(eb.and([eb("t.version", "=", ""), eb("t.added_at", "in", at)]));
          }
          return eb.or(alts);
        });
      return sel
        .orderBy("t.added_at")
        .limit(limit + 1)
        .execute();
    };
    const out: TaxiiEntry[] = [];
    let cursor = q.after;
    for (;;) {
      const rows = await page(cursor);
      for (const r of rows) {
        cursor = Number(r.added_at);
        const object = JSON.parse(r.object) as Record<string, unknown>;
        const specVersion = typeof object.spec_version === "string" ? object.spec_version : "2.1";
        if (q.specVersions !== undefined && !q.specVersions.has(specVersion)) continue;
        if (out.length === limit) return { entries: out, more: true };
        out.push({
          addedAt: cursor,
          id: r.object_id,
          version: r.version !== "" ? r.version : new Date(cursor).toISOString(),
          specVersion,
          object,
        });
      }
      if (rows.length <= limit) return { entries: out, more: false };
    }
  }

  /** Is any version of this object in the collection? */
  async hasObject(collection: string, id: string): Promise<boolean> {
    const r = await this.db
      .selectFrom("taxii_objects")
      .select("added_at")
      .where("collection_id", "=", collection)
      .where("object_id", "=", id)
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
  }

  async issueToken(partner: string, by: string): Promise<{ id: string; token: string; view: TaxiiTokenView }> {
    const token = `taxii_${randomToken(32)}`;
    const row: Database["taxii_tokens"] = {
      id: `tt-${randomBytes(8).toString("hex")}`,
      token_hash: sha256Hex(token),
      partner,
      created_by: by,
      created_at: this.now(),
      revoked_at: null,
    };
    await this.db.insertInto("taxii_tokens").values(row).execute();
    return { id: row.id, token, view: tokenView(row) };
  }

  async listTokens(): Promise<TaxiiTokenView[]> {
    const rows = await this.db.selectFrom("taxii_tokens").selectAll().orderBy("created_at").orderBy("id").execute();
    return rows.map(tokenView);
  }

  /** Revokes a token; false if there is none with that id. Revoking twice keeps the first time. */
  async revokeToken(id: string): Promise<TaxiiTokenView | null> {
    await this.db
      .updateTable("taxii_tokens")
      .set({ revoked_at: this.now() })
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .execute();
    const r = await this.db.selectFrom("taxii_tokens").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? tokenView(r) : null;
  }

  /** The token's record, by the hash of the presented token. */
  async findToken(token: string): Promise<TaxiiTokenView | null> {
    const r = await this.db
      .selectFrom("taxii_tokens")
      .selectAll()
      .where("token_hash", "=", sha256Hex(token))
      .executeTakeFirst();
    return r ? tokenView(r) : null;
  }
}

function tokenView(r: Database["taxii_tokens"]): TaxiiTokenView {
  return {
    id: r.id,
    partner: r.partner,
    createdBy: r.created_by,
    createdAt: iso(r.created_at)!,
    revokedAt: iso(r.revoked_at),
  };
}
