import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  dryRunMigrations,
  LOG_KEY_FILE,
  loadOrCreateLogKey,
  openStore,
  rotateLogKey,
  ROLES,
  type Role,
  type Store,
} from "@valise/server";
import { parse, str, UsageError } from "./args.js";
import { parseDuration, resolveConfig } from "./config.js";
import { oneLine, printJson } from "./output.js";
import { BUNDLE_ENV_HELP, bundleTrust } from "./bundle.js";
import { ValiseError, canonicalLabel, generateNoteKey } from "@valise/core";
import { isTimeZone } from "@valise/detect";
import { openClient } from "./client-commands.js";
import { RETENTION_USAGE, auditPrune, retentionCommand } from "./retention-commands.js";
import type { DirectoryChange, PendingRemovalView, StaffUser, ValiseClient } from "@valise/client";

function printClearance(
  r: { handle: string; clearance: string; pendingRemovals: { conversation: string; devices: string[] }[] },
  json: boolean,
): void {
  if (json) printJson(r);
  else {
    console.log(`clearance of ${r.handle} set to ${r.clearance}`);
    for (const p of r.pendingRemovals)
      console.log(`  ${p.conversation}: devices ${p.devices.join(", ")} cut off; removal pending (next commit)`);
  }
}

export const ADMIN_USAGE = `usage: valise admin [--data DIR] <command>

Local operator commands on the server's database (like prosodyctl): run them on the server machine.
  unit add UNIT [--max-label LABEL] [--tz ZONE]
                                               create a unit (e.g. HQ/ASIA-1, EMB/BEIJING); --tz as unit tz
  unit list [--json]                           units with max-label, share window and time zone
  unit tz UNIT ZONE|none [--json]              the post's IANA time zone (e.g. Asia/Tokyo): detection profiles
                                               its members' hours of day in it, daylight saving included
                                               (default, or none: UTC). Audited (directory.unit.tz); not a
                                               directory log entry: it changes no key
  user add HANDLE [--unit UNIT]… [--clearance LABEL] [--role user|officer|admin|archivist] [--officer OFFICER]
           [--json]                            create a user; prints a one-time enrollmentCode; with --json, the
                                               enrollment bundle: also logKey, witnesses, quorum (for valise
                                               enroll --bundle), which the device pins. --officer names who
                                               issues the code (role officer or admin; default admin-cli): the
                                               enrolment is audited as device.enrolment code:OFFICER
  user code HANDLE [--officer OFFICER] [--json]
                                               a new one-time enrollmentCode (and bundle) for another device
  user show HANDLE [--json]                    units, clearance, role, state and devices
  user list [--unit UNIT] [--json]             every user (or a unit's) with units, clearance, role, state
  user history HANDLE [--json]                 every directory log entry about the user (index, time, type)
  user move HANDLE --from UNIT --to UNIT [--json]
                                               a posting: leaves one unit and joins another in one change; the
                                               old unit's channels and links stop serving the user's devices
                                               until a member commits their removal (pending removals printed)
  user role HANDLE user|officer|admin|archivist [--json]
                                               set a role (nobody changes their own over the API)
  user disable HANDLE [--json]                 offboarding: every device revoked (each logged), sessions
                                               ended, logins and enrollment refused, conversations cleaned by
                                               their next sender; history kept
  user enable HANDLE [--json]                  undo disable; devices stay revoked: give a new code (user code)
  unit members UNIT [--json]                   a unit's members with their state
  unit member add UNIT HANDLE [--json]         make a user a member of a unit
  unit member remove UNIT HANDLE [--json]      remove a member (their devices: pending removal in the unit's
                                               channels and links)
  unit label UNIT LABEL [--json]               set a unit's highest label (max-label)
  unit share UNIT --since DURATION|all [--json]
                                               how far back the unit shares keys with members who join later
                                               (unit.share in the directory log; default all: everything the
                                               unit holds). DURATION: 30d, 12h, 90m, 3600s, 2w. The unit's
                                               archive and a user's own approved device always get everything
  archive assign USER UNIT [--json]            records archive (issue 14): USER (role archivist, cleared for
                                               the unit's highest label, not a member) becomes the archive of
                                               UNIT (archive.assign in the directory log): its devices join the
                                               unit's channels and links, shown to every member as the archive,
                                               and receive every key of the unit
  archive remove USER UNIT [--json]            the assignment ends (archive.remove)
  device revoke DEVICE_ID [--json]             revoke a device at once
  clearance set HANDLE LABEL (--officer OFFICER | --profile DIR) [--json]
                                               security officers only: set a user's clearance. Locally, name
                                               the officer (a user with role officer), recorded as the actor;
                                               or use the officer's enrolled profile (over the API, the server
                                               checks the role). Conversations above the new clearance stop
                                               serving that user's devices and refuse new messages until a
                                               member commits their removal (new epoch) — in effect before
                                               this command returns; prints the pending removals.
  log key [--json]                             the directory log's verifier key (name+hash+key), for clients
                                               and witnesses; creates DIR/log-key if there is none yet
  log-key rotate [--new-key-file FILE] [--json]
                                               with every server stopped: a new log signing key; the old key
                                               signs a hand-over naming it and the directory and audit log sizes
                                               from which it signs; the database pins the new key; DIR/log-key is
                                               replaced (the old one kept as DIR/log-key.retired-<time>). With
                                               VALISE_LOG_KEY/logKeyFile, --new-key-file FILE receives the new key.
                                               Devices and witnesses that pin the old key follow the hand-over
                                               (README "Log-key rotation")
  backup --out DIR / restore --from DIR --data DIR
                                               online backup and restore (valise admin backup --help)
${RETENTION_USAGE}
  migrate --dry-run [--json]                   before an upgrade: list the migrations the new version's serve would
                                               apply at start-up and run them without changing the database (on
                                               PostgreSQL in a transaction that is rolled back, on SQLite on a
                                               copy); prints {"ok","pending","applied","failed","error"}; exit 0
                                               when they all succeed, 1 naming the one that fails
  migrate [--json]                             apply them now (serve also does at start-up)
Every change above is appended to the directory log (key transparency) and the audit log (actor admin-cli) in the
same transaction. The user/unit lifecycle commands also run over the API with --profile DIR (an enrolled admin's
profile; officers may list, show history and disable): the server then checks the role and audits the caller.
Options: --data DIR (default ./valise-data); VALISE_DATABASE_URL selects PostgreSQL;
  VALISE_LOG_KEY supplies the log signing key instead of DIR/log-key; --config FILE reads the server's configuration
  file (valise serve --help): data, databaseUrl/databaseUrlFile, logKeyFile, enrollmentCodeTtl.
Labels: CLASSIFICATION[/COMPARTMENT[,COMPARTMENT…]], e.g. CONFIDENTIAL/ASIA.
${BUNDLE_ENV_HELP}`;

