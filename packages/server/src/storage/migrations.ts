/**
 * One migration set for SQLite and PostgreSQL. Column types that differ between the two are chosen through
 * `Types`; everything else is portable Kysely schema builder calls. Migrations are append-only: never edit one
 * that has shipped, add the next.
 */
import { type Kysely, type Migration, type MigrationProvider, sql } from "kysely";

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

export function migrationProvider(d: Dialect): MigrationProvider {
  return {
    async getMigrations() {
      return {
        "001_initial": m001(d),
        "002_directory_log": m002(d),
        "003_directory_log_refs": m003(d),
        "004_witness_cosignatures": m004(d),
        "005_audit_log": m005(d),
      };
    },
  };
}
