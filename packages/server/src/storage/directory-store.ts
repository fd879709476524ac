/**
 * Directory: units, users, clearances, roles, devices, enrollment codes, one-time key packages, sessions.
 * Every directory change (unit or user created, device enrolled or revoked, clearance set) appends its entry to the
 * directory log in the same transaction as the change itself (DESIGN.md §3 "Key transparency").
 */
import type { Kysely, Transaction } from "kysely";
import type SQLite from "better-sqlite3";
import {
  ValiseError,
  canonicalLabel,
  dominates,
  parseLabel,
  parseUnitName,
  parseUserHandle,
  toBase64,
  parseDirectoryEntry,
  parseShareSince,
  type AuditAction,
  type DirectoryEntry,
} from "@valise/core";
import { isTimeZone } from "@valise/detect";
import type { Database } from "./schema.js";
import { DirectoryLog } from "./directory-log.js";
import { ADMIN_CLI, newAuditId, type AuditLog, type AuditOperator } from "./audit-log.js";
import { normalizeEnrollmentCode, randomEnrollmentCode, randomToken, sha256Hex } from "./secrets.js";

export type Role = "user" | "officer" | "admin" | "archivist";
export const ROLES: readonly Role[] = ["user", "officer", "admin", "archivist"];
export const ENROLLMENT_TTL_MS = 7 * 24 * 3600 * 1000;
export const SESSION_TTL_MS = 3600 * 1000;
export const CHALLENGE_TTL_MS = 60 * 1000;
const MAX_KEY_PACKAGES_PER_DEVICE = 200;

export interface DeviceRecord {
  id: string;
  handle: string;
  name: string;
  signaturePublicKey: Uint8Array;
  createdAt: number;
  revokedAt: number | null;
}
export interface UserRecord {
  handle: string;
  clearance: string;
  role: Role;
  units: string[];
  /** The units (among `units`) the user is the records archive of (`archive.assign`). */
  archives: string[];
  devices: DeviceRecord[];
  /** When the user was disabled (offboarded); null while active. */
  disabledAt: number | null;
}

/** One line of `listUsers`. */
export interface UserSummary {
  handle: string;
  units: string[];
  clearance: string;
  role: Role;
  disabled: boolean;
  disabledAt: number | null;
  /** Devices not revoked. */
  activeDevices: number;
}

/** A directory log entry with its index (the change feed, a user's history). */
export interface LogEntryView {
  index: number;
  /** The entry's own time (ISO 8601). */
  time: string;
  type: DirectoryEntry["type"];
  entry: DirectoryEntry;
}

/** Devices cut off from conversations by a change, by conversation (they stay until a member commits the Remove). */
export type PendingRemovals = { conversation: string; devices: string[] }[];

/** Unit channels and link conversations admit members of their unit(s) only; other kinds do not depend on units. */
function entitledByUnits(
  c: { kind: string; unit: string | null; from_unit: string | null },
  units: Set<string>,
): boolean {
  if (c.kind !== "unit" && c.kind !== "link") return true;
  return (
    (c.unit !== null && units.has(c.unit)) || (c.kind === "link" && c.from_unit !== null && units.has(c.from_unit))
  );
}

function viewEntry(index: number, data: Uint8Array): LogEntryView[] {
  const p = parseDirectoryEntry(data);
  if (!p.ok) return [];
  return [{ index, time: new Date(p.entry.time).toISOString(), type: p.entry.type, entry: p.entry }];
}

