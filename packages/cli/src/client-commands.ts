import { join, resolve } from "node:path";
import { HistoryStore, ValiseClient, STORE_OUTAGE_NOTICE, type HistoryData } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { FileSealedRecord } from "@valise/client/node/sealed-file";
import { lockProfile } from "@valise/client/node/profile-lock";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { parse, str } from "./args.js";
import { profileOptions } from "./profile-options.js";
import { oneLine as q, printJson, safeText } from "./output.js";
import { installNodeCrypto } from "./crypto.js";
import { maxCheckpointAgeMs } from "./freshness.js";
import { readBundle } from "./bundle.js";

export const ENROLL_USAGE = `usage: valise enroll --server URL (--bundle FILE|JSON | --code CODE) --profile DIR [--name NAME] [--json]

Enrolls this machine as a new device with the one-time code an administrator gave you. The device's keys stay in
DIR/profile.json (mode 0600).
  --bundle FILE|JSON  the enrollment bundle (output of valise admin user add|code --json): its code, and the
                      directory log key, witness keys and quorum, which this device pins. From then on it checks
                      every device against the witnessed log (key transparency) and watches its own account.
  --code CODE         the code alone (or to override the bundle's): without a bundle the device pins the server's
                      directory log key and witness keys on first use (said once on stderr) and checks every
                      device and member against that log from then on; a bundle pins them from the start, out of
                      band, and is the stronger choice.`;
export const DEVICES_USAGE = `usage: valise devices --profile DIR [--ack DEVICE] [--not-mine DEVICE [--detail TEXT]] [--json]
       valise devices approve ID --profile DIR [--json]

Lists this user's devices as the verified directory log shows them, and own-account alerts: a device this device
did not enrol (and that was not there before it), a revocation, a clearance or role change.
  --ack DEVICE   dismiss the alerts about DEVICE (a device you enrolled yourself, e.g. your new phone), and tell
                 the server (audited as directory.device.ack: detection does not take it for an intruder's device)
  --not-mine DEVICE   this device is not yours (someone enrolled it under your name): the security officers get a
                 critical alert (device-not-mine) and an incident is opened with it; --detail adds what you know
approve also tells the server that this device approved ID (audited as directory.device.ack from this device), so
detection takes ID, used from a new network, for your new device rather than an intruder's.
With --json prints {"verified","checkpointSize","devices":[…],"alerts":[…],"error"} (and "reported" with --not-mine).
approve ID     send your new device ID (an active device of yours in the directory log) the cable and document
               keys this device holds, end to end inside MLS, in the unit and link conversations it is a member of
               (it is added to them first), and dismiss its alert; then this device's message history (valise
               history): encrypted batches on the server and a manifest signed by this device, to that device only.
               A device nobody approved gets only what is sent after it joined; a revoked device gets nothing.
               Progress on stderr; an interrupted approval resumes when run again. The server reclaims
               history batches not fetched within its upload TTL (24 h by default): the new device then says its
               history is INCOMPLETE, and running approve again sends a new transfer that replaces the old one
               ("replaced": its id, when an unfinished one was given up). --json prints
               {"approved","conversations","keys","history":{"transfer","messages","batches","resumed","replaced"?}}.`;
export const SEND_USAGE = `usage: valise send --profile DIR --to HANDLE|UNIT [--label LABEL] TEXT [--json]

Sends TEXT end-to-end encrypted to a user (direct conversation) or a unit's channel (e.g. HQ/ASIA-1).
  --label LABEL   CLASSIFICATION[/COMPARTMENT,…], default UNCLASSIFIED; every recipient must be cleared for it`;
export const SYNC_USAGE = `usage: valise sync --profile DIR [--json]

Fetches and decrypts everything new: cables first (FLASH, IMMEDIATE, PRIORITY, ROUTINE), then messages, document
shares, directory changes and alerts. With --json prints {"items":[…]}, each item with type (cable, message,
document, joined, directory, alert), from, conversation, label, text, seq, time; cables also carry id, reference,
precedence, originator, action, info, corrects (text is the subject); documents id, version, size (text is the file
name); directory items (a member joined or left one of your units, a new or revoked device of someone you talk to,
a clearance, role or state change, from the witnessed directory log) event, unit, device (seq is the log index).`;
export const CONVERSATIONS_USAGE = `usage: valise conversations --profile DIR [--json]

Lists this device's conversations and who holds their keys (the members of each MLS group). With --json prints
{"conversations":[{"id","kind","label","unit","peer","cursor","members":[{"user","device"}]}]}; a member the
directory log shows as the records archive of the conversation's unit has "archive":true,"role":"archivist" and
is shown as
"(archive)".`;

