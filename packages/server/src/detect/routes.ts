/**
 * Alerts for security officers (role `officer`; anyone else gets 403 `forbidden`, which is itself audited as a
 * denied `audit.read`, and the `audit-read-denied` rule notices repeated tries):
 *   GET  /v1/alerts?after=ID&limit=N&severity=S&since=ISO   stored alerts in id order (page with `after`); `severity`
 *        is a minimum (high → high and critical); `since` filters on the triggering event's time; with `learning`:
 *        `{until, trainDays, active, hours}` (baselines still learning until `until`: only critical rules alert)
 *   POST /v1/alerts/:id/ack                                   acknowledge (the first acknowledgement stays)
 * Both are audited as `audit.read` (object `alerts`, `alert:<id>`): reading alerts reads the audit log's findings.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ValiseError } from "@valise/core";
import { SEVERITIES, type Severity } from "@valise/detect";
import type { ServerContext } from "../http/context.js";
import { requireOfficerRequest } from "../http/need-to-know.js";
import type { AlertStore } from "./alert-store.js";
import type { DetectionLearning } from "./detector.js";
import { audit, auditOf } from "../audit/http.js";

export const MAX_ALERT_PAGE = 1000;
const QUERY_KEYS = new Set(["after", "limit", "severity", "since"]);

const requireOfficer = (ctx: ServerContext, req: FastifyRequest) => requireOfficerRequest(ctx, req, "alerts");

function intParam(v: unknown, name: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^(0|[1-9][0-9]{0,15})$/.test(v) || Number(v) > max)
    throw new ValiseError("bad_request", `${name} must be a decimal integer ≤ ${max}`);
  return Number(v);
}

export function alertRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  alerts: AlertStore,
  learning?: () => DetectionLearning,
): void {
  const getAlertsAudit = audit({ action: "audit.read", kind: "other", object: auditOf.fixed("alerts") });
  app.get("/v1/alerts", getAlertsAudit, async (req) => {
    await requireOfficer(ctx, req);
    const q = (req.query ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(q))
      if (!QUERY_KEYS.has(k)) throw new ValiseError("bad_request", `unknown query parameter ${JSON.stringify(k)}`);
    const after = intParam(q.after, "after", Number.MAX_SAFE_INTEGER);
    const limit = intParam(q.limit, "limit", MAX_ALERT_PAGE) ?? 100;
    if (limit < 1) throw new ValiseError("bad_request", `limit must be 1-${MAX_ALERT_PAGE}`);
    let minSeverity: Severity | undefined;
    if (q.severity !== undefined) {
      if (typeof q.severity !== "string" || !(SEVERITIES as readonly string[]).includes(q.severity))
        throw new ValiseError("bad_request", `severity must be one of ${SEVERITIES.join(", ")}`);
      minSeverity = q.severity as Severity;
    }
    let since: number | undefined;
    if (q.since !== undefined) {
      since = typeof q.since === "string" && q.since.length <= 40 ? Date.parse(q.since) : NaN;
      if (Number.isNaN(since)) throw new ValiseError("bad_request", "since must be an ISO 8601 time");
    }
    const list = await alerts.list({ after, limit, minSeverity, since });
    return learning ? { alerts: list, learning: learning() } : { alerts: list };
  });

  const postAlertsIdAckAudit = audit({
    action: "audit.read",
    kind: "other",
    object: (r) => `alert:${auditOf.param("id")(r) ?? ""}`,
  });
  app.post("/v1/alerts/:id/ack", postAlertsIdAckAudit, async (req) => {
    const by = await requireOfficer(ctx, req);
    const id = intParam((req.params as { id?: string }).id, "alert id", Number.MAX_SAFE_INTEGER)!;
    const a = await alerts.acknowledge(id, by, ctx.now());
    if (!a) throw new ValiseError("not_found", `no alert ${id}`);
    return a;
  });
}
