/**
 * Transport area: staff lifecycle and clearances (issue 12; admins, and officers where noted): units' members,
 * postings, roles, offboarding, archives, unit policy, the directory change feed. Unit names are URL-encoded in the
 * path.
 */
import type { RequestCore } from "./core.js";
import type { DirectoryChange, PendingRemovalView, StaffUser } from "./types.js";

const user = (h: string) => `/v1/users/${encodeURIComponent(h)}`;
const unitPath = (u: string) => `/v1/units/${encodeURIComponent(u)}`;

export class StaffApi {
  constructor(protected readonly http: RequestCore) {}

  /** Security officers: a user's clearance; answers the pending removals it caused. */
  setClearance(
    handle: string,
    clearance: string,
  ): Promise<{ handle: string; clearance: string; pendingRemovals: PendingRemovalView[] }> {
    return this.http.request("PUT /v1/users/:handle/clearance", `${user(handle)}/clearance`, { body: { clearance } });
  }
  /** Officers and admins: users with units, clearance, role and state (optionally one unit's). */
  async listUsers(unit?: string): Promise<StaffUser[]> {
    const q = unit === undefined ? "" : `?unit=${encodeURIComponent(unit)}`;
    return (await this.http.request("GET /v1/users", `/v1/users${q}`)).users;
  }
  /** Officers and admins: every directory log entry about a user. Untrusted: check entries against the log. */
  async userHistory(handle: string): Promise<DirectoryChange[]> {
    return (await this.http.request("GET /v1/users/:handle/history", `${user(handle)}/history`)).history;
  }
  /** Officers and admins: a unit's members with their state (disabled ones included). */
  async unitMembersDetailed(unit: string): Promise<StaffUser[]> {
    return (await this.http.request("GET /v1/units/:unit/members", `${unitPath(unit)}/members`)).members;
  }
  addUnitMember(unit: string, handle: string): Promise<{ handle: string; unit: string }> {
    return this.http.request("POST /v1/units/:unit/members", `${unitPath(unit)}/members`, { body: { handle } });
  }
  removeUnitMember(
    unit: string,
    handle: string,
  ): Promise<{ handle: string; unit: string; pendingRemovals: PendingRemovalView[] }> {
    return this.http.request(
      "DELETE /v1/units/:unit/members/:handle",
      `${unitPath(unit)}/members/${encodeURIComponent(handle)}`,
    );
  }
  moveUser(
    handle: string,
    from: string,
    to: string,
  ): Promise<{ handle: string; from: string; to: string; pendingRemovals: PendingRemovalView[] }> {
    return this.http.request("POST /v1/users/:handle/move", `${user(handle)}/move`, { body: { from, to } });
  }
  setRole(handle: string, role: string): Promise<{ handle: string; role: string; changed: boolean }> {
    return this.http.request("PUT /v1/users/:handle/role", `${user(handle)}/role`, { body: { role } });
  }
  /** Officers and admins: offboard a user (devices revoked, logins refused). */
  disableUser(
    handle: string,
  ): Promise<{ handle: string; revokedDevices: string[]; pendingRemovals: PendingRemovalView[] }> {
    return this.http.request("POST /v1/users/:handle/disable", `${user(handle)}/disable`);
  }
  enableUser(handle: string): Promise<{ handle: string }> {
    return this.http.request("POST /v1/users/:handle/enable", `${user(handle)}/enable`);
  }
  /** Admins: the archivist `handle` becomes the records archive of `unit` (`archive.assign`). */
  assignArchive(unit: string, handle: string): Promise<{ handle: string; unit: string }> {
    return this.http.request("POST /v1/units/:unit/archives", `${unitPath(unit)}/archives`, { body: { handle } });
  }
  removeArchive(
    unit: string,
    handle: string,
  ): Promise<{ handle: string; unit: string; pendingRemovals: PendingRemovalView[] }> {
    return this.http.request(
      "DELETE /v1/units/:unit/archives/:handle",
      `${unitPath(unit)}/archives/${encodeURIComponent(handle)}`,
    );
  }
  /** Admins: how far back the unit shares keys with members who join later (`all` or seconds; `unit.share`). */
  setUnitShare(unit: string, since: string): Promise<{ unit: string; since: string; changed: boolean }> {
    return this.http.request("PUT /v1/units/:unit/share", `${unitPath(unit)}/share`, { body: { since } });
  }
  setUnitMaxLabel(unit: string, maxLabel: string): Promise<{ unit: string; maxLabel: string }> {
    return this.http.request("PUT /v1/units/:unit/max-label", `${unitPath(unit)}/max-label`, { body: { maxLabel } });
  }
  /**
   * Officers and admins: directory log entries after index `after` (-1: from the start), decoded by the server.
   * Untrusted: a monitor checks them against the witnessed log.
   */
  directoryChanges(after = -1, limit = 100): Promise<{ size: number; changes: DirectoryChange[] }> {
    return this.http.request("GET /v1/directory/changes", `/v1/directory/changes?after=${after}&limit=${limit}`);
  }
}
