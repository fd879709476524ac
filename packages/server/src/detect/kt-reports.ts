/**
 * Key-transparency reports from clients (issue 12): a client that finds the server's directory answers disagreeing
 * with the witnessed log (`directory_mismatch`), meets a device the log does not hold (`unknown_device`), or finds
 * the log refused (`log_refused`) tells the security officers:
 *   POST /v1/kt/reports { kind, subject, detail } → 202 { id, duplicate }     any authenticated device
 * The report becomes an alert (rule `kt-report`, severity high) naming the reporting user and device, stored with
 * the report's audit event (`kt.report`) in one transaction and pushed to officers like detector alerts (alerts API,
 * WebSocket). The same report (reporter device, kind, subject, detail) within an hour raises no second alert: the
 * answer names the first one (`duplicate: true`); the report is audited either way.
 */
import type { FastifyInstance } from "fastify";
import type { Static } from "typebox";
import { ValiseError, isDeviceId, type AuditEvent } from "@valise/core";
import { KtReportBody as ReportBody } from "@valise/core/wire";
import { IncidentStore } from "../incidents/store.js";
import { type ServerContext, requireSession } from "../http/context.js";
import { audit, auditObject, clientOf } from "../audit/http.js";
import { auditItem, newAuditId } from "../storage/audit-log.js";
import { alertView, type AlertView } from "./alert-store.js";

export const KT_REPORT_KINDS = ["directory_mismatch", "unknown_device", "log_refused", "not_mine"] as const;
export const KT_REPORT_RULE = "kt-report";
/**
 * A user's "this device is not mine" (issue 16: `valise devices --not-mine DEVICE`, kind `not_mine`, subject the
 * device): someone enrolled a device under their name. A critical alert under its own rule, and an incident opened
 * with it at once (created by `valise`), so the officers start from an incident, not from one alert among many.
 */
export const NOT_MINE_RULE = "device-not-mine";
export const KT_REPORT_DEDUP_MS = 3600 * 1000;

/** Control characters are not kept in an alert's text: officers read it in terminals. */
function clean(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ");
}

export function ktReportRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.handle.db;

  app.post<{ Body: Static<typeof ReportBody> }>(
    "/v1/kt/reports",
    {
      ...audit({ action: "kt.report", write: true, inTransaction: true, fromRoute: true }),
      schema: { body: ReportBody },
    },
    async (req, reply) => {
      const s = requireSession(req);
      const { kind } = req.body;
      const subject = clean(req.body.subject);
      const detail = clean(req.body.detail);
      auditObject(req, { object: subject });
      const user = await ctx.store.directory.getUser(s.handle);
      if (!user) throw new ValiseError("unauthenticated", "user no longer exists");
      const notMine = kind === "not_mine";
      if (notMine && (!isDeviceId(subject) || subject === s.deviceId))
        throw new ValiseError("bad_request", "not_mine: the subject is the id of another device listed as yours");
      const rule = notMine ? NOT_MINE_RULE : KT_REPORT_RULE;
      const severity = notMine ? "critical" : "high";
      let reason =
        `key-transparency report from ${s.handle} (device ${s.deviceId}): ${kind} about ${subject}` +
        (detail ? `: ${detail}` : "");
      if (notMine) {
        const dev = await ctx.store.directory.getDevice(subject);
        const listed =
          dev === null
            ? "a device the server does not hold"
            : dev.handle === s.handle
              ? `listed as ${s.handle}'s${dev.revokedAt !== null ? " (revoked)" : ""}`
              : `listed as ${dev.handle}'s`;
        reason =
          `${s.handle} says device ${subject} (${listed}) is not theirs: someone may have enrolled a device under ` +
          `their name (reported from their device ${s.deviceId})` +
          (detail ? `: ${detail}` : "");
      }
      const now = ctx.now();
      const event: AuditEvent = {
        id: newAuditId(),
        time: new Date(now).toISOString(),
        actor: s.handle,
        device: s.deviceId,
        source: req.ip,
        client: clientOf(req.headers),
        action: "kt.report",
        object: subject,
        target_device: null,
        label: null,
        unit: user.units[0] ?? null,
        bytes: Number(req.headers["content-length"] ?? 0),
        canary: false,
        outcome: "ok",
      };
      let stored: { alert: AlertView; duplicate: boolean } | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          let frontier: Awaited<ReturnType<typeof ctx.store.audit.appendItemsIn>> | undefined;
          stored = await db.transaction().execute(async (trx) => {
            // PostgreSQL: one report at a time (and not while the detector stores alerts, which updates this row),
            // so the same report sent twice at once raises one alert and alert ids do not collide. SQLite
            // transactions are serialized already.
            if (!ctx.store.handle.sqlite)
              await trx.selectFrom("detect_state").select("id").where("id", "=", 1).forUpdate().execute();
            frontier = await ctx.store.audit.appendItemsIn(trx, [auditItem(event)]);
            const prior = await trx
              .selectFrom("alerts")
              .selectAll()
              .where("rule", "=", rule)
              .where("actor", "=", s.handle)
              .where("reason", "=", reason)
              .where("created_at", ">=", now - KT_REPORT_DEDUP_MS)
              .orderBy("id", "desc")
              .limit(1)
              .executeTakeFirst();
            if (prior) return { alert: alertView(prior), duplicate: true };
            const m = await trx
              .selectFrom("alerts")
              .select((eb) => eb.fn.max("id").as("m"))
              .executeTakeFirst();
            const row = await trx
              .insertInto("alerts")
              .values({
                id: Number(m?.m ?? 0) + 1,
                time: now,
                actor: s.handle,
                rule,
                severity,
                reason,
                events: JSON.stringify([event.id]),
                trigger_event: event.id,
                log_index: frontier.size - 1,
                created_at: now,
                acknowledged_by: null,
                acknowledged_at: null,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
            return { alert: alertView(row), duplicate: false };
          });
          ctx.store.audit.noteCommitted(frontier);
          break;
        } catch (e) {
          // Two writers took the same next alert id (PostgreSQL; the detector stores alerts too): try again.
          if (attempt >= 4 || e instanceof ValiseError) throw e;
        }
      }
      if (!stored.duplicate) ctx.fanout.publish([{ type: "alert", alert: stored.alert }]);
      ctx.detector?.notify();
      let incident: string | undefined;
      if (notMine && !stored.duplicate) {
        const inc = await new IncidentStore(db, ctx.store.audit, ctx.now).create({
          title: `Device ${subject} reported as not theirs by ${s.handle}`,
          alerts: [stored.alert.id],
          note: reason,
          createdBy: "valise",
        });
        incident = inc.id;
      }
      return reply
        .status(202)
        .send({ id: stored.alert.id, duplicate: stored.duplicate, ...(incident ? { incident } : {}) });
    },
  );
}
