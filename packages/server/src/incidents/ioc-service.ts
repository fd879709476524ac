/**
 * Allies both ways, the receiving side (issue 16, part 5): a TAXII 2.1 client that polls partners' collections
 * (`valise taxii partner add URL --token …`), imports their STIX 2.1 indicators (ioc.ts: IPv4/IPv6 address and
 * network patterns, ATT&CK references; bad objects refused with the id and the reason), and matches them
 *  - retroactively, against the stored audit log up to the detector's position at import (a sequential scan that
 *    reads only the `source` of each canonical leaf and parses the few that match), and
 *  - live, from that position on (the detector asks `indicators()` for every event it processes),
 * raising `ioc-match` alerts (severity high) with the matching events. Alerts go through the detector's store (one
 * writer; the same unique key keeps a replayed alert from being stored twice); with detection off, imports are
 * stored and reported but raise no alert.
 */
import { randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { ValiseError, parseAuditEvent, type AuditEvent } from "@valise/core";
import type { Alert } from "@valise/detect";
import type { Database } from "../storage/schema.js";
import { leafSource, sourceKeyAgrees, sourceRange, type AuditLog, type SourceRow } from "../storage/audit-log.js";
import type { NewAlert } from "../detect/alert-store.js";
import {
  IndicatorSet,
  MAX_BATCH_BYTES,
  MAX_BATCH_OBJECTS,
  importStixObjects,
  parseCidr,
  type ImportedIndicator,
  type MatchIndicator,
  type Refusal,
} from "./ioc.js";

export const IOC_RULE = "ioc-match";
/** The column check found audit entries whose indexed source column was edited (critical). */
export const INDEX_RULE = "audit-index-mismatch";
export const TAXII_MEDIA = "application/taxii+json;version=2.1";
const MAX_ALERT_EVENTS = 50;
const SCAN_CHUNK = 5000;
const LIVE_SUPPRESS_MS = 3600_000;
const MAX_PAGES_PER_POLL = 100;
const POLL_TIMEOUT_MS = 30_000;

/** What the detector offers the indicator service: its position, and a way to store alerts. */
export interface AlertSink {
  readonly position: number;
  addExternal(alerts: NewAlert[]): void;
}

export interface PartnerView {
  id: string;
  name: string;
  url: string;
  createdBy: string;
  createdAt: string;
  addedAfter: string | null;
  lastPollAt: string | null;
  lastError: string | null;
  imported: number;
  refused: number;
  lastRefusals: Refusal[];
}

export interface ImportReport {
  /** Indicators stored (new or a new version). */
  imported: number;
  /** Indicators already held in this version. */
  unchanged: number;
  /** Revoked by the partner: removed. */
  revoked: number;
  refused: Refusal[];
  skipped: number;
  /** Retroactive search of the stored audit log: entries read, time taken, matches per actor. */
  retro: RetroReport;
}

export interface RetroReport {
  scanned: number;
  /** Present when the audit log was pruned: entries below this index were exported and deleted, not searched. */
  prunedBefore?: number;
  ms: number;
  matches: { actor: string; events: number; indicators: string[]; first: string; last: string }[];
  /** Alerts handed to the detector (0 with detection off). */
  alerts: number;
  /** Candidates of the index whose column disagreed with their leaf (matched on the leaf). */
  indexMismatches?: number;
  /** The column check of the searched entries: "scheduled" (in the background after the search) or "off". */
  indexCheck?: "scheduled" | "off";
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

function partnerView(r: Database["taxii_partners"]): PartnerView {
  let lastRefusals: Refusal[] = [];
  try {
    lastRefusals = JSON.parse(r.last_refusals) as Refusal[];
  } catch {
    /* stored by us */
  }
  return {
    id: r.id,
    name: r.name,
    url: r.url,
    createdBy: r.created_by,
    createdAt: iso(r.created_at)!,
    addedAfter: r.added_after,
    lastPollAt: iso(r.last_poll_at),
    lastError: r.last_error,
    imported: Number(r.imported),
    refused: Number(r.refused),
    lastRefusals,
  };
}

/** A partner's collection URL: http(s), ending in `/` (TAXII URLs do). */
export function checkCollectionUrl(u: string): string {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new ValiseError("bad_request", `${JSON.stringify(u.slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new ValiseError("bad_request", "a partner's collection URL must be https:// (or http:// for a test)");
  if (url.username || url.password) throw new ValiseError("bad_request", "no credentials in the URL: use --token");
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  if (url.search || url.hash) throw new ValiseError("bad_request", "a collection URL has no query or fragment");
  return url.toString();
}

/** The reason text of an indicator alert. */
function reasonOf(
  actor: string,
  events: AuditEvent[],
  total: number,
  inds: MatchIndicator[],
  how: "retroactive" | "live",
): string {
  const sources = [...new Set(events.map((e) => e.source))];
  const techniques = [...new Set(inds.flatMap((i) => i.techniques))].sort();
  const names = inds
    .slice(0, 5)
    .map((i) => `"${i.name}" (${i.networks.map((n) => n.text).join(", ")}) from ${i.partner}`)
    .join("; ");
  const first = events[0]!.time;
  const last = events[events.length - 1]!.time;
  return (
    `${total} audited request(s) of ${actor} from ${sources.slice(0, 5).join(", ")}` +
    (sources.length > 5 ? ` and ${sources.length - 5} more addresses` : "") +
    (total > 1 ? ` between ${first} and ${last}` : ` at ${first}`) +
    ` match allied indicator(s) ${names}` +
    (inds.length > 5 ? ` and ${inds.length - 5} more` : "") +
    (techniques.length ? ` [ATT&CK ${techniques.join(", ")}]` : "") +
    (how === "retroactive" ? " (found searching the stored audit log)" : "")
  );
}

export { leafSource };

type Groups = Map<string, { events: AuditEvent[]; indexes: number[]; inds: Set<MatchIndicator> }>;
export interface RetroScanResult {
  /** Entries searched (the range below `to`, from the prune point). */
  scanned: number;
  /** The log's prune point (0: nothing pruned); entries below it were not searched. */
  prunedBefore: number;
  groups: Groups;
  counts: Map<MatchIndicator, number>;
  /** Leaves read (the index's candidates, or every entry for the leaf-by-leaf search). */
  read: number;
  /** Candidates whose `source_key` column did not match their leaf (the leaf decided). */
  mismatches: number[];
}

/** Adds a leaf's matches at `index` to the groups (only before an indicator's live matching starts). */
function addMatch(
  groups: Groups,
  counts: Map<MatchIndicator, number>,
  set: IndicatorSet,
  e: AuditEvent,
  index: number,
) {
  const hits = set.match(e.source, Date.parse(e.time)).filter((h) => index < h.fromIndex);
  if (hits.length === 0) return;
  for (const h of hits) counts.set(h, (counts.get(h) ?? 0) + 1);
  let g = groups.get(e.actor);
  if (!g) groups.set(e.actor, (g = { events: [], indexes: [], inds: new Set() }));
  g.events.push(e);
  g.indexes.push(index);
  for (const h of hits) g.inds.add(h);
}

/**
 * Matches indicators against audit entries [from, to): one group of events per actor (several indicators may share
 * it). Each network of the set is one range scan of the `source_key` index (migration 024); the candidate leaves
 * are parsed and matched on the source their leaf holds, so a column edited to point INTO a network matches
 * nothing (counted in `mismatches`). A column edited to point OUT of it is not seen here: the column check
 * (`checkSourceKeys`, run after every search by `IocService`) finds it. Entries below the log's prune point
 * (exported segments, deleted by retention) are not here to search: the scan starts at that point and says so.
 */
export async function retroScan(
  audit: Pick<AuditLog, "entriesBySource" | "pruned">,
  set: IndicatorSet,
  from: number,
  to: number,
): Promise<RetroScanResult> {
  const groups: Groups = new Map();
  const counts = new Map<MatchIndicator, number>();
  const prunedBefore = (await audit.pruned()).before;
  const start = Math.max(from, prunedBefore);
  const rows = new Map<number, SourceRow>();
  if (start < to)
    for (const c of set.networks()) {
      const { lo, hi } = sourceRange(c);
      for (const r of await audit.entriesBySource(lo, hi, start, to)) rows.set(r.index, r);
    }
  const mismatches: number[] = [];
  for (const r of [...rows.values()].sort((a, b) => a.index - b.index)) {
    if (!sourceKeyAgrees(r.data, r.key)) mismatches.push(r.index);
    const p = parseAuditEvent(r.data);
    if (p.ok) addMatch(groups, counts, set, p.event, r.index);
  }
  return { scanned: Math.max(0, to - start), prunedBefore, groups, counts, read: rows.size, mismatches };
}

/**
 * The search without the index: reads every leaf of [from, to) in chunks and matches its `source` (cut out of the
 * bytes; only matching leaves are parsed). What the search was before migration 024; the benchmark's baseline.
 */
export async function retroScanLeaves(
  audit: Pick<AuditLog, "scanEntries" | "pruned">,
  set: IndicatorSet,
  from: number,
  to: number,
): Promise<RetroScanResult> {
  const groups: Groups = new Map();
  const counts = new Map<MatchIndicator, number>();
  const prunedBefore = (await audit.pruned()).before;
  let scanned = 0;
  for (let at = Math.max(from, prunedBefore); at < to;) {
    const entries = await audit.scanEntries(at, Math.min(SCAN_CHUNK, to - at));
    if (entries.length === 0) break;
    for (let k = 0; k < entries.length; k++) {
      const src = leafSource(entries[k]!);
      if (src === null || src === "" || set.lookup(src).length === 0) continue;
      const p = parseAuditEvent(entries[k]!);
      if (p.ok) addMatch(groups, counts, set, p.event, at + k);
    }
    scanned += entries.length;
    at += entries.length;
  }
  return { scanned, prunedBefore, groups, counts, read: scanned, mismatches: [] };
}

/**
 * The column check: every entry of [from, to) whose `source_key` column is not what its leaf's source gives (an
 * operator or intruder edited the database to hide entries from the indexed search). Reads every leaf.
 */
export async function checkSourceKeys(
  audit: Pick<AuditLog, "entriesWithSourceKey" | "pruned">,
  from: number,
  to: number,
): Promise<{ checked: number; mismatches: SourceRow[] }> {
  const mismatches: SourceRow[] = [];
  let checked = 0;
  for (let at = Math.max(from, (await audit.pruned()).before); at < to;) {
    const rows = await audit.entriesWithSourceKey(at, Math.min(SCAN_CHUNK, to - at));
    if (rows.length === 0) break;
    for (const r of rows) if (!sourceKeyAgrees(r.data, r.key)) mismatches.push(r);
    checked += rows.length;
    at = rows[rows.length - 1]!.index + 1;
  }
  return { checked, mismatches };
}

/** Alerts for matching groups: one per actor. */
function groupAlerts(groups: Groups, how: "retroactive" | "column check"): NewAlert[] {
  const alerts: NewAlert[] = [];
  for (const [actor, g] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const shown = g.events.slice(-MAX_ALERT_EVENTS);
    alerts.push({
      alert: {
        time: g.events[g.events.length - 1]!.time,
        actor,
        rule: IOC_RULE,
        severity: "high",
        reason:
          reasonOf(actor, g.events, g.events.length, [...g.inds], "retroactive") +
          (how === "column check"
            ? " — these entries' indexed source column had been edited in the database to hide them from the search"
            : ""),
        events: shown.map((e) => e.id),
      },
      logIndex: g.indexes[g.indexes.length - 1]!,
    });
  }
  return alerts;
}

export class IocService {
  private set = new IndicatorSet();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<unknown> = Promise.resolve();
  private readonly suppress = new Map<string, number>();
  private loaded = false;
  private checking: Promise<unknown> = Promise.resolve();
  private checkQueued: number | null = null;
  /** Run the column check after every retroactive search (off only in benchmarks that time the search alone). */
  autoCheck = true;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    private readonly sink: () => AlertSink | undefined,
    private readonly log?: { warn(msg: string, data?: Record<string, unknown>): void },
  ) {}

  /** Loads the stored indicators into the matcher (once; again after a change). */
  async load(): Promise<void> {
    const rows = await this.db.selectFrom("ioc_indicators").selectAll().execute();
    const partners = new Map(
      (await this.db.selectFrom("taxii_partners").select(["id", "name"]).execute()).map((p) => [p.id, p.name]),
    );
    const set = new IndicatorSet();
    for (const r of rows) {
      const nets = (JSON.parse(r.networks) as string[]).flatMap((t) => {
        const c = parseCidr(t, t.includes(":") ? 6 : 4);
        return typeof c === "string" ? [] : [c];
      });
      set.add({
        id: r.id,
        name: r.name,
        partner: partners.get(r.partner) ?? r.partner,
        networks: nets,
        techniques: JSON.parse(r.techniques) as string[],
        validFrom: Number(r.valid_from),
        validUntil: r.valid_until === null ? null : Number(r.valid_until),
        fromIndex: Number(r.from_index),
      });
    }
    this.set = set;
    this.loaded = true;
  }

  /** The matcher (for the detector's live matching). */
  indicators(): IndicatorSet {
    return this.set;
  }

  get ready(): boolean {
    return this.loaded;
  }

  /**
   * Live matching of one event the detector just processed at `logIndex`: an alert for the first match of an
   * indicator by an actor, then quiet for an hour for that pair (the audit log keeps the rest).
   */
  liveMatch(e: AuditEvent, logIndex: number): Alert | null {
    if (this.set.size === 0 || e.source === "") return null;
    const t = Date.parse(e.time);
    const hits = this.set.match(e.source, t).filter((i) => logIndex >= i.fromIndex);
    if (hits.length === 0) return null;
    const fresh = hits.filter((i) => (this.suppress.get(`${i.id}|${e.actor}`) ?? 0) <= t);
    if (fresh.length === 0) return null;
    for (const i of fresh) this.suppress.set(`${i.id}|${e.actor}`, t + LIVE_SUPPRESS_MS);
    if (this.suppress.size > 10_000) for (const [k, until] of this.suppress) if (until <= t) this.suppress.delete(k);
    return {
      time: e.time,
      actor: e.actor,
      rule: IOC_RULE,
      severity: "high",
      reason: reasonOf(e.actor, [e], 1, fresh, "live"),
      events: [e.id],
    };
  }

  /**
   * Imports a batch of STIX objects from a partner (or a file: `partner` null, `by` the officer), stores the
   * indicators, adds them to the live matcher and searches the stored audit log for them.
   */
  async importObjects(objects: readonly unknown[], partner: { id: string; name: string }): Promise<ImportReport> {
    if (objects.length > MAX_BATCH_OBJECTS)
      return {
        imported: 0,
        unchanged: 0,
        revoked: 0,
        refused: [{ id: "(batch)", reason: `${objects.length} objects: more than ${MAX_BATCH_OBJECTS} at once` }],
        skipped: 0,
        retro: { scanned: 0, ms: 0, matches: [], alerts: 0 },
      };
    if (!this.loaded) await this.load();
    const r = importStixObjects(objects);
    let unchanged = 0;
    let revoked = 0;
    const fresh: ImportedIndicator[] = [];
    for (const ind of r.indicators) {
      const old = await this.db
        .selectFrom("ioc_indicators")
        .select(["version", "partner"])
        .where("id", "=", ind.id)
        .executeTakeFirst();
      if (old && old.partner !== partner.id) {
        r.refused.push({ id: ind.id, reason: "an indicator with this id came from another partner" });
        continue;
      }
      if (ind.revoked) {
        if (old) {
          await this.db.deleteFrom("ioc_indicators").where("id", "=", ind.id).execute();
          revoked++;
        }
        continue;
      }
      if (old && old.version >= ind.version) {
        unchanged++;
        continue;
      }
      fresh.push(ind);
    }
    // The detector's position now: events before it were processed without these indicators (searched below),
    // events from it on are matched live. Taken with no await between it and the matcher's update.
    const sink = this.sink();
    const size = sink ? undefined : await this.audit.size();
    const rows: Database["ioc_indicators"][] = [];
    const added: MatchIndicator[] = [];
    const fromIndex = sink ? sink.position : size!;
    for (const ind of fresh) {
      rows.push({
        id: ind.id,
        partner: partner.id,
        version: ind.version,
        name: ind.name,
        pattern: ind.pattern,
        networks: JSON.stringify(ind.networks.map((n) => n.text)),
        techniques: JSON.stringify(ind.techniques),
        valid_from: ind.validFrom,
        valid_until: ind.validUntil,
        tlp: ind.tlp,
        from_index: fromIndex,
        imported_at: this.now(),
        retro_matches: 0,
      });
      const m: MatchIndicator = {
        id: ind.id,
        name: ind.name,
        partner: partner.name,
        networks: ind.networks,
        techniques: ind.techniques,
        validFrom: ind.validFrom,
        validUntil: ind.validUntil,
        fromIndex,
      };
      added.push(m);
      this.set.add(m);
    }
    for (const row of rows) {
      await this.db.deleteFrom("ioc_indicators").where("id", "=", row.id).execute();
      await this.db.insertInto("ioc_indicators").values(row).execute();
    }
    if (revoked > 0 || rows.length > 0) await this.load();
    const retro = await this.retro(added, fromIndex);
    return { imported: rows.length, unchanged, revoked, refused: r.refused, skipped: r.skipped, retro };
  }

  /**
   * Searches audit entries [0, to) for these indicators (by the `source_key` index); hands one alert per actor to the
   * detector. Then the column check runs in the background over the same entries (`checkSourceIndex`), so that rows
   * whose indexed column was edited to hide them are found and alerted after all.
   */
  async retro(inds: readonly MatchIndicator[], to: number): Promise<RetroReport> {
    const t0 = performance.now();
    if (inds.length === 0) return { scanned: 0, ms: 0, matches: [], alerts: 0 };
    const set = new IndicatorSet(inds);
    const { scanned, prunedBefore, groups, counts, mismatches } = await retroScan(this.audit, set, 0, to);
    const matches: RetroReport["matches"] = [...groups]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([actor, g]) => ({
        actor,
        events: g.events.length,
        indicators: [...g.inds].map((i) => i.id),
        first: g.events[0]!.time,
        last: g.events[g.events.length - 1]!.time,
      }));
    const alerts = groupAlerts(groups, "retroactive");
    for (const i of inds) {
      const n = counts.get(i) ?? 0;
      if (n > 0) await this.db.updateTable("ioc_indicators").set({ retro_matches: n }).where("id", "=", i.id).execute();
    }
    const sink = this.sink();
    if (sink && alerts.length > 0) sink.addExternal(alerts);
    if (this.autoCheck) this.scheduleCheck(to);
    return {
      scanned,
      ...(prunedBefore > 0 ? { prunedBefore } : {}),
      ms: Math.round(performance.now() - t0),
      matches,
      alerts: sink ? alerts.length : 0,
      ...(mismatches.length > 0 ? { indexMismatches: mismatches.length } : {}),
      indexCheck: this.autoCheck ? "scheduled" : "off",
    };
  }

  /** Runs the column check over [0, to) after the ones already queued (one at a time; a queued one covers more). */
  private scheduleCheck(to: number): void {
    if (this.checkQueued !== null) {
      this.checkQueued = Math.max(this.checkQueued, to);
      return;
    }
    this.checkQueued = to;
    this.checking = this.checking
      .then(async () => {
        const upTo = this.checkQueued!;
        this.checkQueued = null;
        await this.checkSourceIndex(upTo);
      })
      .catch((e: unknown) => this.log?.warn("audit source index check failed", { err: String(e) }));
  }

  /** Resolves when the background column checks queued so far are done (tests, shutdown). */
  async checksDone(): Promise<void> {
    await this.checking;
  }

  /**
   * The column check (migration 024's `source_key` is derived data): reads every audit leaf of [0, to) and compares
   * its source with the indexed column. Edited rows raise one critical `audit-index-mismatch` alert per actor
   * naming them, and are matched on their leaf against every indicator (retroactive part only: from an indicator's
   * `from_index` on, the detector matched the leaves live), raising the `ioc-match` alerts the edit had hidden.
   */
  async checkSourceIndex(to?: number): Promise<{ checked: number; mismatches: number[]; alerts: number }> {
    if (!this.loaded) await this.load();
    const upTo = to ?? (await this.audit.size());
    const { checked, mismatches } = await checkSourceKeys(this.audit, 0, upTo);
    if (mismatches.length === 0) return { checked, mismatches: [], alerts: 0 };
    const byActor: Groups = new Map();
    const groups: Groups = new Map();
    const counts = new Map<MatchIndicator, number>();
    for (const r of mismatches) {
      const p = parseAuditEvent(r.data);
      if (!p.ok) continue;
      let g = byActor.get(p.event.actor);
      if (!g) byActor.set(p.event.actor, (g = { events: [], indexes: [], inds: new Set() }));
      g.events.push(p.event);
      g.indexes.push(r.index);
      addMatch(groups, counts, this.set, p.event, r.index);
    }
    const alerts: NewAlert[] = [...byActor].map(([actor, g]) => ({
      alert: {
        time: g.events[g.events.length - 1]!.time,
        actor,
        rule: INDEX_RULE,
        severity: "critical",
        reason:
          `the indexed source column of ${g.events.length} audit entr${g.events.length === 1 ? "y" : "ies"} of ` +
          `${actor} (log index ${g.indexes.slice(0, 10).join(", ")}${g.indexes.length > 10 ? ", …" : ""}) no longer ` +
          "says what the hashed entries say: the database was edited outside Valise (the entries themselves are " +
          "intact; valise audit verify checks them against the signed log)",
        events: g.events.slice(-MAX_ALERT_EVENTS).map((e) => e.id),
      },
      logIndex: g.indexes[g.indexes.length - 1]!,
    }));
    alerts.push(...groupAlerts(groups, "column check"));
    this.log?.warn("audit source index: edited rows found", { count: mismatches.length });
    const sink = this.sink();
    if (sink) sink.addExternal(alerts);
    return { checked, mismatches: mismatches.map((r) => r.index), alerts: sink ? alerts.length : 0 };
  }

  async listIndicators(): Promise<Database["ioc_indicators"][]> {
    return this.db.selectFrom("ioc_indicators").selectAll().orderBy("imported_at").orderBy("id").execute();
  }

  // --- partners ---

  async addPartner(p: { name: string; url: string; token: string; by: string }): Promise<PartnerView> {
    const row: Database["taxii_partners"] = {
      id: `tp-${randomBytes(8).toString("hex")}`,
      name: p.name,
      url: checkCollectionUrl(p.url),
      token: p.token,
      created_by: p.by,
      created_at: this.now(),
      added_after: null,
      last_poll_at: null,
      last_error: null,
      imported: 0,
      refused: 0,
      last_refusals: "[]",
    };
    await this.db.insertInto("taxii_partners").values(row).execute();
    return partnerView(row);
  }

  async listPartners(): Promise<PartnerView[]> {
    const rows = await this.db.selectFrom("taxii_partners").selectAll().orderBy("created_at").orderBy("id").execute();
    return rows.map(partnerView);
  }

  /** Removes a partner and the indicators that came only from it. */
  async removePartner(id: string): Promise<PartnerView | null> {
    const r = await this.db.selectFrom("taxii_partners").selectAll().where("id", "=", id).executeTakeFirst();
    if (!r) return null;
    await this.db.deleteFrom("ioc_indicators").where("partner", "=", id).execute();
    await this.db.deleteFrom("taxii_partners").where("id", "=", id).execute();
    await this.load();
    return partnerView(r);
  }

  /**
   * Polls one partner's collection: GET objects/ with added_after (the date added of the last object received),
   * following `next` while `more`; each page is imported (and searched for) as it comes. A page over
   * MAX_BATCH_BYTES, not TAXII JSON, or an HTTP error stops the poll and is recorded as the partner's last error.
   */
  async poll(id: string): Promise<PartnerView & { report: Omit<ImportReport, "retro"> & { retro: RetroReport[] } }> {
    const r = await this.db.selectFrom("taxii_partners").selectAll().where("id", "=", id).executeTakeFirst();
    if (!r) throw new ValiseError("not_found", "no such partner");
    const total = {
      imported: 0,
      unchanged: 0,
      revoked: 0,
      refused: [] as Refusal[],
      skipped: 0,
      retro: [] as RetroReport[],
    };
    let addedAfter = r.added_after;
    let error: string | null = null;
    let next: string | null = null;
    // All pages first, then one import: an `indicates` relationship may come on another page than its indicator,
    // and one retroactive search finds everything an actor did from all the new indicators' networks (one alert).
    const objects: unknown[] = [];
    try {
      for (let page = 0; page < MAX_PAGES_PER_POLL && objects.length < MAX_BATCH_OBJECTS; page++) {
        const u = new URL("objects/", r.url);
        // The same added_after for every page of this poll (TAXII 2.1: `next` continues that query).
        if (r.added_after) u.searchParams.set("added_after", r.added_after);
        if (next !== null) u.searchParams.set("next", next);
        const res = await fetch(u, {
          headers: { accept: TAXII_MEDIA, authorization: `Bearer ${r.token}` },
          signal: AbortSignal.timeout(POLL_TIMEOUT_MS),
          redirect: "error",
        });
        const body = await readCapped(res);
        if (!res.ok) throw new Error(`HTTP ${res.status} from ${u.origin}${u.pathname}: ${body.slice(0, 200)}`);
        const ct = res.headers.get("content-type") ?? "";
        if (!/^application\/taxii\+json/i.test(ct)) throw new Error(`answer is ${ct || "untyped"}, not TAXII JSON`);
        let env: unknown;
        try {
          env = JSON.parse(body);
        } catch {
          throw new Error("answer is not JSON");
        }
        if (typeof env !== "object" || env === null || Array.isArray(env)) throw new Error("not a TAXII envelope");
        const e = env as { objects?: unknown; more?: unknown; next?: unknown };
        if (e.objects !== undefined && !Array.isArray(e.objects)) throw new Error("envelope objects is not a list");
        objects.push(...((e.objects as unknown[] | undefined) ?? []));
        const last = res.headers.get("x-taxii-date-added-last");
        if (last && /^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/.test(last)) addedAfter = last;
        if (e.more === true && typeof e.next === "string" && e.next.length > 0 && e.next.length < 200) next = e.next;
        else break;
      }
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      if (error.includes("over the limit")) total.refused.push({ id: "(page)", reason: error });
      this.log?.warn("taxii partner poll failed", { partner: r.name, error });
    }
    if (objects.length > 0) {
      const rep = await this.importObjects(objects.slice(0, MAX_BATCH_OBJECTS), { id: r.id, name: r.name });
      total.imported += rep.imported;
      total.unchanged += rep.unchanged;
      total.revoked += rep.revoked;
      total.skipped += rep.skipped;
      total.refused.push(...rep.refused);
      total.retro.push(rep.retro);
    }
    await this.db
      .updateTable("taxii_partners")
      .set({
        added_after: addedAfter,
        last_poll_at: this.now(),
        last_error: error,
        imported: Number(r.imported) + total.imported,
        refused: Number(r.refused) + total.refused.length,
        last_refusals: JSON.stringify(total.refused.slice(0, 100)),
      })
      .where("id", "=", id)
      .execute();
    const after = await this.db.selectFrom("taxii_partners").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
    return { ...partnerView(after), report: total };
  }

  /** Polls every partner now, one after the other (also what the timer does). */
  pollAll(): Promise<unknown> {
    this.polling = this.polling.then(async () => {
      for (const p of await this.listPartners())
        await this.poll(p.id).catch((e: unknown) => this.log?.warn("taxii poll", { err: String(e) }));
    });
    return this.polling;
  }

  /** Polls every `intervalMs` (unref'd timer). */
  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.pollAll(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling.catch(() => undefined);
    await this.checking;
  }
}

/** The body as text, refusing more than MAX_BATCH_BYTES (declared or streamed). */
async function readCapped(res: Response): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_BATCH_BYTES) {
    await res.body?.cancel();
    throw new Error(`answer of ${declared} bytes is over the limit of ${MAX_BATCH_BYTES}`);
  }
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += c.byteLength;
    if (n > MAX_BATCH_BYTES) {
      await res.body.cancel().catch(() => undefined);
      throw new Error(`answer of more than ${MAX_BATCH_BYTES} bytes is over the limit`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString("utf8");
}
