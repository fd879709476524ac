/**
 * Session lookup on every authenticated request. Not cached (a revoked device must be refused on its very next
 * request, and revocation may come from another process), so on SQLite it is one prepared statement instead of a
 * Kysely round-trip; elsewhere, or while a Kysely transaction holds the connection, it uses the directory store.
 */
import type SQLite from "better-sqlite3";
import type { Store } from "./store.js";
import { sha256Hex } from "./secrets.js";

export type SessionInfo = { handle: string; deviceId: string };

export function sessionLookup(store: Store, now: () => number): (token: string) => Promise<SessionInfo | null> {
  const sqlite: SQLite.Database | undefined = store.handle.sqlite;
  const stmt = sqlite?.prepare("SELECT device_id, handle, expires_at FROM sessions WHERE token_hash = ?");
  return async (token) => {
    if (sqlite && stmt && !sqlite.inTransaction) {
      const r = stmt.get(sha256Hex(token)) as { device_id: string; handle: string; expires_at: number } | undefined;
      return r && Number(r.expires_at) >= now() ? { handle: r.handle, deviceId: r.device_id } : null;
    }
    const s = await store.directory.getSession(token);
    return s ? { handle: s.handle, deviceId: s.deviceId } : null;
  };
}
