/**
 * Retention of ciphertext (issue 19 part 6): rules keep a unit's or a label's messages, cables and document versions
 * (with their blobs) for a duration; `RetentionStore.run` (the leader runs it on a timer, `valise admin retention run`
 * by hand) deletes what is older, and audits each deletion as counts per rule (`retention.delete`: object
 * "<kind>:<count>", bytes the blob bytes freed; never ids or content).
 *
 * Which rule applies: an item matches the rule of its label (exact canonical label) and the rules of its units — a
 * conversation's unit and originating unit, a cable's originator and addressee units, a document shared with a unit.
 * When several match, the LONGEST keep wins (each rule is a legal minimum). An item no rule matches is kept for ever.
 *
 * The records archive (issue 14) keeps what the law wants, and the server cannot see what an archivist has exported
 * (the export runs on the archivist's machine). So an item of a unit that has an archive assigned is deleted only if
 * it is older than the unit's archive mark, which a records officer sets once an export up to then is verified
 * (`valise admin retention archived UNIT --through TIME`); with no mark nothing of that unit is deleted, and `run`
 * reports the unit as held.
 *
 * Blob bytes are deleted after the rows' transaction commits: a crash in between leaves unreferenced bytes (space,
 * never a dangling reference).
 */
import type { Kysely } from "kysely";
import { ValiseError, canonicalLabel, type AuditEvent } from "@valise/core";
import type { Database } from "./schema.js";
import type { AuditLog, AuditOperator } from "./audit-log.js";
import { newAuditId } from "./audit-log.js";
import type { BlobStore } from "./blob-store.js";

export type RetentionScope = "unit" | "label";

export interface RetentionRule {
  scope: RetentionScope;
  name: string;
  keepMs: number;
  setAt: number;
}

export interface RetentionCounts {
  messages: number;
  inbox: number;
  cables: number;
  documentVersions: number;
  documents: number;
  blobs: number;
  bytes: number;
}

export interface RetentionOutcome extends RetentionCounts {
  /** Per rule ("unit:NAME" / "label:LABEL"): what it deleted. */
  byRule: Record<string, RetentionCounts>;
  /** Units with an archive whose items past retention were kept: no archive mark, or newer than it. */
  held: { unit: string; archivedThrough: string | null }[];
}

const zero = (): RetentionCounts => ({
  messages: 0,
  inbox: 0,
  cables: 0,
  documentVersions: 0,
  documents: 0,
  blobs: 0,
  bytes: 0,
});

const CHUNK = 200;

export const SERVER_OPERATOR: AuditOperator = { actor: "server", source: "server", client: null };