function toDevice(r: Database["devices"]): DeviceRecord {
  return {
    id: r.id,
    handle: r.handle,
    name: r.name,
    signaturePublicKey: new Uint8Array(r.signature_public_key),
    createdAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

export class DirectoryStore {
  /** The directory log: every change below appends to it in its own transaction. */
  readonly log: DirectoryLog;
  /** Lifetime of a login session and of a one-time enrollment code (`valise serve --session-ttl`, `--enrollment-code-ttl`). */
  sessionTtlMs = SESSION_TTL_MS;
  enrollmentTtlMs = ENROLLMENT_TTL_MS;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
    private readonly audit?: AuditLog,
    sqlite?: SQLite.Database,
  ) {
    this.log = new DirectoryLog(db, now, sqlite);
  }

  /** Audit a directory change by an operator, in the change's own transaction (DESIGN.md §3 "Audit log"). */
  private async auditChange(
    trx: Transaction<Database>,
    by: AuditOperator,
    e: { action: AuditAction; user: string; device: string | null; time: number; unit?: string },
  ): Promise<void> {
    if (!this.audit) return;
    // The object is the affected user (or unit); the unit is the one concerned, else the user's first unit.
    const unit =
      e.unit !== undefined
        ? { unit: e.unit }
        : await trx
            .selectFrom("user_units")
            .select("unit")
            .where("handle", "=", e.user)
            .orderBy("unit")
            .limit(1)
            .executeTakeFirst();
    await this.audit.appendEventsIn(trx, [
      {
        id: newAuditId(),
        time: new Date(e.time).toISOString(),
        actor: by.actor,
        device: by.device ?? null,
        source: by.source,
        client: by.client ?? null,
        action: e.action,
        object: e.user,
        target_device: e.device,
        label: null,
        unit: unit?.unit ?? null,
        bytes: 0,
        canary: false,
        outcome: "ok",
      },
    ]);
  }

  async addUnit(name: string, maxLabel = "SECRET", by: AuditOperator = ADMIN_CLI): Promise<void> {
    const unit = parseUnitName(name);
    const label = canonicalLabel(maxLabel);
    await this.log.change(async (trx, append) => {
      const existing = await trx.selectFrom("units").select("name").where("name", "=", unit).executeTakeFirst();
      if (existing) throw new ValiseError("conflict", `unit ${unit} already exists`);
      const time = this.now();
      await trx.insertInto("units").values({ name: unit, max_label: label, created_at: time }).execute();
      await append({ v: 1, type: "unit.add", unit, maxLabel: label, time });
      await this.auditChange(trx, by, { action: "directory.unit.add", user: unit, unit, device: null, time });
    });
  }

  /**
   * Sets a unit's highest label (`unit.label`). Conversations already created keep their label: lowering the
   * maximum only limits what new unit conversations may carry.
   */
  async setUnitMaxLabel(
    name: string,
    maxLabel: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ unit: string; maxLabel: string }> {
    const unit = parseUnitName(name);
    const label = canonicalLabel(maxLabel);
    return this.log.change(async (trx, append) => {
      const r = await trx.updateTable("units").set({ max_label: label }).where("name", "=", unit).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new ValiseError("not_found", `no unit ${unit}`);
      const time = this.now();
      await append({ v: 1, type: "unit.label", unit, maxLabel: label, time });
      await this.auditChange(trx, by, { action: "directory.unit.label", user: unit, unit, device: null, time });
      return { unit, maxLabel: label };
    });
  }

  /**
   * Sets (or with null clears) a unit's IANA time zone, e.g. Asia/Tokyo: detection profiles its members' hours of
   * day in it, daylight saving included. Audited (`directory.unit.tz`); not a directory log entry (no key changes).
   */
  async setUnitTimeZone(
    name: string,
    tz: string | null,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ unit: string; tz: string | null }> {
    const unit = parseUnitName(name);
    if (tz !== null && !isTimeZone(tz))
      throw new ValiseError("bad_request", `${tz} is not an IANA time zone (e.g. Asia/Tokyo, Europe/Paris, UTC)`);
    return this.db.transaction().execute(async (trx) => {
      const r = await trx.updateTable("units").set({ tz }).where("name", "=", unit).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new ValiseError("not_found", `no unit ${unit}`);
      await this.auditChange(trx, by, {
        action: "directory.unit.tz",
        user: unit,
        unit,
        device: null,
        time: this.now(),
      });
      return { unit, tz };
    });
  }

  /** Every unit's time zone that is set: unit → IANA zone (for the detection engine). */
  async unitTimeZones(): Promise<Record<string, string>> {
    const rows = await this.db.selectFrom("units").select(["name", "tz"]).where("tz", "is not", null).execute();
    return Object.fromEntries(rows.map((r) => [r.name, r.tz!]));
  }

  /** Units with their highest label, (when not `all`) their `unit.share` window in seconds, and their time zone. */
  async listUnits(): Promise<{ name: string; maxLabel: string; share?: string; tz?: string }[]> {
    const rows = await this.db.selectFrom("units").selectAll().orderBy("name").execute();
    return rows.map((r) => ({
      name: r.name,
      maxLabel: r.max_label,
      ...(r.share_since ? { share: r.share_since } : {}),
      ...(r.tz ? { tz: r.tz } : {}),
    }));
  }

  async unitExists(name: string): Promise<boolean> {
    return !!(await this.db.selectFrom("units").select("name").where("name", "=", name).executeTakeFirst());
  }

  /** Creates a user and returns a one-time enrollment code for their first device. */
  async addUser(
    input: {
      handle: string;
      units: string[];
      clearance: string;
      role: Role;
    },
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ enrollmentCode: string; expiresAt: number }> {
    const handle = parseUserHandle(input.handle);
    const clearance = canonicalLabel(input.clearance);
    if (!ROLES.includes(input.role)) throw new ValiseError("bad_request", `role must be one of ${ROLES.join(", ")}`);
    const units = input.units.map((u) => parseUnitName(u));
    return this.log.change(async (trx, append) => {
      if (await trx.selectFrom("users").select("handle").where("handle", "=", handle).executeTakeFirst())
        throw new ValiseError("conflict", `user ${handle} already exists`);
      for (const u of units) {
        if (!(await trx.selectFrom("units").select("name").where("name", "=", u).executeTakeFirst()))
          throw new ValiseError("not_found", `unit ${u} does not exist (add it with: valise admin unit add ${u})`);
      }
      const time = this.now();
      await trx
        .insertInto("users")
        .values({ handle, clearance, role: input.role, created_at: time, disabled_at: null })
        .execute();
      for (const u of new Set(units)) await trx.insertInto("user_units").values({ handle, unit: u }).execute();
      await append({ v: 1, type: "user.add", user: handle, units, clearance, role: input.role, time });
      await this.auditChange(trx, by, { action: "directory.user.add", user: handle, device: null, time });
      return this.insertCode(trx, handle, by.actor);
    });
  }

  /** A new one-time enrollment code for another device of an existing user. */
  async newEnrollmentCode(
    handle: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ enrollmentCode: string; expiresAt: number }> {
    const h = parseUserHandle(handle);
    const u = await this.db.selectFrom("users").select("disabled_at").where("handle", "=", h).executeTakeFirst();
    if (!u) throw new ValiseError("not_found", `no user ${h}`);
    if (u.disabled_at !== null)
      throw new ValiseError("conflict", `user ${h} is disabled: enable them first (valise admin user enable ${h})`);
    return this.insertCode(this.db, h, by.actor);
  }

  private async insertCode(
    db: Kysely<Database>,
    handle: string,
    issuedBy: string,
  ): Promise<{ enrollmentCode: string; expiresAt: number }> {
    const code = randomEnrollmentCode();
    const expiresAt = this.now() + this.enrollmentTtlMs;
    await db
      .insertInto("enrollment_codes")
      .values({
        code_hash: sha256Hex(normalizeEnrollmentCode(code)),
        handle,
        expires_at: expiresAt,
        used_at: null,
        issued_by: issuedBy,
      })
      .execute();
    return { enrollmentCode: code, expiresAt };
  }

  /**
   * Redeems a one-time code: in one transaction marks it used, creates the device, stores its first key packages.
   * A used, expired or unknown code is the same error (no oracle).
   */
  async redeemEnrollment(
    code: string,
    device: { id: string; name: string; signaturePublicKey: Uint8Array },
    keyPackages: { ref: string; data: Uint8Array }[],
    expectHandle: (handle: string) => void,
    /** The request's address and client: the enrolment method is audited with them (`device.enrolment`). */
    via?: { source: string; client: string | null },
  ): Promise<UserRecord> {
    const hash = sha256Hex(normalizeEnrollmentCode(code));
    const now = this.now();
    const handle = await this.log.change(async (trx, append) => {
      const row = await trx.selectFrom("enrollment_codes").selectAll().where("code_hash", "=", hash).executeTakeFirst();
      if (!row || row.used_at !== null || Number(row.expires_at) < now)
        throw new ValiseError("enrollment_code_invalid", "enrollment code is invalid, expired or already used");
      expectHandle(row.handle);
      const owner = await trx
        .selectFrom("users")
        .select("disabled_at")
        .where("handle", "=", row.handle)
        .executeTakeFirst();
      if (!owner || owner.disabled_at !== null)
        throw new ValiseError("enrollment_code_invalid", "enrollment code is invalid, expired or already used");
      const upd = await trx
        .updateTable("enrollment_codes")
        .set({ used_at: now })
        .where("code_hash", "=", hash)
        .where("used_at", "is", null)
        .executeTakeFirst();
      if (Number(upd.numUpdatedRows) !== 1)
        throw new ValiseError("enrollment_code_invalid", "enrollment code already used");
      const dup = await trx
        .selectFrom("devices")
        .select("id")
        .where((eb) => eb.or([eb("id", "=", device.id), eb("signature_public_key", "=", device.signaturePublicKey)]))
        .executeTakeFirst();
      if (dup) throw new ValiseError("conflict", "device id or key already registered");
      await trx
        .insertInto("devices")
        .values({
          id: device.id,
          handle: row.handle,
          name: device.name,
          signature_public_key: device.signaturePublicKey,
          created_at: now,
          revoked_at: null,
        })
        .execute();
      for (const kp of keyPackages)
        await trx
          .insertInto("key_packages")
          .values({ ref: kp.ref, device_id: device.id, data: kp.data, created_at: now })
          .execute();
      await append({
        v: 1,
        type: "device.add",
        user: row.handle,
        device: device.id,
        name: device.name,
        key: toBase64(device.signaturePublicKey),
        time: now,
      });
      if (via && this.audit) {
        const unit = await trx
          .selectFrom("user_units")
          .select("unit")
          .where("handle", "=", row.handle)
          .orderBy("unit")
          .limit(1)
          .executeTakeFirst();
        // How the device came: the code and who issued it (issue 16), atomically with the enrolment.
        await this.audit.appendEventsIn(trx, [
          {
            id: newAuditId(),
            time: new Date(now).toISOString(),
            actor: row.handle,
            device: device.id,
            source: via.source,
            client: via.client,
            action: "device.enrolment",
            object: `code:${row.issued_by ?? "unknown"}`,
            target_device: device.id,
            label: null,
            unit: unit?.unit ?? null,
            bytes: 0,
            canary: false,
            outcome: "ok",
          },
        ]);
      }
      return row.handle;
    });
    const user = await this.getUser(handle);
    if (!user) throw new ValiseError("internal", "user vanished during enrollment");
    return user;
  }

  async getUser(handle: string): Promise<UserRecord | null> {
    const u = await this.db.selectFrom("users").selectAll().where("handle", "=", handle).executeTakeFirst();
    if (!u) return null;
    const units = await this.db
      .selectFrom("user_units")
      .select("unit")
      .where("handle", "=", handle)
      .orderBy("unit")
      .execute();
    const devices = await this.db
      .selectFrom("devices")
      .selectAll()
      .where("handle", "=", handle)
      .orderBy("created_at")
      .execute();
    return {
      handle: u.handle,
      clearance: u.clearance,
      role: u.role as Role,
      units: units.map((r) => r.unit),
      archives: await this.archivesOf(handle),
      devices: devices.map(toDevice),
      disabledAt: u.disabled_at === null ? null : Number(u.disabled_at),
    };
  }

  /** Whether the user exists and is disabled (offboarded). */
  async isDisabled(handle: string): Promise<boolean> {
    const u = await this.db.selectFrom("users").select("disabled_at").where("handle", "=", handle).executeTakeFirst();
    return !!u && u.disabled_at !== null;
  }

  /**
   * The unit's members. Disabled users are left out (they get no keys) unless `includeDisabled` (admin listings).
   */
  async unitMembers(unit: string, opts: { includeDisabled?: boolean } = {}): Promise<string[]> {
    let q = this.db
      .selectFrom("user_units as m")
      .innerJoin("users as u", "u.handle", "m.handle")
      .select("m.handle")
      .where("m.unit", "=", unit);
    if (!opts.includeDisabled) q = q.where("u.disabled_at", "is", null);
    const rows = await q.orderBy("m.handle").execute();
    return rows.map((r) => r.handle);
  }

  /** Every user (or the members of one unit) with units, clearance, role and state, by handle. */
  async listUsers(opts: { unit?: string } = {}): Promise<UserSummary[]> {
    let q = this.db.selectFrom("users").selectAll();
    if (opts.unit !== undefined) {
      const unit = parseUnitName(opts.unit);
      if (!(await this.unitExists(unit))) throw new ValiseError("not_found", `no unit ${unit}`);
      q = q.where("handle", "in", this.db.selectFrom("user_units").select("handle").where("unit", "=", unit));
    }
    const users = await q.orderBy("handle").execute();
    const memberships = await this.db.selectFrom("user_units").selectAll().orderBy("unit").execute();
    const devices = await this.db
      .selectFrom("devices")
      .select(["handle", (eb) => eb.fn.countAll<number>().as("n")])
      .where("revoked_at", "is", null)
      .groupBy("handle")
      .execute();
    const active = new Map(devices.map((d) => [d.handle, Number(d.n)]));
    return users.map((u) => ({
      handle: u.handle,
      units: memberships.filter((m) => m.handle === u.handle).map((m) => m.unit),
      clearance: u.clearance,
      role: u.role as Role,
      disabled: u.disabled_at !== null,
      disabledAt: u.disabled_at === null ? null : Number(u.disabled_at),
      activeDevices: active.get(u.handle) ?? 0,
    }));
  }

  /**
   * Makes the user a member of a unit (`member.add`), audited. Where the user is now entitled again, pending
   * removals the membership had caused are lifted.
   */
  async addMember(
    handle: string,
    unitName: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ handle: string; unit: string }> {
    const r = await this.unitChange(handle, unitName, (trx, append, h, unit) =>
      this.memberAddIn(trx, append, h, unit, by),
    );
    return { handle: r.handle, unit: r.unit };
  }

  /**
   * Removes the user from a unit (`member.remove`), audited; in the same transaction their devices become pending
   * removal in the unit's channels and in link conversations of that unit (unless the user is still in the link's
   * other unit). Returns those pending removals among current members.
   */
  async removeMember(
    handle: string,
    unitName: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ handle: string; unit: string; pendingRemovals: PendingRemovals }> {
    return this.unitChange(handle, unitName, (trx, append, h, unit) => this.memberRemoveIn(trx, append, h, unit, by));
  }

  /** A posting: `member.remove` from one unit and `member.add` to another, in one transaction (see removeMember). */
  async moveUser(
    handle: string,
    fromUnit: string,
    toUnit: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ handle: string; from: string; to: string; pendingRemovals: PendingRemovals }> {
    const h0 = parseUserHandle(handle);
    const from0 = parseUnitName(fromUnit);
    const to = parseUnitName(toUnit);
    if (from0 === to) throw new ValiseError("bad_request", "--from and --to name the same unit");
    const r = await this.unitChange(h0, from0, async (trx, append, h, from) => {
      await this.memberRemoveIn(trx, append, h, from, by);
      await this.memberAddIn(trx, append, h, to, by);
    });
    return { handle: r.handle, from: r.unit, to, pendingRemovals: r.pendingRemovals };
  }

  /**
   * One change of a user's place in a unit (a membership or an archive assignment, made or ended) in one directory
   * log transaction: `change` checks, writes the rows and appends the entries and audit events at `time`; then the
   * user's pending removals in unit channels and links are recomputed in the same transaction (lifted where the user
   * is entitled again). Answers them, among current members.
   */
  private unitChange(
    handle: string,
    unitName: string,
    change: (
      trx: Transaction<Database>,
      append: (e: DirectoryEntry) => Promise<number>,
      handle: string,
      unit: string,
      time: number,
    ) => Promise<void>,
  ): Promise<{ handle: string; unit: string; pendingRemovals: PendingRemovals }> {
    const h = parseUserHandle(handle);
    const unit = parseUnitName(unitName);
    return this.log.change(async (trx, append) => {
      const time = this.now();
      await change(trx, append, h, unit, time);
      const pendingRemovals = await this.refreshUnitRemovals(trx, h, time);
      return { handle: h, unit, pendingRemovals };
    });
  }

  private async requireUser(trx: Transaction<Database>, handle: string) {
    const u = await trx.selectFrom("users").selectAll().where("handle", "=", handle).executeTakeFirst();
    if (!u) throw new ValiseError("not_found", `no user ${handle}`);
    return u;
  }

  private async memberAddIn(
    trx: Transaction<Database>,
    append: (e: DirectoryEntry) => Promise<number>,
    handle: string,
    unit: string,
    by: AuditOperator,
  ): Promise<void> {
    await this.requireUser(trx, handle);
    if (!(await trx.selectFrom("units").select("name").where("name", "=", unit).executeTakeFirst()))
      throw new ValiseError("not_found", `unit ${unit} does not exist (add it with: valise admin unit add ${unit})`);
    const have = await trx
      .selectFrom("user_units")
      .select("unit")
      .where("handle", "=", handle)
      .where("unit", "=", unit)
      .executeTakeFirst();
    if (have) throw new ValiseError("conflict", `${handle} is already a member of ${unit}`);
    await trx.insertInto("user_units").values({ handle, unit }).execute();
    const time = this.now();
    await append({ v: 1, type: "member.add", user: handle, unit, time });
    await this.auditChange(trx, by, { action: "directory.member.add", user: handle, unit, device: null, time });
  }

  private async memberRemoveIn(
    trx: Transaction<Database>,
    append: (e: DirectoryEntry) => Promise<number>,
    handle: string,
    unit: string,
    by: AuditOperator,
  ): Promise<void> {
    await this.requireUser(trx, handle);
    if (await this.isArchiveIn(trx, handle, unit))
      throw new ValiseError(
        "conflict",
        `${handle} is the archive of ${unit}, not a member: valise admin archive remove ${handle} ${unit}`,
      );
    const r = await trx
      .deleteFrom("user_units")
      .where("handle", "=", handle)
      .where("unit", "=", unit)
      .executeTakeFirst();
    if (Number(r.numDeletedRows) !== 1) throw new ValiseError("not_found", `${handle} is not a member of ${unit}`);
    const time = this.now();
    await append({ v: 1, type: "member.remove", user: handle, unit, time });
    await this.auditChange(trx, by, { action: "directory.member.remove", user: handle, unit, device: null, time });
  }

  /**
   * After a membership change: every unit channel and link conversation of the user's active devices (past or
   * current membership) is pending removal (reason `unit`) where the user belongs to none of its units, and stops
   * being so where they belong again. Returns the pending removals among current members.
   */
  private async refreshUnitRemovals(
    trx: Transaction<Database>,
    handle: string,
    time: number,
  ): Promise<PendingRemovals> {
    const units = await this.unitsIn(trx, handle);
    const cleared = parseLabel((await this.requireUser(trx, handle)).clearance);
    const rows = await trx
      .selectFrom("conversation_members as m")
      .innerJoin("devices as d", "d.id", "m.device_id")
      .innerJoin("conversations as c", "c.id", "m.conversation_id")
      .select(["m.conversation_id", "m.device_id", "m.left_seq", "c.kind", "c.unit", "c.from_unit", "c.label"])
      .where("d.handle", "=", handle)
      .where("d.revoked_at", "is", null)
      .where("c.kind", "in", ["unit", "link"])
      .orderBy("m.conversation_id")
      .orderBy("m.device_id")
      .execute();
    const pending = new Map<string, string[]>();
    for (const r of rows) {
      if (entitledByUnits(r, units)) {
        // A member again; a removal the clearance still calls for stays (reason `clearance`).
        await this.liftRemoval(trx, r, "unit", dominates(cleared, parseLabel(r.label)) ? null : "clearance");
        continue;
      }
      const have = await trx
        .selectFrom("pending_removals")
        .select("reason")
        .where("conversation_id", "=", r.conversation_id)
        .where("device_id", "=", r.device_id)
        .executeTakeFirst();
      if (!have)
        await trx
          .insertInto("pending_removals")
          .values({ conversation_id: r.conversation_id, device_id: r.device_id, reason: "unit", created_at: time })
          .execute();
      if (r.left_seq === null) pending.set(r.conversation_id, [...(pending.get(r.conversation_id) ?? []), r.device_id]);
    }
    return [...pending].map(([conversation, devices]) => ({ conversation, devices }));
  }

  private async unitsIn(trx: Transaction<Database>, handle: string): Promise<Set<string>> {
    const rows = await trx.selectFrom("user_units").select("unit").where("handle", "=", handle).execute();
    return new Set(rows.map((r) => r.unit));
  }

  /**
   * One reason for a pending removal is gone: the removal is deleted, or kept under the reason that still holds
   * (`still`). Removals for another reason (a revocation) are left alone.
   */
  private async liftRemoval(
    trx: Transaction<Database>,
    r: { conversation_id: string; device_id: string },
    reason: "unit" | "clearance",
    still: "unit" | "clearance" | null,
  ): Promise<void> {
    if (still === null)
      await trx
        .deleteFrom("pending_removals")
        .where("conversation_id", "=", r.conversation_id)
        .where("device_id", "=", r.device_id)
        .where("reason", "=", reason)
        .execute();
    else
      await trx
        .updateTable("pending_removals")
        .set({ reason: still })
        .where("conversation_id", "=", r.conversation_id)
        .where("device_id", "=", r.device_id)
        .where("reason", "=", reason)
        .execute();
  }

  private async isArchiveIn(trx: Transaction<Database>, handle: string, unit: string): Promise<boolean> {
    return !!(await trx
      .selectFrom("archive_units")
      .select("unit")
      .where("handle", "=", handle)
      .where("unit", "=", unit)
      .executeTakeFirst());
  }

  /**
   * Records archive (issue 14): the user, whose role must be `archivist`, becomes the archive of the unit
   * (`archive.assign`): a member of its channels and links (a user_units row, marked in archive_units) whose devices
   * receive every key of the unit. Refused when the user is already a member, disabled, or not cleared for the
   * unit's highest label (an archive that cannot hold the unit's record is no archive). Audited.
   */
  async assignArchive(
    handle: string,
    unitName: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ handle: string; unit: string }> {
    const r = await this.unitChange(handle, unitName, async (trx, append, h, unit, time) => {
      const u = await this.requireUser(trx, h);
      if (u.role !== "archivist")
        throw new ValiseError(
          "bad_request",
          `${h} has the role ${u.role}: only an archivist can be an archive (valise admin user role ${h} archivist)`,
        );
      if (u.disabled_at !== null) throw new ValiseError("conflict", `${h} is disabled`);
      const row = await trx.selectFrom("units").select("max_label").where("name", "=", unit).executeTakeFirst();
      if (!row) throw new ValiseError("not_found", `no unit ${unit}`);
      if (!dominates(parseLabel(u.clearance), parseLabel(row.max_label)))
        throw new ValiseError(
          "not_cleared",
          `${h} is cleared ${u.clearance}, below ${unit}'s highest label ${row.max_label}: an archive must be cleared for everything the unit may carry`,
        );
      const have = await trx
        .selectFrom("user_units")
        .select("unit")
        .where("handle", "=", h)
        .where("unit", "=", unit)
        .executeTakeFirst();
      if (have)
        throw new ValiseError(
          "conflict",
          (await this.isArchiveIn(trx, h, unit))
            ? `${h} is already the archive of ${unit}`
            : `${h} is a member of ${unit}; an archive is assigned to units it is not a member of`,
        );
      await trx.insertInto("user_units").values({ handle: h, unit }).execute();
      await trx.insertInto("archive_units").values({ handle: h, unit, created_at: time }).execute();
      await append({ v: 1, type: "archive.assign", user: h, unit, time });
      await this.auditChange(trx, by, { action: "directory.archive.assign", user: h, unit, device: null, time });
    });
    return { handle: r.handle, unit: r.unit };
  }

  /** The archive assignment ends (`archive.remove`): the user leaves the unit's channels and links. Audited. */
  async removeArchive(
    handle: string,
    unitName: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ handle: string; unit: string; pendingRemovals: PendingRemovals }> {
    return this.unitChange(handle, unitName, async (trx, append, h, unit, time) => {
      await this.requireUser(trx, h);
      if (!(await this.isArchiveIn(trx, h, unit)))
        throw new ValiseError("not_found", `${h} is not the archive of ${unit}`);
      await trx.deleteFrom("archive_units").where("handle", "=", h).where("unit", "=", unit).execute();
      await trx.deleteFrom("user_units").where("handle", "=", h).where("unit", "=", unit).execute();
      await append({ v: 1, type: "archive.remove", user: h, unit, time });
      await this.auditChange(trx, by, { action: "directory.archive.remove", user: h, unit, device: null, time });
    });
  }

  /** The units a user is the archive of. */
  async archivesOf(handle: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("archive_units")
      .select("unit")
      .where("handle", "=", handle)
      .orderBy("unit")
      .execute();
    return rows.map((r) => r.unit);
  }

  /**
   * How far back the unit shares keys with members who join later (`unit.share`): `all` (the default) or whole
   * seconds before the forward. Audited. Setting the same value writes nothing.
   */
  async setUnitShare(
    unitName: string,
    since: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ unit: string; since: string; changed: boolean }> {
    const unit = parseUnitName(unitName);
    if (parseShareSince(since) === null)
      throw new ValiseError("bad_request", "since must be all or a number of seconds (1 s to 100 years)");
    return this.log.change(async (trx, append) => {
      const row = await trx.selectFrom("units").select("share_since").where("name", "=", unit).executeTakeFirst();
      if (!row) throw new ValiseError("not_found", `no unit ${unit}`);
      if ((row.share_since ?? "all") === since) return { unit, since, changed: false };
      await trx
        .updateTable("units")
        .set({ share_since: since === "all" ? null : since })
        .where("name", "=", unit)
        .execute();
      const time = this.now();
      await append({ v: 1, type: "unit.share", unit, since, time });
      await this.auditChange(trx, by, { action: "directory.unit.share", user: unit, unit, device: null, time });
      return { unit, since, changed: true };
    });
  }

  /** Sets a user's role (`user.role`), audited as `directory.role.set`. Setting the same role writes nothing. */
  async setRole(
    handle: string,
    role: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ handle: string; role: Role; changed: boolean }> {
    const h = parseUserHandle(handle);
    if (!(ROLES as readonly string[]).includes(role))
      throw new ValiseError("bad_request", `role must be one of ${ROLES.join(", ")}`);
    return this.log.change(async (trx, append) => {
      const u = await this.requireUser(trx, h);
      if (u.role === role) return { handle: h, role: role as Role, changed: false };
      if (u.role === "archivist") {
        const a = await trx
          .selectFrom("archive_units")
          .select("unit")
          .where("handle", "=", h)
          .orderBy("unit")
          .execute();
        if (a.length > 0)
          throw new ValiseError(
            "conflict",
            `${h} is the archive of ${a.map((r) => r.unit).join(", ")}: end that first (valise admin archive remove ${h} UNIT)`,
          );
      }
      await trx.updateTable("users").set({ role }).where("handle", "=", h).execute();
      const time = this.now();
      await append({ v: 1, type: "user.role", user: h, role, time });
      await this.auditChange(trx, by, { action: "directory.role.set", user: h, device: null, time });
      return { handle: h, role: role as Role, changed: true };
    });
  }

  /**
   * Offboarding (`user.disable`), in one transaction: the user is marked disabled, every active device is revoked
   * with its own `device.revoke` entry and audit event (sessions and key packages deleted, pending removal in every
   * conversation it is in), unused enrollment codes are voided. History (messages, log, audit) is kept.
   */
  async disableUser(
    handle: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ handle: string; revokedDevices: string[]; pendingRemovals: PendingRemovals }> {
    const h = parseUserHandle(handle);
    return this.log.change(async (trx, append) => {
      const u = await this.requireUser(trx, h);
      if (u.disabled_at !== null) throw new ValiseError("conflict", `user ${h} is already disabled`);
      const time = this.now();
      await trx.updateTable("users").set({ disabled_at: time }).where("handle", "=", h).execute();
      await trx.deleteFrom("enrollment_codes").where("handle", "=", h).where("used_at", "is", null).execute();
      await append({ v: 1, type: "user.disable", user: h, time });
      await this.auditChange(trx, by, { action: "directory.user.disable", user: h, device: null, time });
      const devices = await trx
        .selectFrom("devices")
        .select("id")
        .where("handle", "=", h)
        .where("revoked_at", "is", null)
        .orderBy("id")
        .execute();
      const pending = new Map<string, string[]>();
      for (const d of devices) {
        for (const c of await this.revokeIn(trx, append, d.id, by, time))
          pending.set(c, [...(pending.get(c) ?? []), d.id]);
      }
      await trx.deleteFrom("sessions").where("handle", "=", h).execute();
      return {
        handle: h,
        revokedDevices: devices.map((d) => d.id),
        pendingRemovals: [...pending].map(([conversation, devs]) => ({ conversation, devices: devs })),
      };
    });
  }

  /** Reverses `disableUser` (`user.enable`). Devices stay revoked: a new enrollment code brings the user back. */
  async enableUser(handle: string, by: AuditOperator = ADMIN_CLI): Promise<{ handle: string }> {
    const h = parseUserHandle(handle);
    return this.log.change(async (trx, append) => {
      const u = await this.requireUser(trx, h);
      if (u.disabled_at === null) throw new ValiseError("conflict", `user ${h} is not disabled`);
      await trx.updateTable("users").set({ disabled_at: null }).where("handle", "=", h).execute();
      const time = this.now();
      await append({ v: 1, type: "user.enable", user: h, time });
      await this.auditChange(trx, by, { action: "directory.user.enable", user: h, device: null, time });
      return { handle: h };
    });
  }

  /** Directory log entries from index `after` + 1 on (at most `limit`), decoded, with their indices. */
  async changes(after: number, limit: number): Promise<{ size: number; changes: LogEntryView[] }> {
    const size = await this.log.size();
    const start = Math.max(0, after + 1);
    const count = Math.max(0, Math.min(limit, size - start));
    const data = count > 0 ? await this.log.entries(start, count) : [];
    return { size, changes: data.flatMap((d, i) => viewEntry(start + i, d)) };
  }

  /** Every directory log entry about a user (user.add, clearance, role, membership, state, devices), in log order. */
  async userHistory(handle: string): Promise<LogEntryView[]> {
    const h = parseUserHandle(handle);
    if (!(await this.db.selectFrom("users").select("handle").where("handle", "=", h).executeTakeFirst()))
      throw new ValiseError("not_found", `no user ${h}`);
    const size = await this.log.size();
    const out: LogEntryView[] = [];
    for (let start = 0; start < size; start += 1000) {
      const data = await this.log.entries(start, Math.min(1000, size - start));
      data.forEach((d, i) => {
        for (const v of viewEntry(start + i, d)) if ("user" in v.entry && v.entry.user === h) out.push(v);
      });
    }
    return out;
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    const r = await this.db.selectFrom("devices").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toDevice(r) : null;
  }

  async revokeDevice(id: string, by: AuditOperator = ADMIN_CLI): Promise<void> {
    await this.log.change(async (trx, append) => {
      await this.revokeIn(trx, append, id, by, this.now());
    });
  }

  /** Revokes an active device inside a directory change; returns the conversations it is now pending removal in. */
  private async revokeIn(
    trx: Transaction<Database>,
    append: (e: DirectoryEntry) => Promise<number>,
    id: string,
    by: AuditOperator,
    time: number,
  ): Promise<string[]> {
    const r = await trx
      .updateTable("devices")
      .set({ revoked_at: time })
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .returning("handle")
      .executeTakeFirst();
    if (!r) throw new ValiseError("not_found", `no active device ${id}`);
    await trx.deleteFrom("sessions").where("device_id", "=", id).execute();
    await trx.deleteFrom("key_packages").where("device_id", "=", id).execute();
    // Every group it is still in must remove it before anything new is sent there (DESIGN §3).
    const groups = await trx
      .selectFrom("conversation_members")
      .select("conversation_id")
      .where("device_id", "=", id)
      .where("left_seq", "is", null)
      .execute();
    for (const g of groups)
      await trx
        .insertInto("pending_removals")
        .values({ conversation_id: g.conversation_id, device_id: id, reason: "revoked", created_at: time })
        .onConflict((oc) => oc.columns(["conversation_id", "device_id"]).doUpdateSet({ reason: "revoked" }))
        .execute();
    await append({ v: 1, type: "device.revoke", user: r.handle, device: id, time });
    await this.auditChange(trx, by, { action: "directory.device.revoke", user: r.handle, device: id, time });
    return groups.map((g) => g.conversation_id);
  }

  /**
   * Sets a user's clearance (directory log entry and audit event in the same transaction). In that transaction too,
   * every conversation whose label the new clearance no longer dominates becomes *pending removal* for the user's
   * devices in it (and stops being so where the new clearance dominates again): the server refuses new application
   * messages there until the Remove is committed, and those devices may no longer read it. Returns the pending
   * removals among current members, by conversation.
   */
  async setClearance(
    handle: string,
    clearance: string,
    by: AuditOperator = ADMIN_CLI,
  ): Promise<{ clearance: string; pendingRemovals: { conversation: string; devices: string[] }[] }> {
    const label = canonicalLabel(clearance);
    const cleared = parseLabel(label);
    return this.log.change(async (trx, append) => {
      const r = await trx
        .updateTable("users")
        .set({ clearance: label })
        .where("handle", "=", handle)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new ValiseError("not_found", `no user ${handle}`);
      const time = this.now();
      await append({ v: 1, type: "user.clearance", user: handle, clearance: label, time });
      await this.auditChange(trx, by, { action: "directory.clearance.set", user: handle, device: null, time });
      // Every membership, past or current, of the user's active devices: a device that left keeps no read access to
      // a conversation it is no longer cleared for either.
      const rows = await trx
        .selectFrom("conversation_members as m")
        .innerJoin("devices as d", "d.id", "m.device_id")
        .innerJoin("conversations as c", "c.id", "m.conversation_id")
        .select(["m.conversation_id", "m.device_id", "m.left_seq", "c.label", "c.kind", "c.unit", "c.from_unit"])
        .where("d.handle", "=", handle)
        .where("d.revoked_at", "is", null)
        .orderBy("m.conversation_id")
        .orderBy("m.device_id")
        .execute();
      const units = await this.unitsIn(trx, handle);
      const pending = new Map<string, string[]>();
      for (const r of rows) {
        const ok = dominates(cleared, parseLabel(r.label));
        if (ok) {
          // Cleared again; a removal the user's units still call for stays (reason `unit`).
          await this.liftRemoval(trx, r, "clearance", entitledByUnits(r, units) ? null : "unit");
          continue;
        }
        const have = await trx
          .selectFrom("pending_removals")
          .select("reason")
          .where("conversation_id", "=", r.conversation_id)
          .where("device_id", "=", r.device_id)
          .executeTakeFirst();
        if (!have)
          await trx
            .insertInto("pending_removals")
            .values({
              conversation_id: r.conversation_id,
              device_id: r.device_id,
              reason: "clearance",
              created_at: time,
            })
            .execute();
        if (r.left_seq === null)
          pending.set(r.conversation_id, [...(pending.get(r.conversation_id) ?? []), r.device_id]);
      }
      return {
        clearance: label,
        pendingRemovals: [...pending].map(([conversation, devices]) => ({ conversation, devices })),
      };
    });
  }

  // --- key packages (one-time; the newest is kept as last resort) ---

  async addKeyPackages(deviceId: string, kps: { ref: string; data: Uint8Array }[]): Promise<number> {
    const now = this.now();
    return this.db.transaction().execute(async (trx) => {
      const count = await trx
        .selectFrom("key_packages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("device_id", "=", deviceId)
        .executeTakeFirstOrThrow();
      if (Number(count.n) + kps.length > MAX_KEY_PACKAGES_PER_DEVICE)
        throw new ValiseError("too_large", `at most ${MAX_KEY_PACKAGES_PER_DEVICE} key packages per device`);
      for (const [i, kp] of kps.entries()) {
        const dup = await trx.selectFrom("key_packages").select("ref").where("ref", "=", kp.ref).executeTakeFirst();
        if (dup) continue; // idempotent re-upload
        // Upload order is kept (created_at + index): the last package of the newest upload is the last resort.
        await trx
          .insertInto("key_packages")
          .values({ ref: kp.ref, device_id: deviceId, data: kp.data, created_at: now + i })
          .execute();
      }
      const after = await trx
        .selectFrom("key_packages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("device_id", "=", deviceId)
        .executeTakeFirstOrThrow();
      return Number(after.n);
    });
  }

  async countKeyPackages(deviceId: string): Promise<number> {
    const r = await this.db
      .selectFrom("key_packages")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("device_id", "=", deviceId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Claims one key package for each given active device; consumed unless it is the device's last (last resort). */
  async claimKeyPackages(deviceIds: string[]): Promise<{ handle: string; device: string; keyPackage: Uint8Array }[]> {
    if (deviceIds.length === 0) return [];
    return this.db.transaction().execute(async (trx) => {
      const out: { handle: string; device: string; keyPackage: Uint8Array }[] = [];
      const devices = await trx
        .selectFrom("devices")
        .select(["id", "handle"])
        .where("id", "in", deviceIds)
        .where("revoked_at", "is", null)
        .orderBy("id")
        .execute();
      for (const d of devices) {
        // One-time packages first (oldest first); the last resort — the last package of the device's newest upload —
        // only when none is left, and it is never deleted: it stays usable until a newer upload replaces it.
        const kps = await trx
          .selectFrom("key_packages")
          .select(["ref", "data"])
          .where("device_id", "=", d.id)
          .orderBy("created_at")
          .orderBy("ref")
          .limit(2)
          .execute();
        const kp = kps[0];
        if (!kp) continue;
        if (kps.length > 1) await trx.deleteFrom("key_packages").where("ref", "=", kp.ref).execute();
        out.push({ handle: d.handle, device: d.id, keyPackage: new Uint8Array(kp.data) });
      }
      return out;
    });
  }

  // --- device authentication: Ed25519 challenge → short-lived session token, stored hashed ---

  async createChallenge(deviceId: string): Promise<{ challenge: string; expiresAt: number }> {
    const challenge = randomToken(32);
    const expiresAt = this.now() + CHALLENGE_TTL_MS;
    await this.db.deleteFrom("challenges").where("expires_at", "<", this.now()).execute();
    await this.db.insertInto("challenges").values({ challenge, device_id: deviceId, expires_at: expiresAt }).execute();
    return { challenge, expiresAt };
  }

  /** One-time: a challenge is deleted when used, so a replayed signature is refused. */
  async consumeChallenge(challenge: string, deviceId: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom("challenges")
      .where("challenge", "=", challenge)
      .where("device_id", "=", deviceId)
      .where("expires_at", ">=", this.now())
      .executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  async createSession(deviceId: string, handle: string): Promise<{ token: string; expiresAt: number }> {
    const token = randomToken(32);
    const expiresAt = this.now() + this.sessionTtlMs;
    await this.db.deleteFrom("sessions").where("expires_at", "<", this.now()).execute();
    await this.db
      .insertInto("sessions")
      .values({ token_hash: sha256Hex(token), device_id: deviceId, handle, expires_at: expiresAt })
      .execute();
    return { token, expiresAt };
  }

  /**
   * Which of these session tokens are still valid (not expired, not deleted by a revocation or a sign-out): one query
   * for many tokens (the push hub re-checks every open socket's session every few seconds).
   */
  async liveSessions(tokens: string[]): Promise<Set<string>> {
    const byHash = new Map(tokens.map((t) => [sha256Hex(t), t]));
    const live = new Set<string>();
    const hashes = [...byHash.keys()];
    for (let i = 0; i < hashes.length; i += 500) {
      const rows = await this.db
        .selectFrom("sessions")
        .select(["token_hash", "expires_at"])
        .where("token_hash", "in", hashes.slice(i, i + 500))
        .execute();
      const now = this.now();
      for (const r of rows) if (Number(r.expires_at) >= now) live.add(byHash.get(r.token_hash)!);
    }
    return live;
  }

  /** Ends one session (sign out): its token is refused from now on. True if it existed. */
  async deleteSession(token: string): Promise<boolean> {
    const r = await this.db.deleteFrom("sessions").where("token_hash", "=", sha256Hex(token)).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async getSession(token: string): Promise<{ deviceId: string; handle: string; expiresAt: number } | null> {
    const r = await this.db
      .selectFrom("sessions")
      .selectAll()
      .where("token_hash", "=", sha256Hex(token))
      .executeTakeFirst();
    if (!r || Number(r.expires_at) < this.now()) return null;
    return { deviceId: r.device_id, handle: r.handle, expiresAt: Number(r.expires_at) };
  }
}
