/**
 * `valise alerts`: security officers read the server's detection alerts (DESIGN.md §1 T3) with their own device's
 * session, acknowledge them, and with --follow watch new ones arrive over the WebSocket push until Ctrl-C.
 */
import { resolve } from "node:path";
import { ValiseClient, type ServerAlert } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { nodeWebSocket } from "@valise/client/node/websocket";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { installNodeCrypto } from "./crypto.js";

export const ALERTS_USAGE = `usage: valise alerts --profile DIR [--follow] [--since ISO] [--severity S] [--json]
       valise alerts ack ID --profile DIR [--json]

For security officers (role officer; anyone else is refused, and the refusal is itself audited). Lists the alerts
the server's detection engine raised over the audit log, oldest first: time of the triggering event, severity,
rule, the user, the reason in plain words and the audit event ids behind it. While detection is still learning its
baselines (the first training days after the first audited event), a line "detection is learning until DATE" comes
first (on stderr with --json): until then only critical rules (canaries) alert.
  --profile DIR    the officer's enrolled device profile (its session is used)
  --since ISO      only alerts whose triggering event is at or after this time
  --severity S     only alerts of at least this severity (low, medium, high, critical)
  --follow         after the list, print new alerts as the server pushes them (WebSocket), until Ctrl-C
  --json           one alert per line as JSON: {"id","time","actor","rule","severity","reason","events",
                   "createdAt","acknowledgedBy","acknowledgedAt"}
  ack ID           acknowledge alert ID (the first acknowledgement is kept)`;

const SEVERITIES = ["low", "medium", "high", "critical"] as const;
type Severity = (typeof SEVERITIES)[number];
const PAGE = 1000;
/** With --follow, the list is also re-read this often: a backstop for pushes lost while the socket was down. */
const FOLLOW_POLL_MS = 30_000;

function line(a: ServerAlert, json: boolean): string {
  if (json) {
    const { id, time, actor, rule, severity, reason, events, createdAt, acknowledgedBy, acknowledgedAt } = a;
    const o = { id, time, actor, rule, severity, reason, events, createdAt, acknowledgedBy, acknowledgedAt };
    return `${JSON.stringify(o)}\n`;
  }
  const ack = a.acknowledgedBy ? `  (acknowledged by ${a.acknowledgedBy} ${a.acknowledgedAt ?? ""})` : "";
  return (
    `#${a.id}  ${a.time}  ${a.severity.toUpperCase().padEnd(8)} ${a.rule}  ${a.actor}: ${a.reason}` +
    `  [events: ${a.events.join(", ")}]${ack}\n`
  );
}

export async function alerts(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      profile: { type: "string" },
      follow: { type: "boolean" },
      since: { type: "string" },
      severity: { type: "string" },
      json: { type: "boolean" },
    },
    ALERTS_USAGE,
  );
  if (values.help) {
    console.log(ALERTS_USAGE);
    return 0;
  }
  const profile = str(values.profile, "--profile DIR", ALERTS_USAGE);
  const json = values.json === true;
  const [sub, arg, ...extra] = positionals;
  if (sub !== undefined && sub !== "ack") throw new UsageError(`unknown alerts command ${sub}\n\n${ALERTS_USAGE}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}\n\n${ALERTS_USAGE}`);
  if (values.since !== undefined && Number.isNaN(Date.parse(values.since)))
    throw new UsageError(`--since must be an ISO 8601 time\n\n${ALERTS_USAGE}`);
  const severity = values.severity as Severity | undefined;
  if (severity !== undefined && !SEVERITIES.includes(severity))
    throw new UsageError(`--severity must be one of ${SEVERITIES.join(", ")}\n\n${ALERTS_USAGE}`);

  await installNodeCrypto();
  const client = await ValiseClient.open({ store: new FileKeyStore(resolve(profile)) });
  await client.login();

  if (sub === "ack") {
    if (arg === undefined || !/^[0-9]{1,15}$/.test(arg))
      throw new UsageError(`ack needs an alert id\n\n${ALERTS_USAGE}`);
    const a = await client.ackAlert(Number(arg));
    if (json) printJson(a);
    else process.stdout.write(line(a, false));
    return 0;
  }

  const since = values.since !== undefined ? new Date(Date.parse(values.since)).toISOString() : undefined;
  const printed = new Set<number>();
  let last = 0;
  const show = (a: ServerAlert) => {
    if (printed.has(a.id)) return;
    if (severity !== undefined && SEVERITIES.indexOf(a.severity) < SEVERITIES.indexOf(severity)) return;
    if (since !== undefined && a.time < since) return;
    printed.add(a.id);
    last = Math.max(last, a.id);
    process.stdout.write(line(a, json));
  };
  const readAll = async () => {
    for (;;) {
      const page = await client.alerts({
        after: last,
        limit: PAGE,
        ...(severity !== undefined ? { severity } : {}),
        ...(since !== undefined ? { since } : {}),
      });
      for (const a of page) show(a);
      if (page.length < PAGE) return;
    }
  };

  // "Learning until DATE": while the baselines learn, only critical rules alert, so an empty list is not "all clear".
  // On stdout before the list; with --json on stderr, so stdout stays one alert per line.
  const learning = await client.transport.alertsLearning().catch(() => null);
  if (learning?.active) {
    const note =
      `detection is learning until ${learning.until ?? `${learning.trainDays} days after the first audited event`}: ` +
      `until then only critical rules (canaries) alert; ${learning.hours}\n`;
    if (json) process.stderr.write(note);
    else process.stdout.write(note);
  }
  if (!values.follow) {
    await readAll();
    return 0;
  }
  // Subscribe first, then read the list: an alert stored in between arrives by push and is printed once.
  const early: ServerAlert[] = [];
  let listed = false;
  const push = await client.watchAlerts(nodeWebSocket, (a) => (listed ? show(a) : early.push(a)));
  try {
    await readAll();
  } catch (e) {
    push.close();
    throw e;
  }
  listed = true;
  for (const a of early.sort((x, y) => x.id - y.id)) show(a);
  process.stderr.write("following alerts (Ctrl-C to stop)\n");
  await new Promise<void>((done) => {
    const poll = setInterval(() => {
      readAll().catch((e: unknown) =>
        process.stderr.write(`valise: reading alerts failed: ${e instanceof Error ? e.message : String(e)}\n`),
      );
    }, FOLLOW_POLL_MS);
    const stop = () => {
      clearInterval(poll);
      push.close();
      done();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
