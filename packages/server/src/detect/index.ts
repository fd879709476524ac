/** Online detection in the server: wiring for buildApp (see detector.ts). */
import type { FastifyInstance } from "fastify";
import type { Rule } from "@valise/detect";
import type { ServerContext } from "../http/context.js";
import { AlertStore } from "./alert-store.js";
import { Detector } from "./detector.js";
import { alertRoutes } from "./routes.js";
import { detectorRules } from "./rules.js";
import { WebhookSender, checkWebhookUrl } from "./webhooks.js";

export { AlertStore, type AlertView } from "./alert-store.js";
export { Detector, type DetectionLearning } from "./detector.js";
export { defaultRulesDir, detectorRules, loadRuleFiles } from "./rules.js";
export { WebhookSender, checkWebhookUrl } from "./webhooks.js";

export interface DetectOptions {
  /** The rule set; default: the rules shipped with @valise/detect plus `ruleFiles`. */
  rules?: Rule[];
  /** Extra rule files or directories (`valise serve --rules`), added to the defaults unless `noDefaultRules`. */
  ruleFiles?: readonly string[];
  noDefaultRules?: boolean;
  /** UTC days from the first audit event that only train the baselines (default 14); critical rules alert anyway. */
  trainDays?: number;
  /** URLs every alert is POSTed to as JSON. */
  webhooks?: readonly string[];
  webhookTimeoutMs?: number;
  webhookAttempts?: number;
  webhookBackoffMs?: number;
  intervalMs?: number;
  stateIntervalMs?: number;
}

/**
 * Checks the options (bad rule files or webhook URLs throw, naming the file or URL), registers the alert routes and
 * returns the detector, not yet started.
 */
export function setupDetection(app: FastifyInstance, ctx: ServerContext, o: DetectOptions): Detector {
  const rules = o.rules ?? detectorRules(o.ruleFiles ?? [], o.noDefaultRules ?? false);
  if (o.trainDays !== undefined && (!Number.isSafeInteger(o.trainDays) || o.trainDays < 0))
    throw new RangeError("detection train days must be a non-negative integer");
  const urls = (o.webhooks ?? []).map(checkWebhookUrl);
  const alerts = new AlertStore(ctx.store.handle.db, ctx.store.handle.sqlite);
  let detector: Detector | undefined = undefined;
  const webhooks = new WebhookSender({
    urls,
    ...(o.webhookTimeoutMs !== undefined ? { timeoutMs: o.webhookTimeoutMs } : {}),
    ...(o.webhookAttempts !== undefined ? { attempts: o.webhookAttempts } : {}),
    ...(o.webhookBackoffMs !== undefined ? { backoffMs: o.webhookBackoffMs } : {}),
    onOutcome: (outcome, url, detail) => {
      detector?.metrics.webhooks.inc({ outcome });
      if (outcome !== "ok") app.log.warn({ url, outcome, detail }, "alert webhook");
    },
  });
  detector = new Detector({
    audit: ctx.store.audit,
    alerts,
    rules,
    ...(o.trainDays !== undefined ? { trainDays: o.trainDays } : {}),
    now: ctx.now,
    ...(ctx.iocs ? { iocs: ctx.iocs } : {}),
    isOfficer: async (handle) => (await ctx.store.directory.getUser(handle))?.role === "officer",
    timeZones: () => ctx.store.directory.unitTimeZones(),
    publish: (stored) => ctx.fanout.publish(stored.map((alert) => ({ type: "alert", alert }))),
    webhooks,
    registry: ctx.metrics.registry,
    log: {
      info: (msg, data) => app.log.info(data ?? {}, msg),
      warn: (msg, data) => app.log.warn(data ?? {}, msg),
      error: (msg, data) => app.log.error(data ?? {}, msg),
    },
    ...(o.intervalMs !== undefined ? { intervalMs: o.intervalMs } : {}),
    ...(o.stateIntervalMs !== undefined ? { stateIntervalMs: o.stateIntervalMs } : {}),
  });
  const d = detector;
  alertRoutes(app, ctx, alerts, () => d.learning(ctx.now()));
  return detector;
}
