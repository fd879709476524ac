/**
 * Directory: units, users, clearances, roles, devices, enrollment codes, one-time key packages, sessions.
 * Every directory change (unit or user created, device enrolled or revoked, clearance set) appends its entry to the
 * directory log in the same transaction as the change itself (DESIGN.md §3 "Key transparency").
 */
import type { Kysely, Transaction } from "kysely";
import {
  ValiseError,
  canonicalLabel,
  dominates,
  parseLabel,
  parseUnitName,
  parseUserHandle,
  toBase64,
  type AuditAction,
} from "@valise/core";
import type { Database } from "./schema.js";
import { DirectoryLog } from "./directory-log.js";
import { ADMIN_CLI, newAuditId, type AuditLog, type AuditOperator } from "./audit-log.js";
import { normalizeEnrollmentCode, randomEnrollmentCode, randomToken, sha256Hex } from "./secrets.js";

export type Role = "user" | "officer" | "admin";
export const ROLES: readonly Role[] = ["user", "officer", "admin"];
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
  devices: DeviceRecord[];
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

  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
    private readonly audit?: AuditLog,
  ) {
    this.log = new DirectoryLog(db, now);
  }

  /** Audit a directory change by an operator, in the change's own transaction (DESIGN.md §3 "Audit log"). */
  private async auditChange(
    trx: Transaction<Database>,
    by: AuditOperator,
    e: { action: AuditAction; user: string; device: string | null; time: number },
  ): Promise<void> {
    if (!this.audit) return;
    const unit = await trx
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

  async addUnit(name: string, maxLabel = "SECRET"): Promise<void> {
    const unit = parseUnitName(name);
    const label = canonicalLabel(maxLabel);
    await this.log.change(async (trx, append) => {
      const existing = await trx.selectFrom("units").select("name").where("name", "=", unit).executeTakeFirst();
      if (existing) throw new ValiseError("conflict", `unit ${unit} already exists`);
      const time = this.now();
      await trx.insertInto("units").values({ name: unit, max_label: label, created_at: time }).execute();
      await append({ v: 1, type: "unit.add", unit, maxLabel: label, time });
    });
  }

  async listUnits(): Promise<{ name: string; maxLabel: string }[]> {
    const rows = await this.db.selectFrom("units").selectAll().orderBy("name").execute();
    return rows.map((r) => ({ name: r.name, maxLabel: r.max_label }));
  }

  async unitExists(name: string): Promise<boolean> {
    return !!(await this.db.selectFrom("units").select("name").where("name", "=", name).executeTakeFirst());
  }

  /** Creates a user and returns a one-time enrollment code for their first device. */
  async addUser(input: {
    handle: string;
    units: string[];
    clearance: string;
    role: Role;
  }): Promise<{ enrollmentCode: string; expiresAt: number }> {
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
      await trx.insertInto("users").values({ handle, clearance, role: input.role, created_at: time }).execute();
      for (const u of new Set(units)) await trx.insertInto("user_units").values({ handle, unit: u }).execute();
      await append({ v: 1, type: "user.add", user: handle, units, clearance, role: input.role, time });
      return this.insertCode(trx, handle);
    });
  }

  /** A new one-time enrollment code for another device of an existing user. */
  async newEnrollmentCode(handle: string): Promise<{ enrollmentCode: string; expiresAt: number }> {
    const h = parseUserHandle(handle);
    if (!(await this.db.selectFrom("users").select("handle").where("handle", "=", h).executeTakeFirst()))
      throw new ValiseError("not_found", `no user ${h}`);
    return this.insertCode(this.db, h);
  }

  private async insertCode(
    db: Kysely<Database>,
    handle: string,
  ): Promise<{ enrollmentCode: string; expiresAt: number }> {
    const code = randomEnrollmentCode();
    const expiresAt = this.now() + ENROLLMENT_TTL_MS;
    await db
      .insertInto("enrollment_codes")
      .values({ code_hash: sha256Hex(normalizeEnrollmentCode(code)), handle, expires_at: expiresAt, used_at: null })
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
  ): Promise<UserRecord> {
    const hash = sha256Hex(normalizeEnrollmentCode(code));
    const now = this.now();
    const handle = await this.log.change(async (trx, append) => {
      const row = await trx.selectFrom("enrollment_codes").selectAll().where("code_hash", "=", hash).executeTakeFirst();
      if (!row || row.used_at !== null || Number(row.expires_at) < now)
        throw new ValiseError("enrollment_code_invalid", "enrollment code is invalid, expired or already used");
      expectHandle(row.handle);
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
      devices: devices.map(toDevice),
    };
  }

  async unitMembers(unit: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("user_units")
      .select("handle")
      .where("unit", "=", unit)
      .orderBy("handle")
      .execute();
    return rows.map((r) => r.handle);
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    const r = await this.db.selectFrom("devices").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toDevice(r) : null;
  }

  async revokeDevice(id: string, by: AuditOperator = ADMIN_CLI): Promise<void> {
    await this.log.change(async (trx, append) => {
      const time = this.now();
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
    });
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
        .select(["m.conversation_id", "m.device_id", "m.left_seq", "c.label"])
        .where("d.handle", "=", handle)
        .where("d.revoked_at", "is", null)
        .orderBy("m.conversation_id")
        .orderBy("m.device_id")
        .execute();
      const pending = new Map<string, string[]>();
      for (const r of rows) {
        const ok = dominates(cleared, parseLabel(r.label));
        if (ok) {
          await trx
            .deleteFrom("pending_removals")
            .where("conversation_id", "=", r.conversation_id)
            .where("device_id", "=", r.device_id)
            .where("reason", "=", "clearance")
            .execute();
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
      for (const kp of kps) {
        const dup = await trx.selectFrom("key_packages").select("ref").where("ref", "=", kp.ref).executeTakeFirst();
        if (dup) continue; // idempotent re-upload
        await trx
          .insertInto("key_packages")
          .values({ ref: kp.ref, device_id: deviceId, data: kp.data, created_at: now })
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
    const expiresAt = this.now() + SESSION_TTL_MS;
    await this.db.deleteFrom("sessions").where("expires_at", "<", this.now()).execute();
    await this.db
      .insertInto("sessions")
      .values({ token_hash: sha256Hex(token), device_id: deviceId, handle, expires_at: expiresAt })
      .execute();
    return { token, expiresAt };
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
