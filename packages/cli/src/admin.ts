import { resolve } from "node:path";
import { loadOrCreateLogKey, openStore, ROLES, type Role } from "@valise/server";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { BUNDLE_ENV_HELP, bundleTrust } from "./bundle.js";
import { ValiseError, canonicalLabel } from "@valise/core";
import { openClient } from "./client-commands.js";

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
  unit add UNIT [--max-label LABEL]            create a unit (e.g. HQ/ASIA-1, EMB/BEIJING)
  unit list [--json]
  user add HANDLE [--unit UNIT]… [--clearance LABEL] [--role user|officer|admin] [--json]
                                               create a user; prints a one-time enrollmentCode; with --json, the
                                               enrollment bundle: also logKey, witnesses, quorum (for valise
                                               enroll --bundle), which the device pins
  user code HANDLE [--json]                    a new one-time enrollmentCode (and bundle) for another device
  user show HANDLE [--json]
  device revoke DEVICE_ID                      revoke a device at once
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
Every change above is appended to the directory log (key transparency) in the same transaction.
Options: --data DIR (default ./valise-data); VALISE_DATABASE_URL selects PostgreSQL;
  VALISE_LOG_KEY supplies the log signing key instead of DIR/log-key.
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
      json: { type: "boolean" },
      witness: { type: "string", multiple: true },
      "witness-quorum": { type: "string" },
      officer: { type: "string" },
      profile: { type: "string" },
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
  const dataDir = resolve(values.data ?? "./valise-data");
  process.umask(0o077);
  const store = await openStore({ dataDir, databaseUrl: process.env.VALISE_DATABASE_URL });
  try {
    const [what, verb, arg] = positionals;
    /** The trust anchors a device pins at enrollment (the log key is pinned in the database as by `log key`). */
    const bundle = async () => {
      const key = loadOrCreateLogKey({ dataDir });
      await store.directory.log.pinVerifierKey(key.vkey);
      const t = bundleTrust(key.vkey, { witness: values.witness, quorum: values["witness-quorum"] });
      return { logKey: t.logKey, witnesses: t.witnesses, quorum: t.quorum, transparency: t.note };
    };
    const key = `${what ?? ""} ${verb ?? ""}`;
    switch (key) {
      case "unit add": {
        const unit = str(arg, "UNIT", ADMIN_USAGE);
        await store.directory.addUnit(unit, values["max-label"] ?? "SECRET");
        if (values.json) printJson({ unit });
        else console.log(`unit ${unit} added`);
        return 0;
      }
      case "unit list": {
        const units = await store.directory.listUnits();
        if (values.json) printJson({ units });
        else for (const u of units) console.log(`${u.name}\t(max ${u.maxLabel})`);
        return 0;
      }
      case "user add": {
        const handle = str(arg, "HANDLE", ADMIN_USAGE);
        const role = (values.role ?? "user") as Role;
        if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(", ")}`);
        const anchors = values.json ? await bundle() : {};
        const r = await store.directory.addUser({
          handle,
          units: values.unit ?? [],
          clearance: values.clearance ?? "UNCLASSIFIED",
          role,
        });
        if (values.json)
          printJson({
            handle,
            enrollmentCode: r.enrollmentCode,
            expiresAt: new Date(r.expiresAt).toISOString(),
            ...anchors,
          });
        else console.log(`user ${handle} added; one-time enrollment code (valid 7 days): ${r.enrollmentCode}`);
        return 0;
      }
      case "user code": {
        const handle = str(arg, "HANDLE", ADMIN_USAGE);
        const anchors = values.json ? await bundle() : {};
        const r = await store.directory.newEnrollmentCode(handle);
        if (values.json)
          printJson({
            handle,
            enrollmentCode: r.enrollmentCode,
            expiresAt: new Date(r.expiresAt).toISOString(),
            ...anchors,
          });
        else console.log(`one-time enrollment code for ${handle} (valid 7 days): ${r.enrollmentCode}`);
        return 0;
      }
      case "user show": {
        const u = await store.directory.getUser(str(arg, "HANDLE", ADMIN_USAGE));
        if (!u) throw new UsageError(`no user ${arg ?? ""}`);
        const out = {
          ...u,
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
            `${u.handle} role=${u.role} clearance=${u.clearance} units=${u.units.join(",")}\n${out.devices.map((d) => `  ${d.id} ${d.name} ${d.revokedAt ? "REVOKED" : ""}`).join("\n")}`,
          );
        return 0;
      }
      case "log key": {
        const key = loadOrCreateLogKey({ dataDir });
        await store.directory.log.pinVerifierKey(key.vkey);
        if (values.json) printJson({ origin: key.origin, vkey: key.vkey });
        else console.log(key.vkey);
        return 0;
      }
      case "device revoke": {
        await store.directory.revokeDevice(str(arg, "DEVICE_ID", ADMIN_USAGE));
        console.log(`device ${arg ?? ""} revoked`);
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