export async function admin(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      data: { type: "string" },
      unit: { type: "string", multiple: true },
      clearance: { type: "string" },
      role: { type: "string" },
      "max-label": { type: "string" },
      tz: { type: "string" },
      json: { type: "boolean" },
      witness: { type: "string", multiple: true },
      "witness-quorum": { type: "string" },
      officer: { type: "string" },
      profile: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      config: { type: "string" },
      "new-key-file": { type: "string" },
      since: { type: "string" },
      label: { type: "string" },
      keep: { type: "string" },
      through: { type: "string" },
      export: { type: "string" },
      "dry-run": { type: "boolean" },
    },
    ADMIN_USAGE,
  );
  if (values.help || positionals.length === 0) {
    console.log(ADMIN_USAGE);
    return values.help ? 0 : 2;
  }
  if (positionals[0] === "clearance" && positionals[1] === "set" && values.profile !== undefined) {
    // Over the API with the officer's own device: the server checks the officer role.
    const handle = str(positionals[2], "HANDLE", ADMIN_USAGE);
    const label = canonicalLabel(str(positionals[3], "LABEL", ADMIN_USAGE));
    const c = await openClient(values.profile);
    const r = await c.setClearance(handle, label);
    printClearance(r, values.json === true);
    return 0;
  }
  const json = values.json === true;
  const lifecycle = lifecycleCommand(positionals);
  if (lifecycle && values.profile !== undefined) {
    const c = await openClient(values.profile);
    return lifecycle(remoteOps(c), positionals, values, json);
  }
  // The server's configuration file (valise serve --config): data directory, database, log key, code lifetime.
  const cfg = resolveConfig({ data: values.data }, values.config);
  const cfgStr = (key: string) => cfg.values[key] as string | undefined;
  const dataDir = resolve(cfgStr("data") ?? "./valise-data");
  const codeTtl = cfgStr("enrollmentCodeTtl");
  const enrollmentCodeTtlMs = codeTtl === undefined ? undefined : parseDuration(codeTtl);
  if (enrollmentCodeTtlMs === null) throw new UsageError("enrollmentCodeTtl must be a duration such as 24h or 7d");
  const keyEnv = cfg.secrets.logKey !== undefined ? { VALISE_LOG_KEY: cfg.secrets.logKey } : {};
  const validFor = enrollmentCodeTtlMs === undefined ? "7 days" : humanDuration(enrollmentCodeTtlMs);
  process.umask(0o077);
  if (positionals[0] === "migrate" && values["dry-run"]) {
    const r = await dryRunMigrations({ dataDir, databaseUrl: cfg.secrets.databaseUrl });
    if (json) printJson(r);
    else {
      console.log(
        r.pending.length === 0
          ? `no pending migrations (${r.applied.length} applied)`
          : `pending migrations: ${r.pending.join(", ")}`,
      );
      console.log(
        r.ok
          ? `dry run ok (${r.method}): the database is unchanged`
          : `dry run FAILED at ${r.failed}: ${r.error} (${r.method}: the database is unchanged)`,
      );
    }
    return r.ok ? 0 : 1;
  }
  const store = await openStore({
    dataDir,
    databaseUrl: cfg.secrets.databaseUrl,
    ...(enrollmentCodeTtlMs !== undefined ? { enrollmentCodeTtlMs } : {}),
  });
  try {
    const [what, verb, arg] = positionals;
    /** The trust anchors a device pins at enrollment (the log key is pinned in the database as by `log key`). */
    const bundle = async () => {
      const key = loadOrCreateLogKey({ dataDir, env: keyEnv });
      await store.directory.log.pinVerifierKey(key.vkey);
      const t = bundleTrust(key.vkey, { witness: values.witness, quorum: values["witness-quorum"] });
      return { logKey: t.logKey, witnesses: t.witnesses, quorum: t.quorum, transparency: t.note };
    };
    /**
     * Who issues an enrollment code: `--officer OFFICER` (a user with role officer or admin), else admin-cli. Stored
     * with the code; the enrolment is audited as device.enrolment code:<issuer> (issue 16).
     */
    const codeIssuer = async () => {
      if (values.officer === undefined) return undefined;
      const o = await store.directory.getUser(values.officer);
      if (!o || (o.role !== "officer" && o.role !== "admin") || o.disabledAt !== null)
        throw new ValiseError("forbidden", `${values.officer} is not an active security officer or administrator`);
      return { actor: o.handle, source: "local", client: "valise-admin" };
    };
    const key = `${what ?? ""} ${verb ?? ""}`;
    if (lifecycle) return await lifecycle(localOps(store), positionals, values, json);
    if (what === "retention") return await retentionCommand(store, positionals, values, json);
    if (what === "migrate") {
      // openStore has applied them.
      const r = await dryRunMigrations({ dataDir, databaseUrl: cfg.secrets.databaseUrl });
      if (json) printJson({ ok: true, applied: r.applied, pending: r.pending });
      else console.log(`database up to date: ${r.applied.length} migrations applied`);
      return 0;
    }
    if (key === "audit prune") {
      const file = str(values.export, "--export FILE (an offline export: valise audit export --out FILE)", ADMIN_USAGE);
      const logKey = loadOrCreateLogKey({ dataDir, env: keyEnv });
      return await auditPrune(store, file, logKey.vkey, json);
    }
    switch (key) {
      case "unit add": {
        const unit = str(arg, "UNIT", ADMIN_USAGE);
        if (values.tz !== undefined && !isTimeZone(values.tz))
          throw new UsageError(`--tz: ${values.tz} is not an IANA time zone (e.g. Asia/Tokyo, Europe/Paris, UTC)`);
        await store.directory.addUnit(unit, values["max-label"] ?? "SECRET");
        if (values.tz !== undefined) await store.directory.setUnitTimeZone(unit, values.tz);
        if (values.json) printJson({ unit, ...(values.tz !== undefined ? { tz: values.tz } : {}) });
        else console.log(`unit ${unit} added${values.tz !== undefined ? ` (time zone ${values.tz})` : ""}`);
        return 0;
      }
      case "unit list": {
        const units = await store.directory.listUnits();
        if (values.json) printJson({ units });
        else for (const u of units) console.log(`${u.name}\t(max ${u.maxLabel}${u.tz ? `, ${u.tz}` : ""})`);
        return 0;
      }
      case "unit tz": {
        const unit = str(arg, "UNIT", ADMIN_USAGE);
        const zone = str(positionals[3], "ZONE (an IANA time zone, or none)", ADMIN_USAGE);
        const tz = zone === "none" ? null : zone;
        if (tz !== null && !isTimeZone(tz))
          throw new UsageError(`${tz} is not an IANA time zone (e.g. Asia/Tokyo, Europe/Paris, UTC), or none`);
        const r = await store.directory.setUnitTimeZone(unit, tz);
        if (values.json) printJson(r);
        else console.log(r.tz === null ? `${unit}: no time zone (hours in UTC)` : `${unit}: time zone ${r.tz}`);
        return 0;
      }
      case "user add": {
        const handle = str(arg, "HANDLE", ADMIN_USAGE);
        const role = (values.role ?? "user") as Role;
        if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(", ")}`);
        const anchors = values.json ? await bundle() : {};
        const r = await store.directory.addUser(
          { handle, units: values.unit ?? [], clearance: values.clearance ?? "UNCLASSIFIED", role },
          await codeIssuer(),
        );
        if (values.json)
          printJson({
            handle,
            enrollmentCode: r.enrollmentCode,
            expiresAt: new Date(r.expiresAt).toISOString(),
            ...anchors,
          });
        else console.log(`user ${handle} added; one-time enrollment code (valid ${validFor}): ${r.enrollmentCode}`);
        return 0;
      }
      case "user code": {
        const handle = str(arg, "HANDLE", ADMIN_USAGE);
        const anchors = values.json ? await bundle() : {};
        const r = await store.directory.newEnrollmentCode(handle, await codeIssuer());
        if (values.json)
          printJson({
            handle,
            enrollmentCode: r.enrollmentCode,
            expiresAt: new Date(r.expiresAt).toISOString(),
            ...anchors,
          });
        else console.log(`one-time enrollment code for ${handle} (valid ${validFor}): ${r.enrollmentCode}`);
        return 0;
      }
      case "user show": {
        const u = await store.directory.getUser(str(arg, "HANDLE", ADMIN_USAGE));
        if (!u) throw new ValiseError("not_found", `no user ${arg ?? ""}`);
        const out = {
          ...u,
          disabled: u.disabledAt !== null,
          disabledAt: u.disabledAt ? new Date(u.disabledAt).toISOString() : null,
          devices: u.devices.map((d) => ({
            id: d.id,
            name: d.name,
            createdAt: new Date(d.createdAt).toISOString(),
            revokedAt: d.revokedAt ? new Date(d.revokedAt).toISOString() : null,
          })),
        };
        if (values.json) printJson(out);
        else
          console.log(
            `${u.handle} role=${u.role} clearance=${u.clearance} units=${u.units.join(",")}${u.disabledAt !== null ? " DISABLED" : ""}\n${out.devices.map((d) => `  ${d.id} ${d.name} ${d.revokedAt ? "REVOKED" : ""}`).join("\n")}`,
          );
        return 0;
      }
      case "log key": {
        const key = loadOrCreateLogKey({ dataDir, env: keyEnv });
        await store.directory.log.pinVerifierKey(key.vkey);
        if (values.json) printJson({ origin: key.origin, vkey: key.vkey });
        else console.log(key.vkey);
        return 0;
      }
      case "log-key rotate": {
        // A new key named after the log's origin; the old key signs the hand-over (storage/log-rotation.ts).
        const oldKey = loadOrCreateLogKey({ dataDir, env: keyEnv });
        const fromFile = keyEnv.VALISE_LOG_KEY === undefined && process.env.VALISE_LOG_KEY === undefined;
        const target = values["new-key-file"]
          ? resolve(values["new-key-file"])
          : fromFile
            ? join(dataDir, LOG_KEY_FILE)
            : undefined;
        if (!target)
          throw new UsageError(
            "the log key comes from VALISE_LOG_KEY or logKeyFile: give --new-key-file FILE for the new key, then " +
              "point VALISE_LOG_KEY / logKeyFile at it on every server",
          );
        const { skey } = generateNoteKey(oldKey.origin);
        const tmp = `${target}.new`;
        writeFileSync(tmp, `${skey}\n`, { mode: 0o600, flag: "wx" });
        const newKey = loadOrCreateLogKey({ dataDir, env: { VALISE_LOG_KEY: skey } });
        let h;
        try {
          h = await rotateLogKey({
            db: store.handle.db,
            directory: store.directory.log,
            audit: store.audit,
            oldKey,
            newKey,
            now: Date.now(),
          });
        } catch (e) {
          rmSync(tmp, { force: true });
          throw e;
        }
        // The old key is kept beside the new one (mode 0600), never needed again by the server: destroy it once
        // every backup that holds it is gone, or keep it offline.
        const retired = `${target}.retired-${Date.now()}`;
        if (existsSync(target)) renameSync(target, retired);
        renameSync(tmp, target);
        const out = {
          origin: h.origin,
          oldKey: h.oldKey,
          newKey: h.newKey,
          directorySize: h.directorySize,
          auditSize: h.auditSize,
          keyFile: target,
          retiredKeyFile: existsSync(retired) ? retired : null,
          handover: h.note,
        };
        if (values.json) printJson(out);
        else {
          console.log(`log key rotated: ${h.oldKey}\n            → ${h.newKey}`);
          console.log(
            `  from directory log size ${h.directorySize}, audit log size ${h.auditSize}; the hand-over (signed by ` +
              "both keys) is served at GET /v1/log/directory/key-handovers",
          );
          console.log(`  new key: ${target}${existsSync(retired) ? `; old key moved to ${retired}` : ""}`);
          console.log(
            "  start the server(s) with the new key; devices and witnesses that pin the old key follow the hand-over.\n" +
              `  New enrollment bundles carry the new key (valise admin log key).`,
          );
        }
        return 0;
      }
      case "device revoke": {
        const device = str(arg, "DEVICE_ID", ADMIN_USAGE);
        await store.directory.revokeDevice(device);
        if (values.json) printJson({ device, revoked: true });
        else console.log(`device ${device} revoked`);
        return 0;
      }
      case "clearance set": {
        const handle = str(arg, "HANDLE", ADMIN_USAGE);
        const label = canonicalLabel(str(positionals[3], "LABEL", ADMIN_USAGE));
        const officerHandle = str(values.officer, "--officer OFFICER (or --profile DIR of an officer)", ADMIN_USAGE);
        const officer = await store.directory.getUser(officerHandle);
        if (!officer || officer.role !== "officer")
          throw new ValiseError(
            "forbidden",
            `${officerHandle} is not a security officer: only officers change clearances`,
          );
        if (officer.handle === handle)
          throw new ValiseError("forbidden", "an officer cannot change their own clearance: another officer must");
        const r = await store.directory.setClearance(handle, label, {
          actor: officer.handle,
          source: "local",
          client: "valise-admin",
        });
        printClearance({ handle, ...r }, values.json === true);
        return 0;
      }
      default:
        throw new UsageError(`unknown admin command: ${positionals.join(" ")}\n\n${ADMIN_USAGE}`);
    }
  } finally {
    await store.close();
  }
}

// --- staff lifecycle (issue 12): the same commands locally (store, actor admin-cli) or over the API (--profile) ---

interface LifecycleOps {
  listUsers(unit?: string): Promise<StaffUser[]>;
  unitMembers(unit: string): Promise<StaffUser[]>;
  history(handle: string): Promise<DirectoryChange[]>;
  move(handle: string, from: string, to: string): Promise<{ pendingRemovals: PendingRemovalView[] }>;
  addMember(unit: string, handle: string): Promise<unknown>;
  removeMember(unit: string, handle: string): Promise<{ pendingRemovals: PendingRemovalView[] }>;
  setRole(handle: string, role: string): Promise<{ changed: boolean }>;
  disable(handle: string): Promise<{ revokedDevices: string[]; pendingRemovals: PendingRemovalView[] }>;
  enable(handle: string): Promise<unknown>;
  unitLabel(unit: string, label: string): Promise<{ maxLabel: string }>;
  unitShare(unit: string, since: string): Promise<{ unit: string; since: string; changed: boolean }>;
  assignArchive(unit: string, handle: string): Promise<{ handle: string; unit: string }>;
  removeArchive(unit: string, handle: string): Promise<{ pendingRemovals: PendingRemovalView[] }>;
}

function localOps(store: Store): LifecycleOps {
  const d = store.directory;
  return {
    listUsers: (unit) => d.listUsers(unit === undefined ? {} : { unit }),
    unitMembers: async (unit) => {
      if (!(await d.unitExists(unit))) throw new ValiseError("not_found", `no unit ${unit}`);
      return d.listUsers({ unit });
    },
    history: (handle) => d.userHistory(handle),
    move: (handle, from, to) => d.moveUser(handle, from, to),
    addMember: (unit, handle) => d.addMember(handle, unit),
    removeMember: (unit, handle) => d.removeMember(handle, unit),
    setRole: (handle, role) => d.setRole(handle, role),
    disable: (handle) => d.disableUser(handle),
    enable: (handle) => d.enableUser(handle),
    unitLabel: (unit, label) => d.setUnitMaxLabel(unit, label),
    unitShare: (unit, since) => d.setUnitShare(unit, since),
    assignArchive: (unit, handle) => d.assignArchive(handle, unit),
    removeArchive: (unit, handle) => d.removeArchive(handle, unit),
  };
}

function remoteOps(c: ValiseClient): LifecycleOps {
  const t = c.transport;
  /** Logged in with the profile's device; an expired session logs in again once. */
  const authed = async <T>(fn: () => Promise<T>): Promise<T> => {
    await c.login();
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ValiseError) || e.code !== "unauthenticated") throw e;
      await c.login(true);
      return fn();
    }
  };
  return {
    listUsers: (unit) => authed(() => t.listUsers(unit)),
    unitMembers: (unit) => authed(() => t.unitMembersDetailed(unit)),
    history: (handle) => authed(() => t.userHistory(handle)),
    move: (handle, from, to) => authed(() => t.moveUser(handle, from, to)),
    addMember: (unit, handle) => authed(() => t.addUnitMember(unit, handle)),
    removeMember: (unit, handle) => authed(() => t.removeUnitMember(unit, handle)),
    setRole: (handle, role) => authed(() => t.setRole(handle, role)),
    disable: (handle) => authed(() => t.disableUser(handle)),
    enable: (handle) => authed(() => t.enableUser(handle)),
    unitLabel: (unit, label) => authed(() => t.setUnitMaxLabel(unit, label)),
    unitShare: (unit, since) => authed(() => t.setUnitShare(unit, since)),
    assignArchive: (unit, handle) => authed(() => t.assignArchive(unit, handle)),
    removeArchive: (unit, handle) => authed(() => t.removeArchive(unit, handle)),
  };
}

type LifecycleRun = (
  ops: LifecycleOps,
  positionals: string[],
  values: {
    unit?: string[] | undefined;
    from?: string | undefined;
    to?: string | undefined;
    since?: string | undefined;
  },
  json: boolean,
) => Promise<number>;

/** `--since` of `unit share`: `all`, or a duration (30d, 12h, 90m, 3600s, 2w) → seconds as decimal text. */
export function shareSince(v: string): string {
  if (v === "all") return "all";
  const m = /^([1-9][0-9]{0,8})([wdhms])$/.exec(v);
  if (!m)
    throw new UsageError(`--since must be all or a duration like 30d, 12h, 90m, 3600s, 2w (not ${JSON.stringify(v)})`);
  const mult = { w: 604_800, d: 86_400, h: 3600, m: 60, s: 1 }[m[2] as "w" | "d" | "h" | "m" | "s"];
  return String(Number(m[1]) * mult);
}

function printPending(pending: PendingRemovalView[]): void {
  for (const p of pending)
    console.log(`  ${p.conversation}: devices ${p.devices.join(", ")} cut off; removal pending (next commit)`);
}

function userLine(u: StaffUser): string {
  const state = u.disabled ? "DISABLED" : "active";
  // Over the API these come from the server: one line each, whatever they hold.
  const f = [u.handle, u.role, u.clearance, u.units.join(",") || "-"].map(oneLine);
  return `${f.join("\t")}\t${state}\t${Number(u.activeDevices)} device(s)`;
}

/** What an entry says besides its type and time, for the human history and change lines. */
export function entryDetails(e: Record<string, unknown>): string {
  return Object.entries(e)
    .filter(([k]) => k !== "v" && k !== "type" && k !== "time")
    .map(([k, v]) => `${oneLine(k)}=${oneLine(Array.isArray(v) ? v.join(",") : String(v))}`)
    .join(" ");
}

/** The lifecycle command `positionals` name, if any. */
function lifecycleCommand(positionals: string[]): LifecycleRun | undefined {
  const [what, verb, a1, a2] = positionals;
  const U = ADMIN_USAGE;
  const one = (name: string, v: string | undefined) => str(v, name, U);
  const key = `${what ?? ""} ${verb ?? ""}`;
  switch (key) {
    case "user list":
      return async (ops, _p, values, json) => {
        if ((values.unit?.length ?? 0) > 1) throw new UsageError(`user list takes one --unit\n\n${U}`);
        const unit = values.unit?.[0];
        const users = await ops.listUsers(unit);
        if (json) printJson({ ...(unit === undefined ? {} : { unit }), users });
        else for (const u of users) console.log(userLine(u));
        return 0;
      };
    case "user history":
      return async (ops, _p, _v, json) => {
        const handle = one("HANDLE", a1);
        const history = await ops.history(handle);
        if (json) printJson({ handle, history });
        else
          for (const h of history)
            console.log(`#${Number(h.index)}\t${oneLine(h.time)}\t${oneLine(h.type)}\t${entryDetails(h.entry)}`);
        return 0;
      };
    case "user move":
      return async (ops, _p, values, json) => {
        const handle = one("HANDLE", a1);
        const from = str(values.from, "--from UNIT", U);
        const to = str(values.to, "--to UNIT", U);
        const r = await ops.move(handle, from, to);
        if (json) printJson(r);
        else {
          console.log(`${handle} moved from ${from} to ${to}`);
          printPending(r.pendingRemovals);
        }
        return 0;
      };
    case "user role":
      return async (ops, _p, _v, json) => {
        const handle = one("HANDLE", a1);
        const role = one(`ROLE (${ROLES.join(", ")})`, a2);
        if (!(ROLES as readonly string[]).includes(role))
          throw new UsageError(`ROLE must be one of ${ROLES.join(", ")}`);
        const r = await ops.setRole(handle, role);
        if (json) printJson(r);
        else console.log(r.changed ? `role of ${handle} set to ${role}` : `${handle} already has role ${role}`);
        return 0;
      };
    case "user disable":
      return async (ops, _p, _v, json) => {
        const handle = one("HANDLE", a1);
        const r = await ops.disable(handle);
        if (json) printJson(r);
        else {
          console.log(`${handle} disabled; devices revoked: ${r.revokedDevices.join(", ") || "none"}; logins refused`);
          printPending(r.pendingRemovals);
        }
        return 0;
      };
    case "user enable":
      return async (ops, _p, _v, json) => {
        const handle = one("HANDLE", a1);
        const r = await ops.enable(handle);
        if (json) printJson(r);
        else console.log(`${handle} enabled; their old devices stay revoked: give a new code (valise admin user code)`);
        return 0;
      };
    case "unit members":
      return async (ops, _p, _v, json) => {
        const unit = one("UNIT", a1);
        const members = await ops.unitMembers(unit);
        if (json) printJson({ unit, members });
        else for (const u of members) console.log(userLine(u));
        return 0;
      };
    case "unit share":
      return async (ops, _p, values, json) => {
        const unit = one("UNIT", a1);
        const since = shareSince(str(values.since, "--since DURATION|all", U));
        const r = await ops.unitShare(unit, since);
        if (json) printJson(r);
        else
          console.log(
            !r.changed
              ? `${unit} already shares ${since === "all" ? "everything" : `the last ${since} s`}`
              : since === "all"
                ? `${unit} shares every key it holds with members who join later`
                : `${unit} shares with members who join later the keys of the last ${since} s`,
          );
        return 0;
      };
    case "archive assign":
      return async (ops, _p, _v, json) => {
        const handle = one("USER", a1);
        const unit = one("UNIT", a2);
        const r = await ops.assignArchive(unit, handle);
        if (json) printJson(r);
        else console.log(`${handle} is now the records archive of ${unit}`);
        return 0;
      };
    case "archive remove":
      return async (ops, _p, _v, json) => {
        const handle = one("USER", a1);
        const unit = one("UNIT", a2);
        const r = await ops.removeArchive(unit, handle);
        if (json) printJson(r);
        else {
          console.log(`${handle} is no longer the records archive of ${unit}`);
          printPending(r.pendingRemovals);
        }
        return 0;
      };
    case "unit member":
      return async (ops, _p, _v, json) => {
        const unit = one("UNIT", a2);
        const handle = one("HANDLE", positionals[4]);
        if (a1 === "add") {
          const r = await ops.addMember(unit, handle);
          if (json) printJson(r);
          else console.log(`${handle} is now a member of ${unit}`);
          return 0;
        }
        if (a1 === "remove") {
          const r = await ops.removeMember(unit, handle);
          if (json) printJson(r);
          else {
            console.log(`${handle} removed from ${unit}`);
            printPending(r.pendingRemovals);
          }
          return 0;
        }
        throw new UsageError(`unit member takes add or remove\n\n${U}`);
      };
    case "unit label":
      return async (ops, _p, _v, json) => {
        const unit = one("UNIT", a1);
        const label = canonicalLabel(one("LABEL", a2));
        const r = await ops.unitLabel(unit, label);
        if (json) printJson(r);
        else console.log(`highest label of ${unit} set to ${r.maxLabel}`);
        return 0;
      };
    default:
      return undefined;
  }
}

/** 604800000 → "7 days", 5400000 → "90 minutes". */
function humanDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
    [1000, "second"],
  ];
  for (const [n, name] of units) if (ms % n === 0) return `${ms / n} ${name}${ms / n === 1 ? "" : "s"}`;
  return `${ms} ms`;
}
