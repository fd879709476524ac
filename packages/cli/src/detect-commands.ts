/**
 * `valise detect`: offline replay of an audit export (or any JSONL of audit events) through the detection engine of
 * @valise/detect (DESIGN.md §1 T3). Streams the file line by line (multi-GB files work in bounded memory), tolerates
 * events up to --reorder-seconds out of order, and prints one alert per line.
 */
import { createReadStream } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { ValiseError } from "@valise/core";
import {
  DetectionEngine,
  ReorderBuffer,
  RuleError,
  parseEventLine,
  type Alert,
  type DetectEvent,
  type Rule,
} from "@valise/detect";
import { defaultRulesDir, loadRuleFiles } from "@valise/server";
import { parse, str, UsageError } from "./args.js";

export const DETECT_USAGE = `usage: valise detect --events FILE.jsonl [options]

Replays audit events (one JSON object per line: the export of valise audit export --jsonl, or the same fields with
time, actor, action required) through the detection rules and per-user baselines, and prints the alerts.
Events of the first --train-days days only train the baselines; alerts are for later events.
  --events FILE        JSONL file of events ("-" for standard input)
  --train-days N       days (from the first event's UTC day) that only train (default 14)
  --train-until ISO    alternatively: events before this time only train
  --rules DIR|FILE     extra rule files (*.json), repeatable; added to the default rules
  --no-default-rules   use only the --rules given
  --skip-bad           skip lines that are not valid events (counted on stderr) instead of stopping
  --reorder-seconds N  accept events up to N seconds out of time order (default 300); older ones are an error
  --json               one alert per line as JSON: {"time","actor","rule","severity","reason","events"}
Exit 0 when the replay completes (alerts or not), 1 on a bad line or rule (with the line number), 2 on usage.`;

function nonNegInt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new UsageError(`${name} must be a non-negative integer\n\n${DETECT_USAGE}`);
  return Number(v);
}

function alertLine(a: Alert, json: boolean): string {
  if (json)
    return `${JSON.stringify({
      time: a.time,
      actor: a.actor,
      rule: a.rule,
      severity: a.severity,
      reason: a.reason,
      events: a.events,
    })}\n`;
  return `${a.time}  ${a.severity.toUpperCase().padEnd(8)} ${a.rule}  ${a.reason}  [events: ${a.events.join(", ")}]\n`;
}

export async function detect(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      events: { type: "string" },
      "train-days": { type: "string" },
      "train-until": { type: "string" },
      rules: { type: "string", multiple: true },
      "no-default-rules": { type: "boolean" },
      "skip-bad": { type: "boolean" },
      "reorder-seconds": { type: "string" },
      json: { type: "boolean" },
    },
    DETECT_USAGE,
  );
  if (values.help) {
    console.log(DETECT_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}\n\n${DETECT_USAGE}`);
  const eventsPath = str(values.events, "--events FILE", DETECT_USAGE);
  const json = values.json === true;
  const trainDays = nonNegInt(values["train-days"], "--train-days", 14);
  let trainUntil: number | undefined;
  if (values["train-until"] !== undefined) {
    trainUntil = Date.parse(values["train-until"]);
    if (Number.isNaN(trainUntil)) throw new UsageError(`--train-until must be an ISO 8601 time\n\n${DETECT_USAGE}`);
  }
  const reorderMs = nonNegInt(values["reorder-seconds"], "--reorder-seconds", 300) * 1000;
  if (values["no-default-rules"] && !values.rules?.length)
    throw new UsageError(`--no-default-rules needs at least one --rules\n\n${DETECT_USAGE}`);
  let rules: Rule[];
  try {
    rules = loadRuleFiles([...(values["no-default-rules"] ? [] : [defaultRulesDir()]), ...(values.rules ?? [])]);
  } catch (e) {
    if (e instanceof RuleError) throw new ValiseError("bad_request", `bad rules: ${e.message}`);
    throw e;
  }
  const engine = new DetectionEngine({ rules, trainDays, ...(trainUntil !== undefined ? { trainUntil } : {}) });
  const buffer = new ReorderBuffer(reorderMs);
  const out = process.stdout;
  let pending = "";
  let alerts = 0;
  const emit = async (list: Alert[]): Promise<void> => {
    for (const a of list) {
      pending += alertLine(a, json);
      alerts++;
    }
    if (pending.length > 64 * 1024) {
      const chunk = pending;
      pending = "";
      if (!out.write(chunk)) await new Promise<void>((done) => out.once("drain", () => done()));
    }
  };
  const feed = async (es: DetectEvent[]): Promise<void> => {
    for (const e of es) await emit(engine.push(e));
  };

  const input = eventsPath === "-" ? process.stdin : createReadStream(resolve(eventsPath));
  const opened = new Promise<void>((ok, fail) => {
    if (eventsPath === "-") ok();
    else {
      input.once("open", () => ok());
      input.once("error", (e: Error) => fail(new ValiseError("not_found", `cannot read ${eventsPath}: ${e.message}`)));
    }
  });
  await opened;
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let events = 0;
  let skipped = 0;
  try {
    for await (const raw of lines) {
      lineNo++;
      const line = raw.trim();
      if (line.length === 0) continue;
      const r = parseEventLine(line);
      if (!r.ok) {
        if (values["skip-bad"]) {
          skipped++;
          if (skipped <= 10) process.stderr.write(`valise detect: skipping line ${lineNo}: ${r.reason}\n`);
          continue;
        }
        throw new ValiseError("bad_request", `${eventsPath} line ${lineNo}: ${r.reason} (use --skip-bad to skip)`);
      }
      const placed = buffer.push(r.event);
      if (!placed.ok) throw new ValiseError("bad_request", `${eventsPath} line ${lineNo}: ${placed.reason}`);
      events++;
      await feed(placed.ready);
    }
  } finally {
    lines.close();
    if ("destroy" in input && input !== process.stdin) input.destroy();
  }
  await feed(buffer.drain());
  await emit(engine.flush());
  if (pending) await new Promise<void>((done) => out.write(pending, () => done()));
  const tu = engine.trainUntil;
  process.stderr.write(
    `valise detect: ${events} events, ${alerts} alerts` +
      (tu !== null ? `, training until ${new Date(tu).toISOString()}` : "") +
      (skipped ? `, ${skipped} bad lines skipped` : "") +
      "\n",
  );
  return 0;
}