export { profileOptions } from "./profile-options.js";

/**
 * Opens a profile for this process: takes its lock first (one writer per profile: a second process waits, saying
 * so on stderr, or fails with --no-wait), then loads it. The lock is released when the process exits.
 */
export async function openClient(profile: string): Promise<ValiseClient> {
  await installNodeCrypto();
  const dir = resolve(profile);
  await lockProfile(dir, {
    wait: !profileOptions.noWait,
    onWait: (h) =>
      process.stderr.write(
        `valise: profile ${profile} is in use by process ${h.pid}${h.command ? ` (valise ${h.command})` : ""}; ` +
          `waiting for it to finish (--no-wait to fail instead)\n`,
      ),
  });
  // Documents and cables: node:crypto AES-GCM on a worker pool (both cores), same bytes as the WebCrypto default.
  const maxAgeMs = maxCheckpointAgeMs(); // VALISE_CHECKPOINT_MAX_AGE: the freshness bound for sync's stale alert
  const c = await ValiseClient.open({
    store: new FileKeyStore(dir),
    history: async ({ deviceId, signaturePrivateKey }) => {
      const h = await HistoryStore.open(
        new FileSealedRecord<HistoryData>(join(dir, "history.sealed"), signaturePrivateKey, `history:${deviceId}`),
      );
      const batch = Number(process.env.VALISE_TEST_HISTORY_BATCH ?? "0"); // tests: several batches from a few messages
      if (batch > 0) h.transferBatch = batch;
      return h;
    },
    cipher: nodeStreamCipher(),
    fetch: cliFetch(),
    ...(maxAgeMs !== undefined ? { transparency: { maxCheckpointAgeMs: maxAgeMs } } : {}),
  });
  c.transport.onRetry = (n) => {
    if (n.first) process.stderr.write(`valise: ${STORE_OUTAGE_NOTICE} (${n.method} ${n.path}: ${n.reason})\n`);
  };
  return c;
}

/**
 * fetch, plus one fault-injection hook for the fault tests only: with VALISE_TEST_KILL_AFTER_POST=1 the process
 * SIGKILLs itself as soon as the server acknowledged a message (POST …/messages answered 2xx), before anything else
 * runs — a crash between "the ciphertext left" and "the send returned".
 */
function cliFetch(): typeof fetch {
  if (process.env.VALISE_TEST_KILL_AFTER_POST !== "1") return globalThis.fetch.bind(globalThis);
  return async (input, init) => {
    const res = await globalThis.fetch(input, init);
    const url = input instanceof URL ? input.href : typeof input === "string" ? input : input.url;
    if (init?.method === "POST" && /\/messages$/.test(url) && res.ok) process.kill(process.pid, "SIGKILL");
    return res;
  };
}

export async function enroll(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      server: { type: "string" },
      code: { type: "string" },
      bundle: { type: "string" },
      profile: { type: "string" },
      name: { type: "string" },
      json: { type: "boolean" },
    },
    ENROLL_USAGE,
  );
  if (values.help) return (void console.log(ENROLL_USAGE), 0);
  await installNodeCrypto();
  const server = str(values.server, "--server URL", ENROLL_USAGE);
  const bundle = values.bundle !== undefined ? readBundle(values.bundle) : undefined;
  const code = str(
    values.code ?? bundle?.enrollmentCode,
    "--code CODE (or --bundle with an enrollmentCode)",
    ENROLL_USAGE,
  );
  const profile = resolve(str(values.profile, "--profile DIR", ENROLL_USAGE));
  await lockProfile(profile, { wait: !profileOptions.noWait }); // two enrollments into one directory: one wins
  const c = await ValiseClient.enroll({
    serverUrl: server,
    code,
    deviceName: values.name ?? "cli",
    store: new FileKeyStore(profile),
    ...(bundle ? { trust: bundle.trust } : {}),
  });
  const firstUse = !bundle && c.transparency !== null;
  if (firstUse)
    process.stderr.write(
      `valise: no --bundle: pinned the server's directory log key on first use (${c.trustAnchors?.logKey.split("+")[0] ?? "?"}); ` +
        "this device checks every device and member against that log from now on (enrol with --bundle to pin it " +
        "from the start)\n",
    );
  else if (!bundle)
    process.stderr.write(
      "valise: warning: the server publishes no directory log key: this device trusts the server's directory answers\n",
    );
  if (values.json)
    printJson({
      handle: c.handle,
      device: c.deviceId,
      server: c.serverUrl,
      profile,
      keyTransparency: c.transparency !== null,
      pinnedOnFirstUse: firstUse,
    });
  else console.log(`enrolled ${c.handle}, device ${c.deviceId}; profile in ${profile}`);
  return 0;
}

