/**
 * One migration set for SQLite and PostgreSQL. Column types that differ between the two are chosen through
 * `Types`; everything else is portable Kysely schema builder calls. Migrations are append-only: never edit one
 * that has shipped, add the next.
 */
import { type Kysely, type Migration, type MigrationProvider, sql } from "kysely";
import { dominates, parseLabel } from "@valise/core";
import { leafSource, sourceKey } from "./audit-log.js";

export type Dialect = "sqlite" | "postgres";
interface Types {
  bin: "blob" | "bytea";
  int64: "integer" | "bigint";
}
function types(d: Dialect): Types {
  return d === "sqlite" ? { bin: "blob", int64: "integer" } : { bin: "bytea", int64: "bigint" };
}

function m001(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("units")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("max_label", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("users")
        .addColumn("handle", "text", (c) => c.primaryKey())
        .addColumn("clearance", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("user_units")
        .addColumn("handle", "text", (c) => c.notNull().references("users.handle"))
        .addColumn("unit", "text", (c) => c.notNull().references("units.name"))
        .addPrimaryKeyConstraint("user_units_pk", ["handle", "unit"])
        .execute();
      await db.schema.createIndex("user_units_unit").on("user_units").column("unit").execute();
      await db.schema
        .createTable("enrollment_codes")
        .addColumn("code_hash", "text", (c) => c.primaryKey())
        .addColumn("handle", "text", (c) => c.notNull().references("users.handle"))
        .addColumn("expires_at", t.int64, (c) => c.notNull())
        .addColumn("used_at", t.int64)
        .execute();
      await db.schema
        .createTable("devices")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("handle", "text", (c) => c.notNull().references("users.handle"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("signature_public_key", t.bin, (c) => c.notNull().unique())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("revoked_at", t.int64)
        .execute();
      await db.schema.createIndex("devices_handle").on("devices").column("handle").execute();
      await db.schema
        .createTable("key_packages")
        .addColumn("ref", "text", (c) => c.primaryKey())
        .addColumn("device_id", "text", (c) => c.notNull().references("devices.id"))
        .addColumn("data", t.bin, (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("key_packages_device")
        .on("key_packages")
        .columns(["device_id", "created_at"])
        .execute();
      await db.schema
        .createTable("sessions")
        .addColumn("token_hash", "text", (c) => c.primaryKey())
        .addColumn("device_id", "text", (c) => c.notNull().references("devices.id"))
        .addColumn("handle", "text", (c) => c.notNull())
        .addColumn("expires_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("challenges")
        .addColumn("challenge", "text", (c) => c.primaryKey())
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("expires_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("conversations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("label", "text", (c) => c.notNull())
        .addColumn("unit", "text")
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("epoch", t.int64, (c) => c.notNull())
        .addColumn("head_seq", t.int64, (c) => c.notNull())
        .addColumn("group_info", t.bin)
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("conversation_members")
        .addColumn("conversation_id", "text", (c) => c.notNull().references("conversations.id"))
        .addColumn("device_id", "text", (c) => c.notNull().references("devices.id"))
        .addColumn("joined_seq", t.int64, (c) => c.notNull())
        .addColumn("left_seq", t.int64)
        .addPrimaryKeyConstraint("conversation_members_pk", ["conversation_id", "device_id"])
        .execute();
      await db.schema
        .createIndex("conversation_members_device")
        .on("conversation_members")
        .column("device_id")
        .execute();
      await db.schema
        .createTable("messages")
        .addColumn("conversation_id", "text", (c) => c.notNull().references("conversations.id"))
        .addColumn("seq", t.int64, (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("epoch", t.int64, (c) => c.notNull())
        .addColumn("sender_device", "text", (c) => c.notNull())
        .addColumn("payload", t.bin, (c) => c.notNull())
        .addColumn("idem_key", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint("messages_pk", ["conversation_id", "seq"])
        .execute();
      await db.schema
        .createIndex("messages_idem")
        .on("messages")
        .columns(["sender_device", "idem_key"])
        .unique()
        .execute();
      await db.schema
        .createTable("inbox")
        .addColumn("id", d === "sqlite" ? "integer" : "bigserial", (c) =>
          d === "sqlite" ? c.primaryKey().autoIncrement() : c.primaryKey(),
        )
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("conversation_id", "text", (c) => c.notNull())
        .addColumn("commit_seq", t.int64, (c) => c.notNull())
        .addColumn("payload", t.bin, (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex("inbox_device").on("inbox").columns(["device_id", "id"]).execute();
      void sql;
    },
  };
}

/**
 * The directory log (key transparency, DESIGN.md §3): entries, every completed perfect-subtree hash (so proofs and
 * tiles are read, not recomputed), signed checkpoints, a one-row head whose UPDATE serializes appends (a row lock
 * on PostgreSQL, the write lock on SQLite), and the pinned public verifier key of each log. The private log key is
 * never in the database: see log-key.ts.
 */
function m002(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("directory_log_head")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("size", t.int64, (c) => c.notNull())
        .execute();
      await sql`insert into directory_log_head (id, size) values (1, 0)`.execute(db);
      await db.schema
        .createTable("directory_log_entries")
        .addColumn("idx", t.int64, (c) => c.primaryKey())
        .addColumn("data", t.bin, (c) => c.notNull())
        .addColumn("leaf_hash", t.bin, (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("directory_log_nodes")
        .addColumn("level", "integer", (c) => c.notNull())
        .addColumn("idx", t.int64, (c) => c.notNull())
        .addColumn("hash", t.bin, (c) => c.notNull())
        .addPrimaryKeyConstraint("directory_log_nodes_pk", ["level", "idx"])
        .execute();
      await db.schema
        .createTable("directory_log_checkpoints")
        .addColumn("size", t.int64, (c) => c.primaryKey())
        .addColumn("root_hash", t.bin, (c) => c.notNull())
        .addColumn("note", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("log_keys")
        .addColumn("log", "text", (c) => c.primaryKey())
        .addColumn("vkey", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Where each directory fact sits in the directory log (key transparency, DESIGN.md §3): `ref` names the fact
 * (`device.add/<device>`, `device.revoke/<device>`, `user.add/<user>`, `user.clearance/<user>` — the latest entry
 * setting the user's clearance — `unit.add/<unit>`), `idx` its entry. The server answers directory questions with
 * these indices so that clients can fetch the entry and check its inclusion proof instead of trusting the answer.
 */
function m003(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("directory_log_refs")
        .addColumn("ref", "text", (c) => c.primaryKey())
        .addColumn("idx", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Witnessed checkpoints (tlog-witness): per log, each checkpoint published with at least the configured quorum of
 * witness cosignatures — the log-signed note with the cosignature lines appended, as served. Independent of the
 * other migrations.
 */
function m004(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("log_cosigned_checkpoints")
        .addColumn("log", "text", (c) => c.notNull())
        .addColumn("size", t.int64, (c) => c.notNull())
        .addColumn("note", "text", (c) => c.notNull())
        .addColumn("cosignatures", "integer", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint("log_cosigned_checkpoints_pk", ["log", "size"])
        .execute();
    },
  };
}

/**
 * The audit log (DESIGN.md §3 "Audit log"): a second Merkle log with the directory log's tables and columns (see
 * merkle-log.ts) under the `audit_log_` prefix. Entries also carry indexed copies of the event's time, actor,
 * action and object, so officers query without a scan (the leaf bytes stay the authority).
 */
function m005(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("audit_log_head")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("size", t.int64, (c) => c.notNull())
        .execute();
      await sql`insert into audit_log_head (id, size) values (1, 0)`.execute(db);
      await db.schema
        .createTable("audit_log_entries")
        .addColumn("idx", t.int64, (c) => c.primaryKey())
        .addColumn("data", t.bin, (c) => c.notNull())
        .addColumn("leaf_hash", t.bin, (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("time", t.int64, (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("object", "text", (c) => c.notNull())
        .execute();
      for (const col of ["actor", "action", "object", "time"])
        await db.schema.createIndex(`audit_log_entries_${col}`).on("audit_log_entries").columns([col, "idx"]).execute();
      await db.schema
        .createTable("audit_log_nodes")
        .addColumn("level", "integer", (c) => c.notNull())
        .addColumn("idx", t.int64, (c) => c.notNull())
        .addColumn("hash", t.bin, (c) => c.notNull())
        .addPrimaryKeyConstraint("audit_log_nodes_pk", ["level", "idx"])
        .execute();
      await db.schema
        .createTable("audit_log_checkpoints")
        .addColumn("size", t.int64, (c) => c.primaryKey())
        .addColumn("root_hash", t.bin, (c) => c.notNull())
        .addColumn("note", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Cables, documents and blobs (issue 3), the `link` conversation kind, and pending removals.
 * - `blobs`: ciphertext uploads (bytes on the blob store), owned by a user and device, attached to at most one object
 *   (a document version or a cable).
 * - `documents` (with the officer-only `canary` flag) and `document_versions` (one blob each, append-only).
 * - `cables`: immutable; `reference` allocated from `cable_serials` (one counter per originator and UTC year, bumped
 *   in the releasing transaction, so no gaps and no reuse); `cable_addressees` holds the per-unit receipts;
 *   `cable_device_receipts` the per-device acknowledgements that empty a device's queue.
 * - `conversations.from_unit`: the originating unit of a `link` conversation.
 * - `pending_removals`: (conversation, device) pairs that must leave the group — the device was revoked or its user's
 *   clearance no longer dominates the conversation's label. Maintained in the transaction that revokes or changes
 *   the clearance, so the message hot path reads one indexed table instead of re-deriving it. Backfilled here for
 *   devices revoked before this migration and for members whose user's clearance was lowered before it.
 */
function m006(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("blobs")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("owner_device", "text", (c) => c.notNull())
        .addColumn("size", t.int64, (c) => c.notNull())
        .addColumn("received", t.int64, (c) => c.notNull())
        .addColumn("complete", "integer", (c) => c.notNull())
        .addColumn("object_kind", "text")
        .addColumn("object_id", "text")
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("completed_at", t.int64)
        .execute();
      await db.schema.createIndex("blobs_owner").on("blobs").columns(["owner", "created_at"]).execute();
      await db.schema
        .createTable("documents")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("label", "text", (c) => c.notNull())
        .addColumn("to_kind", "text", (c) => c.notNull())
        .addColumn("to_name", "text", (c) => c.notNull())
        .addColumn("canary", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex("documents_owner").on("documents").columns(["owner", "created_at"]).execute();
      await db.schema
        .createIndex("documents_to")
        .on("documents")
        .columns(["to_kind", "to_name", "created_at"])
        .execute();
      await db.schema
        .createTable("document_versions")
        .addColumn("document_id", "text", (c) => c.notNull().references("documents.id"))
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("blob", "text", (c) => c.notNull().unique().references("blobs.id"))
        .addColumn("size", t.int64, (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("document_versions_pk", ["document_id", "version"])
        .execute();
      await db.schema
        .createTable("cable_serials")
        .addColumn("originator", "text", (c) => c.notNull())
        .addColumn("year", "integer", (c) => c.notNull())
        .addColumn("last_serial", t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint("cable_serials_pk", ["originator", "year"])
        .execute();
      await db.schema
        .createTable("cables")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("reference", "text", (c) => c.notNull().unique())
        .addColumn("originator", "text", (c) => c.notNull())
        .addColumn("year", "integer", (c) => c.notNull())
        .addColumn("serial", t.int64, (c) => c.notNull())
        .addColumn("sender", "text", (c) => c.notNull())
        .addColumn("sender_device", "text", (c) => c.notNull())
        .addColumn("precedence", "text", (c) => c.notNull())
        .addColumn("precedence_rank", "integer", (c) => c.notNull())
        .addColumn("label", "text", (c) => c.notNull())
        .addColumn("blob", "text", (c) => c.notNull().unique().references("blobs.id"))
        .addColumn("size", t.int64, (c) => c.notNull())
        .addColumn("corrects", "text")
        .addColumn("request_hash", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("cables_serial")
        .on("cables")
        .columns(["originator", "year", "serial"])
        .unique()
        .execute();
      // Queue and listing order: FLASH first, then release time, then serial.
      await sql`create index cables_order on cables (precedence_rank desc, created_at, serial, id)`.execute(db);
      await db.schema
        .createTable("cable_addressees")
        .addColumn("cable_id", "text", (c) => c.notNull().references("cables.id"))
        .addColumn("unit", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("position", "integer", (c) => c.notNull())
        .addColumn("delivered_at", t.int64)
        .addColumn("delivered_by", "text")
        .addColumn("read_at", t.int64)
        .addColumn("read_by", "text")
        .addPrimaryKeyConstraint("cable_addressees_pk", ["cable_id", "unit"])
        .execute();
      await db.schema
        .createIndex("cable_addressees_unit")
        .on("cable_addressees")
        .columns(["unit", "cable_id"])
        .execute();
      await db.schema
        .createTable("cable_device_receipts")
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("cable_id", "text", (c) => c.notNull().references("cables.id"))
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("delivered_at", t.int64, (c) => c.notNull())
        .addColumn("read_at", t.int64)
        .addPrimaryKeyConstraint("cable_device_receipts_pk", ["device_id", "cable_id"])
        .execute();
      await db.schema.alterTable("conversations").addColumn("from_unit", "text").execute();
      await db.schema
        .createTable("pending_removals")
        .addColumn("conversation_id", "text", (c) => c.notNull())
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("reason", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint("pending_removals_pk", ["conversation_id", "device_id"])
        .execute();
      await db.schema.createIndex("pending_removals_device").on("pending_removals").column("device_id").execute();
      await sql`insert into pending_removals (conversation_id, device_id, reason, created_at)
        select m.conversation_id, m.device_id, 'revoked', d.revoked_at
        from conversation_members m join devices d on d.id = m.device_id
        where m.left_seq is null and d.revoked_at is not null`.execute(db);
      const members = await sql<{ conversation_id: string; device_id: string; label: string; clearance: string }>`
        select m.conversation_id, m.device_id, c.label, u.clearance
        from conversation_members m join devices d on d.id = m.device_id join users u on u.handle = d.handle
          join conversations c on c.id = m.conversation_id
        where d.revoked_at is null`.execute(db);
      for (const r of members.rows)
        if (!dominates(parseLabel(r.clearance), parseLabel(r.label)))
          await sql`insert into pending_removals (conversation_id, device_id, reason, created_at)
            values (${r.conversation_id}, ${r.device_id}, 'clearance', 0)`.execute(db);
    },
  };
}

/** Online detection (issue 6): stored alerts and the detector's resumable state (audit log position + engine). */
function m007(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("alerts")
        .addColumn("id", t.int64, (c) => c.primaryKey())
        .addColumn("time", t.int64, (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("rule", "text", (c) => c.notNull())
        .addColumn("severity", "text", (c) => c.notNull())
        .addColumn("reason", "text", (c) => c.notNull())
        .addColumn("events", "text", (c) => c.notNull())
        .addColumn("trigger_event", "text", (c) => c.notNull())
        .addColumn("log_index", t.int64, (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("acknowledged_by", "text")
        .addColumn("acknowledged_at", t.int64)
        .execute();
      // A replay after a restart recomputes the same alerts: this key makes storing them again a no-op.
      await db.schema
        .createIndex("alerts_trigger")
        .on("alerts")
        .columns(["rule", "actor", "trigger_event"])
        .unique()
        .execute();
      await db.schema.createIndex("alerts_severity").on("alerts").columns(["severity", "id"]).execute();
      await db.schema.createIndex("alerts_time").on("alerts").column("time").execute();
      await db.schema
        .createTable("detect_state")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("next_index", t.int64, (c) => c.notNull())
        .addColumn("snapshot", "text")
        .addColumn("updated_at", t.int64, (c) => c.notNull())
        .execute();
      await sql`insert into detect_state (id, next_index, snapshot, updated_at) values (1, 0, null, 0)`.execute(db);
    },
  };
}

/**
 * Allied sharing (issue 6, DESIGN T6): incidents made of alerts, partner tokens for the read-only TAXII 2.1 API
 * (hashes only), the objects of the TAXII collection (added when an officer shares an incident; `added_at` in ms,
 * unique and increasing, is what `added_after` pages over), and the secret that pseudonymises handles in exports.
 */
function m008(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("incidents")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("title", "text", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("alerts", "text", (c) => c.notNull())
        .addColumn("note", "text")
        .addColumn("shared_at", t.int64)
        .addColumn("shared_by", "text")
        .execute();
      await db.schema.createIndex("incidents_created").on("incidents").columns(["created_at", "id"]).execute();
      await db.schema
        .createTable("taxii_tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("token_hash", "text", (c) => c.notNull().unique())
        .addColumn("partner", "text", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("revoked_at", t.int64)
        .execute();
      await db.schema
        .createTable("taxii_objects")
        .addColumn("collection_id", "text", (c) => c.notNull())
        .addColumn("object_id", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("added_at", t.int64, (c) => c.notNull().unique())
        .addColumn("object", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("taxii_objects_pk", ["collection_id", "object_id", "version"])
        .execute();
      await db.schema
        .createIndex("taxii_objects_added")
        .on("taxii_objects")
        .columns(["collection_id", "added_at"])
        .execute();
      await db.schema
        .createTable("incident_keys")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("secret", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Passkeys (web client): WebAuthn credentials, each bound to the device (browser) that registered it at enrollment.
 * A device with a passkey logs in with both its device key and a user-verified passkey assertion.
 */
function m009(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("passkeys")
        .addColumn("credential_id", "text", (c) => c.primaryKey())
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("handle", "text", (c) => c.notNull())
        .addColumn("public_key", t.bin, (c) => c.notNull())
        .addColumn("counter", t.int64, (c) => c.notNull())
        .addColumn("transports", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("last_used_at", t.int64)
        .execute();
      await db.schema.createIndex("passkeys_device").on("passkeys").column("device_id").execute();
    },
  };
}

/**
 * Staff lifecycle (issue 12): a user's state. `disabled_at` is set when the user is offboarded (`user.disable` in the
 * directory log) and cleared when enabled again; a disabled user cannot log in, enroll or receive keys.
 */
function m010(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("users").addColumn("disabled_at", t.int64).execute();
    },
  };
}

/**
 * Devices enrolled from a browser (the enrollment request carried Origin / Sec-Fetch-* headers): they must log in
 * with their passkey; a device-key-only login is allowed only within the passkey enrollment window (issue 13).
 */
function m011(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("browser_devices")
        .addColumn("device_id", "text", (c) => c.primaryKey())
        .addColumn("enrolled_at", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Allies' indicators (issue 16): partners' TAXII collections this server polls (the partner's bearer token is kept
 * as given: it must be presented to them), and the indicators imported from them or from bundle files, with the
 * audit index from which live matching applies (everything before was matched retroactively at import).
 */
function m012(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("taxii_partners")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("url", "text", (c) => c.notNull())
        .addColumn("token", "text", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addColumn("added_after", "text")
        .addColumn("last_poll_at", t.int64)
        .addColumn("last_error", "text")
        .addColumn("imported", t.int64, (c) => c.notNull())
        .addColumn("refused", t.int64, (c) => c.notNull())
        .addColumn("last_refusals", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("ioc_indicators")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("partner", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("pattern", "text", (c) => c.notNull())
        .addColumn("networks", "text", (c) => c.notNull())
        .addColumn("techniques", "text", (c) => c.notNull())
        .addColumn("valid_from", t.int64, (c) => c.notNull())
        .addColumn("valid_until", t.int64)
        .addColumn("tlp", "text")
        .addColumn("from_index", t.int64, (c) => c.notNull())
        .addColumn("imported_at", t.int64, (c) => c.notNull())
        .addColumn("retro_matches", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Several server nodes on one PostgreSQL (issue 18): blob bytes in the database (`--blob-store pg`), in chunks keyed
 * by the blob and the chunk's byte offset, with the blob's durable size in `blob_sizes` (the conditional update on it
 * is what serializes appends from different nodes); and token buckets shared by every node (`rate_buckets`). Created
 * on SQLite too (one schema), where they stay empty.
 */
function m020(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("blob_sizes")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("size", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("blob_chunks")
        .addColumn("blob_id", "text", (c) => c.notNull())
        .addColumn("start", t.int64, (c) => c.notNull())
        .addColumn("data", t.bin, (c) => c.notNull())
        .addPrimaryKeyConstraint("blob_chunks_pk", ["blob_id", "start"])
        .execute();
      await db.schema
        .createTable("rate_buckets")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("tokens", d === "sqlite" ? "real" : "double precision", (c) => c.notNull())
        .addColumn("at", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Records archive and a unit's key sharing window (issue 14): `archive_units` marks the memberships (user_units rows)
 * that are archive assignments (`archive.assign` in the directory log); `units.share_since` is the unit's
 * `unit.share` window (null: `all`).
 */
function m021(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("archive_units")
        .addColumn("handle", "text", (c) => c.notNull().references("users.handle"))
        .addColumn("unit", "text", (c) => c.notNull().references("units.name"))
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint("archive_units_pk", ["handle", "unit"])
        .execute();
      await db.schema.alterTable("units").addColumn("share_since", "text").execute();
    },
  };
}

/**
 * Retention (issue 19 part 6): `retention_rules` keeps ciphertext (messages, cables, document versions and their
 * blobs) of a unit or a label for `keep_ms`; `retention_archive_marks` is how far a unit's records archive has taken
 * its records (items of an archived unit newer than it are never deleted); `log_prune` is the index below which a
 * log's entries were exported and pruned (their tree hashes stay in `<log>_nodes`, so proofs still verify).
 */
function m022(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("retention_rules")
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("keep_ms", t.int64, (c) => c.notNull())
        .addColumn("set_at", t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint("retention_rules_pk", ["scope", "name"])
        .execute();
      await db.schema
        .createTable("retention_archive_marks")
        .addColumn("unit", "text", (c) => c.primaryKey())
        .addColumn("archived_through", t.int64, (c) => c.notNull())
        .addColumn("set_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("log_prune")
        .addColumn("log", "text", (c) => c.primaryKey())
        .addColumn("pruned_before", t.int64, (c) => c.notNull())
        .addColumn("pruned_at", t.int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex("messages_created").on("messages").columns(["created_at"]).execute();
      await db.schema.createIndex("cables_created").on("cables").columns(["created_at"]).execute();
      await db.schema
        .createIndex("document_versions_created")
        .on("document_versions")
        .columns(["created_at"])
        .execute();
    },
  };
}

/**
 * Log-key rotation (issue 19): `log_handovers` keeps every signed hand-over from an old log key to a new one (a key
 * hands over once: the old key is the primary key), served to devices and witnesses, which follow it.
 */
function m023(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("log_handovers")
        .addColumn("old_vkey", "text", (c) => c.primaryKey())
        .addColumn("new_vkey", "text", (c) => c.notNull().unique())
        .addColumn("directory_size", t.int64, (c) => c.notNull())
        .addColumn("audit_size", t.int64, (c) => c.notNull())
        .addColumn("note", "text", (c) => c.notNull())
        .addColumn("created_at", t.int64, (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Allied indicators searched by index (issue 16): `audit_log_entries.source_key`, the event's client address as
 * sortable bytes (audit-log.ts `sourceKey`), with an index on (source_key, idx): an indicator's address is an
 * equality lookup, its network a range scan. Existing rows are backfilled from their leaves here, in chunks. The
 * column is derived data, never trusted on its own (see `sourceKeyAgrees` and the indicator service's column check).
 */
function m024(d: Dialect): Migration {
  const t = types(d);
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("audit_log_entries").addColumn("source_key", t.bin).execute();
      const CHUNK = 2000;
      for (let at = 0; ;) {
        const rows = (
          await sql<{ idx: number | string; data: Uint8Array }>`
            select idx, data from audit_log_entries where idx >= ${at} order by idx limit ${CHUNK}`.execute(db)
        ).rows;
        if (rows.length === 0) break;
        const sets: { idx: number; key: Buffer }[] = [];
        for (const r of rows) {
          const src = leafSource(r.data);
          const key = src === null ? null : sourceKey(src);
          if (key) sets.push({ idx: Number(r.idx), key });
        }
        for (let i = 0; i < sets.length; i += 500) {
          const part = sets.slice(i, i + 500);
          const values = sql.join(
            part.map((p) => (d === "postgres" ? sql`(${p.idx}::bigint, ${p.key}::bytea)` : sql`(${p.idx}, ${p.key})`)),
          );
          await (
            d === "postgres"
              ? sql`update audit_log_entries set source_key = v.k from (values ${values}) as v(i, k)
                  where audit_log_entries.idx = v.i`
              : sql`update audit_log_entries set source_key = v.column2 from (values ${values}) as v
                  where audit_log_entries.idx = v.column1`
          ).execute(db);
        }
        at = Number(rows[rows.length - 1]!.idx) + 1;
      }
      await db.schema
        .createIndex("audit_log_entries_source_key")
        .on("audit_log_entries")
        .columns(["source_key", "idx"])
        .execute();
    },
  };
}

/** Who issued each enrollment code (issue 16: the enrolment method is audited as `device.enrolment code:<issuer>`). */
function m025(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("enrollment_codes").addColumn("issued_by", "text").execute();
    },
  };
}

/**
 * Post time zones (issue 16): a unit's IANA time zone (`valise admin unit tz`), optional. Detection profiles its
 * members' hours of day in it. Not in the directory log: it changes no key, only what detection calls an usual hour.
 */
function m026(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("units").addColumn("tz", "text").execute();
    },
  };
}

export function migrationProvider(d: Dialect): MigrationProvider {
  return {
    async getMigrations() {
      return {
        "001_initial": m001(d),
        "002_directory_log": m002(d),
        "003_directory_log_refs": m003(d),
        "004_witness_cosignatures": m004(d),
        "005_audit_log": m005(d),
        "006_cables_documents": m006(d),
        "007_alerts": m007(d),
        "008_incidents_taxii": m008(d),
        "009_passkeys": m009(d),
        "010_user_state": m010(d),
        "011_browser_devices": m011(d),
        "012_taxii_partners": m012(d),
        "020_cluster": m020(d),
        "021_archives": m021(d),
        "022_retention": m022(d),
        "023_log_handovers": m023(d),
        "024_audit_source_key": m024(d),
        "025_enrollment_code_issuer": m025(),
        "026_unit_tz": m026(),
      };
    },
  };
}