export class RetentionStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly blobBytes: BlobStore,
    private readonly audit: AuditLog,
    private readonly now: () => number,
  ) {}

  async rules(): Promise<RetentionRule[]> {
    const rows = await this.db.selectFrom("retention_rules").selectAll().orderBy("scope").orderBy("name").execute();
    return rows.map((r) => ({
      scope: r.scope as RetentionScope,
      name: r.name,
      keepMs: Number(r.keep_ms),
      setAt: Number(r.set_at),
    }));
  }

  /** Sets (or replaces) a rule; audited (`retention.set`). A unit rule needs the unit to exist. */
  async setRule(scope: RetentionScope, name: string, keepMs: number, op: AuditOperator): Promise<RetentionRule> {
    if (!Number.isSafeInteger(keepMs) || keepMs < 1000)
      throw new ValiseError("bad_request", "a retention must keep items at least 1 s");
    const key = scope === "label" ? canonicalLabel(name) : name;
    if (scope === "unit") {
      const u = await this.db.selectFrom("units").select("name").where("name", "=", key).executeTakeFirst();
      if (!u) throw new ValiseError("not_found", `no unit ${key}`);
    }
    const at = this.now();
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("retention_rules").where("scope", "=", scope).where("name", "=", key).execute();
      await trx.insertInto("retention_rules").values({ scope, name: key, keep_ms: keepMs, set_at: at }).execute();
      await this.audit.appendEventsIn(trx, [this.event(op, "retention.set", `${scope}:${key}`, scope, key, 0)]);
    });
    return { scope, name: key, keepMs, setAt: at };
  }

  /** Removes a rule (its items are then kept for ever, unless another rule matches); audited. */
  async removeRule(scope: RetentionScope, name: string, op: AuditOperator): Promise<boolean> {
    const key = scope === "label" ? canonicalLabel(name) : name;
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .deleteFrom("retention_rules")
        .where("scope", "=", scope)
        .where("name", "=", key)
        .executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) return false;
      await this.audit.appendEventsIn(trx, [this.event(op, "retention.set", `${scope}:${key}`, scope, key, 0)]);
      return true;
    });
  }

  /** The unit's archive holds its records created before `through` (ms); audited. Never moves backwards. */
  async markArchived(unit: string, through: number, op: AuditOperator): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const cur = await trx
        .selectFrom("retention_archive_marks")
        .select("archived_through")
        .where("unit", "=", unit)
        .executeTakeFirst();
      if (cur && Number(cur.archived_through) >= through)
        throw new ValiseError(
          "conflict",
          `the archive of ${unit} is already marked through ${new Date(Number(cur.archived_through)).toISOString()}`,
        );
      await trx.deleteFrom("retention_archive_marks").where("unit", "=", unit).execute();
      await trx
        .insertInto("retention_archive_marks")
        .values({ unit, archived_through: through, set_at: this.now() })
        .execute();
      await this.audit.appendEventsIn(trx, [
        this.event(op, "retention.set", `archived:${new Date(through).toISOString()}`, "unit", unit, 0),
      ]);
      return through;
    });
  }

  async archiveMarks(): Promise<{ unit: string; archivedThrough: number }[]> {
    const rows = await this.db.selectFrom("retention_archive_marks").selectAll().orderBy("unit").execute();
    return rows.map((r) => ({ unit: r.unit, archivedThrough: Number(r.archived_through) }));
  }

  private event(
    op: AuditOperator,
    action: AuditEvent["action"],
    object: string,
    scope: RetentionScope | null,
    name: string | null,
    bytes: number,
  ): AuditEvent {
    return {
      id: newAuditId(),
      time: new Date(this.now()).toISOString(),
      actor: op.actor,
      device: op.device ?? null,
      source: op.source,
      client: op.client ?? null,
      action,
      object,
      target_device: null,
      label: scope === "label" ? name : null,
      unit: scope === "unit" ? name : null,
      bytes,
      canary: false,
      outcome: "ok",
    };
  }

  /** Deletes everything past its retention (see the file comment); audited per rule and kind, counts only. */
  async run(): Promise<RetentionOutcome> {
    const out: RetentionOutcome = { ...zero(), byRule: {}, held: [] };
    const rules = await this.rules();
    if (rules.length === 0) return out;
    const now = this.now();
    const byKey = new Map(rules.map((r) => [`${r.scope}:${r.name}`, r]));
    const archived = new Set((await this.db.selectFrom("archive_units").select("unit").execute()).map((r) => r.unit));
    const marks = new Map((await this.archiveMarks()).map((m) => [m.unit, m.archivedThrough]));
    const heldUnits = new Set<string>();
    /** The cutoff (delete items created before it) and the deciding rule of an item; undefined: keep. */
    const decide = (label: string, units: readonly (string | null)[]) => {
      let rule: RetentionRule | undefined;
      const consider = (r: RetentionRule | undefined) => {
        if (r && (!rule || r.keepMs > rule.keepMs)) rule = r;
      };
      consider(byKey.get(`label:${label}`));
      for (const u of units) if (u) consider(byKey.get(`unit:${u}`));
      if (!rule) return undefined;
      let cutoff = now - rule.keepMs;
      for (const u of units)
        if (u && archived.has(u)) {
          const m = marks.get(u) ?? -Infinity;
          if (m < cutoff) {
            heldUnits.add(u);
            cutoff = m;
          }
        }
      return { cutoff, rule: `${rule.scope}:${rule.name}` };
    };
    const tally = (rule: string) => (out.byRule[rule] ??= zero());
    /** Blob bytes freed per rule and kind, for the audit events. */
    const freed = new Map<string, number>();
    const free = (rule: string, kind: string, n: number) =>
      freed.set(`${rule}|${kind}`, (freed.get(`${rule}|${kind}`) ?? 0) + n);
    const minKeep = Math.min(...rules.map((r) => r.keepMs));
    const oldest = now - minKeep;

    // Messages and inbox entries (welcomes), per conversation.
    const convs = await this.db.selectFrom("conversations").select(["id", "label", "unit", "from_unit"]).execute();
    for (const c of convs) {
      const d = decide(c.label, [c.unit, c.from_unit]);
      if (!d || !(d.cutoff > -Infinity)) continue;
      const cutoff = d.cutoff;
      const [m, i] = await this.db.transaction().execute(async (trx) => {
        const m = await trx
          .deleteFrom("messages")
          .where("conversation_id", "=", c.id)
          .where("created_at", "<", cutoff)
          .executeTakeFirst();
        const i = await trx
          .deleteFrom("inbox")
          .where("conversation_id", "=", c.id)
          .where("created_at", "<", cutoff)
          .executeTakeFirst();
        return [Number(m.numDeletedRows), Number(i.numDeletedRows)];
      });
      const t = tally(d.rule);
      t.messages += m;
      t.inbox += i;
    }

    // Cables (immutable: one blob each), with their receipts.
    const cables = await this.db
      .selectFrom("cables")
      .select(["id", "label", "originator", "blob", "size", "created_at"])
      .where("created_at", "<", oldest)
      .execute();
    const doomedCables: { id: string; blob: string; size: number; rule: string }[] = [];
    for (let i = 0; i < cables.length; i += CHUNK) {
      const chunk = cables.slice(i, i + CHUNK);
      const addr = await this.db
        .selectFrom("cable_addressees")
        .select(["cable_id", "unit"])
        .where(
          "cable_id",
          "in",
          chunk.map((c) => c.id),
        )
        .execute();
      const units = new Map<string, string[]>();
      for (const a of addr) (units.get(a.cable_id) ?? units.set(a.cable_id, []).get(a.cable_id)!).push(a.unit);
      for (const c of chunk) {
        const d = decide(c.label, [c.originator, ...(units.get(c.id) ?? [])]);
        if (d && Number(c.created_at) < d.cutoff)
          doomedCables.push({ id: c.id, blob: c.blob, size: Number(c.size), rule: d.rule });
      }
    }
    for (let i = 0; i < doomedCables.length; i += CHUNK) {
      const chunk = doomedCables.slice(i, i + CHUNK);
      const ids = chunk.map((c) => c.id);
      await this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom("cable_device_receipts").where("cable_id", "in", ids).execute();
        await trx.deleteFrom("cable_addressees").where("cable_id", "in", ids).execute();
        await trx.deleteFrom("cables").where("id", "in", ids).execute();
        await trx
          .deleteFrom("blobs")
          .where(
            "id",
            "in",
            chunk.map((c) => c.blob),
          )
          .execute();
      });
      for (const c of chunk) {
        await this.blobBytes.delete(c.blob);
        const t = tally(c.rule);
        t.cables++;
        t.blobs++;
        t.bytes += c.size;
        free(c.rule, "cables", c.size);
      }
    }

    // Document versions (one blob each); a document left with no version goes too.
    const versions = await this.db
      .selectFrom("document_versions as v")
      .innerJoin("documents as d", "d.id", "v.document_id")
      .select(["v.document_id", "v.version", "v.blob", "v.size", "v.created_at", "d.label", "d.to_kind", "d.to_name"])
      .where("v.created_at", "<", oldest)
      .execute();
    const doomedVersions: { doc: string; version: number; blob: string; size: number; rule: string }[] = [];
    for (const v of versions) {
      const d = decide(v.label, [v.to_kind === "unit" ? v.to_name : null]);
      if (d && Number(v.created_at) < d.cutoff)
        doomedVersions.push({
          doc: v.document_id,
          version: Number(v.version),
          blob: v.blob,
          size: Number(v.size),
          rule: d.rule,
        });
    }
    for (let i = 0; i < doomedVersions.length; i += CHUNK) {
      const chunk = doomedVersions.slice(i, i + CHUNK);
      const docs = [...new Set(chunk.map((v) => v.doc))];
      const emptied = await this.db.transaction().execute(async (trx) => {
        for (const v of chunk)
          await trx
            .deleteFrom("document_versions")
            .where("document_id", "=", v.doc)
            .where("version", "=", v.version)
            .execute();
        await trx
          .deleteFrom("blobs")
          .where(
            "id",
            "in",
            chunk.map((v) => v.blob),
          )
          .execute();
        const left = new Set(
          (
            await trx.selectFrom("document_versions").select("document_id").where("document_id", "in", docs).execute()
          ).map((r) => r.document_id),
        );
        const gone = docs.filter((d) => !left.has(d));
        if (gone.length > 0) await trx.deleteFrom("documents").where("id", "in", gone).execute();
        return new Set(gone);
      });
      const counted = new Set<string>();
      for (const v of chunk) {
        await this.blobBytes.delete(v.blob);
        const t = tally(v.rule);
        t.documentVersions++;
        t.blobs++;
        t.bytes += v.size;
        free(v.rule, "documentVersions", v.size);
        if (emptied.has(v.doc) && !counted.has(v.doc)) {
          counted.add(v.doc);
          t.documents++;
        }
      }
    }

    // One audit event per rule and kind that deleted anything: counts and bytes, never which items.
    const events: AuditEvent[] = [];
    for (const [rule, t] of Object.entries(out.byRule)) {
      const [scope, ...rest] = rule.split(":");
      const name = rest.join(":");
      for (const kind of ["messages", "inbox", "cables", "documentVersions", "documents"] as const)
        if (t[kind] > 0) {
          const bytes = freed.get(`${rule}|${kind}`) ?? 0;
          events.push(
            this.event(SERVER_OPERATOR, "retention.delete", `${kind}:${t[kind]}`, scope as RetentionScope, name, bytes),
          );
        }
      for (const k of Object.keys(t) as (keyof RetentionCounts)[]) out[k] += t[k];
    }
    for (const [rule, t] of Object.entries(out.byRule))
      if (Object.values(t).every((n) => n === 0)) delete out.byRule[rule];
    if (events.length > 0) await this.audit.appendEvents(events);
    out.held = [...heldUnits].sort().map((u) => {
      const m = marks.get(u);
      return { unit: u, archivedThrough: m === undefined ? null : new Date(m).toISOString() };
    });
    return out;
  }
}