export async function send(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { profile: { type: "string" }, to: { type: "string" }, label: { type: "string" }, json: { type: "boolean" } },
    SEND_USAGE,
  );
  if (values.help) return (void console.log(SEND_USAGE), 0);
  const profile = str(values.profile, "--profile DIR", SEND_USAGE);
  const to = str(values.to, "--to HANDLE|UNIT", SEND_USAGE);
  const text = str(positionals.join(" "), "TEXT", SEND_USAGE);
  const c = await openClient(profile);
  const r = await c.send(to, text, values.label ?? "UNCLASSIFIED");
  if (values.json) printJson({ conversation: r.conversation, seq: r.seq, label: r.label, to });
  else console.log(`sent to ${to} [${r.label}] (conversation ${r.conversation}, #${r.seq})`);
  return 0;
}

export async function sync(argv: string[]): Promise<number> {
  const { values } = parse(argv, { profile: { type: "string" }, json: { type: "boolean" } }, SYNC_USAGE);
  if (values.help) return (void console.log(SYNC_USAGE), 0);
  const c = await openClient(str(values.profile, "--profile DIR", SYNC_USAGE));
  const items = await c.sync();
  if (values.json) printJson({ items });
  else if (items.length === 0) console.log("nothing new");
  else
    for (const it of items)
      console.log(
        it.type === "cable"
          ? `${q(it.time)} [${q(it.label)}] ${q(it.precedence)} CABLE ${q(it.reference)} from ${q(it.originator)}: ${q(it.text)}`
          : it.type === "document"
            ? `${q(it.time)} [${q(it.label)}] DOCUMENT ${q(it.id)} v${it.version} from ${q(it.from)}: ${q(it.text)}`
            : it.type === "directory"
              ? `${q(it.time)} DIRECTORY ${q(it.text)}`
              : `${q(it.time)} [${q(it.label)}] ${it.type === "alert" ? "ALERT " : ""}${q(it.from)}: ${it.type === "message" ? body(it.text) : q(it.text)}`,
      );
  return 0;
}

/** A message body in `sync`'s one-line-per-item output: its further lines indented, so none looks like an item. */
const body = (text: string) => safeText(text).replace(/\n/g, "\n    ");

export async function conversations(argv: string[]): Promise<number> {
  const { values } = parse(argv, { profile: { type: "string" }, json: { type: "boolean" } }, CONVERSATIONS_USAGE);
  if (values.help) return (void console.log(CONVERSATIONS_USAGE), 0);
  const c = await openClient(str(values.profile, "--profile DIR", CONVERSATIONS_USAGE));
  const list = c.conversationList().map((x) => ({
    id: x.id,
    kind: x.kind,
    label: x.label,
    unit: x.unit,
    peer: x.peer,
    cursor: x.cursor,
    // Who holds this conversation's keys now (its MLS group): every member can see every member.
    members: c.conversationMembers(x.id),
  }));
  if (values.json) printJson({ conversations: list });
  else
    for (const x of list)
      console.log(
        `${q(x.id)} ${q(x.kind)} ${q(x.peer ?? x.unit ?? "")} [${q(x.label)}] members: ` +
          [...new Set(x.members.map((m) => `${q(m.user)}${m.archive ? " (archive)" : ""}`))].join(", "),
      );
  return 0;
}

export async function devices(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      profile: { type: "string" },
      ack: { type: "string", multiple: true },
      "not-mine": { type: "string", multiple: true },
      detail: { type: "string" },
      json: { type: "boolean" },
    },
    DEVICES_USAGE,
  );
  if (values.help) return (void console.log(DEVICES_USAGE), 0);
  const c = await openClient(str(values.profile, "--profile DIR", DEVICES_USAGE));
  if (positionals[0] === "approve") {
    const id = str(positionals[1], "approve ID", DEVICES_USAGE);
    const stopAfter = Number(process.env.VALISE_TEST_HISTORY_STOP_AFTER ?? "0"); // fault tests: interrupt the upload
    const r = await c.approveDevice(
      id,
      (done, total) => process.stderr.write(`approve ${id}: ${done}/${total} key transfers sent\n`),
      (p) => {
        process.stderr.write(
          p.phase === "prepare"
            ? `approve ${id}: history: ${p.done}/${p.total} batches prepared (${p.messages} messages)\n`
            : p.phase === "manifest"
              ? `approve ${id}: history: signed manifest sent (${p.messages} messages)\n`
              : `approve ${id}: history: ${p.done}/${p.total} batches uploaded\n`,
        );
        if (stopAfter > 0 && p.phase === "upload" && p.done >= stopAfter) {
          process.stderr.write(`approve ${id}: stopped (VALISE_TEST_HISTORY_STOP_AFTER)\n`);
          process.exit(3);
        }
      },
    );
    // The server learns of the approval (audited directory.device.ack, made from this device): detection credits a
    // new device its owner approved from a device already trusted for them.
    try {
      await c.login();
      await c.transport.ackOwnDevice(id);
    } catch (e) {
      process.stderr.write(
        `valise: the server was not told about the approval: ${e instanceof Error ? e.message : String(e)}\n`,
      );
    }
    if (values.json) printJson({ approved: id, ...r });
    else
      console.log(
        `approved ${q(id)}: ${r.keys} keys sent in ${r.conversations} conversations` +
          (r.history ? `; history: ${r.history.messages} messages in ${r.history.batches} batches` : ""),
      );
    return 0;
  }
  const reported: { device: string; alert: number; incident?: string }[] = [];
  for (const d of values["not-mine"] ?? []) {
    await c.login();
    const x = await c.transport.reportKt({
      kind: "not_mine",
      subject: d,
      detail: (values.detail ?? "").slice(0, 2000),
    });
    reported.push({ device: d, alert: x.id, ...(x.incident ? { incident: x.incident } : {}) });
    if (!values.json)
      console.log(
        `reported ${q(d)} as not yours: alert ${x.id}${x.incident ? `, incident ${x.incident}` : " (already reported)"}`,
      );
  }
  const r = await c.ownDevices();
  const acked: string[] = [];
  for (const d of values.ack ?? []) {
    await c.ackDevice(d);
    acked.push(d);
  }
  if (acked.length > 0) {
    // Tell the server too (audited as directory.device.ack): detection then does not take the device for an
    // intruder's. The local dismissal stands if the server refuses (e.g. a revoked device).
    try {
      await c.login();
      for (const d of acked) await c.transport.ackOwnDevice(d);
    } catch (e) {
      process.stderr.write(
        `valise: the server was not told about the acknowledgement: ${e instanceof Error ? e.message : String(e)}\n`,
      );
    }
  }
  const out = {
    verified: r.verified,
    checkpointSize: r.checkpointSize,
    devices: r.devices.map((d) => ({
      id: d.id,
      name: d.name,
      enrolled: new Date(d.time).toISOString(),
      logIndex: d.logIndex,
      revoked: d.revokedLogIndex !== null,
      revokedLogIndex: d.revokedLogIndex,
      self: d.self,
      expected: d.expected || acked.includes(d.id),
    })),
    alerts: r.alerts.map((a) => ({
      id: a.id,
      kind: a.kind,
      device: a.device ?? null,
      text: a.text,
      time: new Date(a.time).toISOString(),
      logIndex: a.logIndex,
      acked: a.acked || (a.device !== undefined && acked.includes(a.device)),
    })),
    error: r.error,
    ...(acked.length > 0 ? { acked } : {}),
    ...(reported.length > 0 ? { reported } : {}),
  };
  if (values.json) printJson(out);
  else {
    if (!r.verified) console.log("(not verified: this profile has no key transparency; the server's answer)");
    else console.log(`verified against the directory log up to size ${r.checkpointSize ?? 0}`);
    if (r.error) console.log(`ALERT ${q(r.error)}`);
    for (const d of out.devices)
      console.log(
        `${q(d.id)} ${q(d.name)} enrolled ${d.enrolled}${d.self ? " (this device)" : ""}${d.revoked ? " REVOKED" : ""}` +
          `${d.expected ? "" : " UNEXPECTED"}`,
      );
    for (const a of out.alerts.filter((x) => !x.acked)) console.log(`ALERT ${a.time} ${q(a.text)}`);
    for (const d of acked) console.log(`dismissed alerts about ${q(d)}`);
  }
  return 0;
}
