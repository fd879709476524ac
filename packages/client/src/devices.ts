/**
 * The user's own devices: listing them (from the verified directory log with key transparency), dismissing
 * own-account alerts, approving a new device (the held keys and the message history forwarded to it), revoking a lost
 * one, telling the security officers when the server's directory disagrees with the log, and the log's evidence that
 * this device is a unit's records archive.
 */
import { ValiseError, fromBase64, leafHash, randomId, toBase64, verifyInclusion } from "@valise/core";
import { groupMembers, type DeviceKeys } from "@valise/protocol";
import type { HttpTransport } from "./transport.js";
import type { ProfileRepository } from "./profile-repo.js";
import type { Authed } from "./session.js";
import type { ConversationEngine } from "./conversations.js";
import type { DirectoryDoor } from "./verifier.js";
import type { DirectoryAlert, OwnDevice, TransparencyVerifier } from "./transparency.js";
import type { ReceivedItem } from "./items.js";
import { forwardPayloads } from "./forward.js";
import type { HistoryStore } from "./history.js";
import { sendHistory, type HistoryProgress, type TransferHost } from "./history-transfer.js";
import type { StreamCipher } from "./content.js";
import type { ArchiveEvidence } from "./archive.js";

/** The profile slices OwnDevices uses. */
export type DevicesSlices = Pick<
  ProfileRepository,
  "identity" | "conversations" | "group" | "heldKeys" | "storedOutbox" | "setOutbox" | "pending"
>;

/** What own-device management needs of the client around it. */
export interface DevicesHost {
  /** The slices own-device management works on: identity, conversations and groups, held keys, owed forwards, pending. */
  readonly profile: DevicesSlices;
  readonly transport: HttpTransport;
  /** The door (the log, with key transparency). */
  readonly verifier: DirectoryDoor;
  /** Key transparency (own-account monitoring); null for a profile without trust anchors. */
  readonly transparency: TransparencyVerifier | null;
  readonly engine: ConversationEngine;
  readonly keys: DeviceKeys;
  /** The streamed AEAD the history batches are sealed with. */
  readonly cipher: StreamCipher;
  readonly authed: Authed;
  save(): Promise<void>;
  history(): Promise<HistoryStore> | null;
  /** Fetches and processes everything new (SyncOrchestrator.catchUp). */
  catchUp(): Promise<void>;
  /** Sends one owed key forward (SyncOrchestrator.flushOne). */
  flushOne(f: ProfileRepository["forwards"][number], items: ReceivedItem[]): Promise<void>;
}

export class OwnDevices {
  constructor(private readonly host: DevicesHost) {}

  private get profile(): DevicesSlices {
    return this.host.profile;
  }
  private get transport(): HttpTransport {
    return this.host.transport;
  }
  private get verifier(): DirectoryDoor {
    return this.host.verifier;
  }
  private get transparency(): TransparencyVerifier | null {
    return this.host.transparency;
  }
  private get handle(): string {
    return this.profile.identity.handle;
  }
  private get deviceId(): string {
    return this.profile.identity.deviceId;
  }
  private authed<T>(fn: () => Promise<T>): Promise<T> {
    return this.host.authed(fn);
  }
  private save(): Promise<void> {
    return this.host.save();
  }

  /**
   * This user's devices and own-account alerts. With key transparency, from the verified directory log (read up to
   * the latest accepted checkpoint); without, the server's unverified answer and no alerts.
   */
  async ownDevices(): Promise<{
    verified: boolean;
    checkpointSize: number | null;
    devices: OwnDevice[];
    alerts: DirectoryAlert[];
    error: string | null;
  }> {
    return this.authed(async () => {
      if (!this.transparency) {
        const me = await this.transport.me();
        return {
          verified: false,
          checkpointSize: null,
          devices: me.devices.map((d) => ({
            id: d.id,
            name: d.name,
            key: d.signaturePublicKey,
            logIndex: d.logIndex ?? -1,
            time: d.createdAt,
            revokedLogIndex: d.revokeLogIndex ?? null,
            self: d.id === this.deviceId,
            expected: true,
          })),
          alerts: [],
          error: null,
        };
      }
      let error: string | null = null;
      try {
        await this.transparency.refresh(true);
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      const s = this.transparency.state;
      await this.save();
      return {
        verified: true,
        checkpointSize: s.checkpoint?.size ?? null,
        devices: Object.values(s.own.devices).sort((a, b) => a.logIndex - b.logIndex),
        alerts: s.alerts,
        error,
      };
    });
  }

  /** Dismiss own-account alerts about `device` (a device the user enrolled); true if it changed anything. */
  async ackDevice(device: string): Promise<boolean> {
    if (!this.transparency)
      throw new ValiseError("bad_request", "this profile has no key transparency (enrolled without a bundle)");
    const hit = this.transparency.ack(device);
    await this.save();
    return hit;
  }

  /**
   * The user revokes another of their own devices (lost or stolen): a `device.revoke` entry in the directory log, its
   * sessions and key packages gone; every group it is in removes it before anything new is sent there. The device in
   * use cannot revoke itself. The own-account alert the revocation raises here is dismissed (this device made it).
   */
  async revokeOwnDevice(device: string): Promise<void> {
    if (device === this.deviceId)
      throw new ValiseError("bad_request", "this device cannot revoke itself: revoke it from another of your devices");
    await this.authed(() => this.transport.revokeOwnDevice(device));
    if (this.transparency) {
      await this.transparency.refresh(true).catch(() => undefined);
      this.transparency.ack(device);
    }
    await this.save();
  }

  /** Tell the security officers that the server's directory disagrees with the log (an officer alert). */
  async reportMismatch(subject: string, differences: string[]): Promise<void> {
    await this.authed(() =>
      this.transport.reportKt({
        kind: "directory_mismatch",
        subject: subject.slice(0, 200),
        detail: differences.join("; ").slice(0, 2000),
      }),
    );
  }

  /**
   * History for this user's new device (issue 14 part 1): after `devices approve`, this device forwards the cable
   * and document keys it holds to that device only, in every unit and link conversation the device is (or, after a
   * reconcile here, becomes) a member of — end to end inside MLS, checked by the receiver like any forward. Only an
   * active device of this user in the directory (the log) can be approved; an unapproved device gets nothing old.
   * The forwards are owed in the profile and sent in messages of at most 200 keys under fixed idempotency keys, so an
   * interrupted approval resumes where it stopped (`onProgress(sent, total)` counts messages).
   * With a history store (ClientOptions.history), the message history follows (history-transfer.ts): encrypted
   * batches and a signed manifest to that device only; `onHistory` reports its progress; it resumes likewise.
   */
  async approveDevice(
    device: string,
    onProgress?: (done: number, total: number) => void,
    onHistory?: (p: HistoryProgress) => void,
  ): Promise<{
    conversations: number;
    keys: number;
    history?: { transfer: string; messages: number; batches: number; resumed: boolean; replaced?: string };
  }> {
    return this.authed(async () => {
      let me = await this.verifier.user(this.handle);
      if (!me?.devices.some((x) => x.id === device)) {
        // A device enrolled since this directory answer was cached (a long-running app approves a device seconds
        // after its enrolment): ask the log again, which waits for the checkpoint that holds it.
        this.verifier.forget();
        me = await this.verifier.user(this.handle);
      }
      const d = me?.devices.find((x) => x.id === device);
      if (!me || !d) throw new ValiseError("not_found", `${device} is not a device of ${this.handle} in the directory`);
      if (d.revokedAt !== null) throw new ValiseError("forbidden", `${device} is revoked: no history is sent to it`);
      if (device === this.deviceId) throw new ValiseError("bad_request", "this is the device itself");
      if (this.transparency) this.transparency.ack(device);
      await this.host.catchUp();
      let keys = 0;
      let conversations = 0;
      const owed = this.profile.storedOutbox("forwards") ?? [];
      const group = (id: string) => this.profile.group(id);
      for (const conv of Object.values(this.profile.conversations)) {
        if (conv.kind !== "unit" && conv.kind !== "link") continue;
        const n = forwardPayloads(this.profile.heldKeys, conv, me, device).reduce(
          (a, p) => a + p.cables.length + p.documents.length,
          0,
        );
        if (n === 0) continue;
        if (!groupMembers(group(conv.id)).some((m) => m.device === device)) await this.host.engine.reconcile(conv.id);
        if (!groupMembers(group(conv.id)).some((m) => m.device === device)) continue;
        if (!owed.some((f) => f.conversation === conv.id && f.device === device))
          owed.push({ conversation: conv.id, to: this.handle, device, id: randomId("f").slice(2) });
        keys += n;
        conversations++;
      }
      this.profile.setOutbox("forwards", owed);
      await this.save();
      const items: ReceivedItem[] = [];
      const total = owed.filter((f) => f.device === device).length;
      let done = 0;
      onProgress?.(0, total);
      for (const f of [...owed].filter((x) => x.device === device)) {
        this.profile.setOutbox("forwards", [
          f,
          ...(this.profile.storedOutbox("forwards") ?? []).filter((x) => x.id !== f.id),
        ]);
        await this.host.flushOne(f, items);
        onProgress?.(++done, total);
      }
      this.profile.pending.push(...items);
      await this.save();
      const h = await this.host.history();
      if (!h) return { conversations, keys };
      const history = await sendHistory(this.transferHost(), h, device, onHistory);
      return { conversations, keys, history };
    });
  }

  /**
   * Records archive (issue 14): catches up (keys forwarded to this device arrive), then says what the verified log
   * makes this device: the units its user is the archive of, the accepted checkpoint, and the entries (with
   * inclusion proofs in that checkpoint) adding this device and assigning those units. Null units: not an archive.
   */
  async archiveEvidence(): Promise<ArchiveEvidence> {
    if (!this.transparency)
      throw new ValiseError(
        "bad_request",
        "this profile has no key transparency trust anchors: no archive without the log",
      );
    const t = this.transparency;
    await this.host.catchUp();
    await t.refresh(true);
    const cp = t.state.checkpoint;
    const u = Object.hasOwn(t.directory.users, this.handle) ? t.directory.users[this.handle]! : null;
    const d = Object.hasOwn(t.directory.devices, this.deviceId) ? t.directory.devices[this.deviceId]! : null;
    if (!cp || !u || !d) throw new ValiseError("log_not_verified", "this device is not in the verified directory log");
    const units = u.role === "archivist" && !u.disabled ? [...(u.archives ?? [])] : [];
    if (units.length === 0)
      throw new ValiseError(
        "forbidden",
        `${this.handle} is the records archive of no unit in the directory log (valise admin archive assign ${this.handle} UNIT)`,
      );
    const prove = async (index: number) => {
      const entry = await this.transport.logEntry(index);
      const proof = await this.transport.logInclusionProof(index, cp.size);
      // The server's copies are checked here as the third party will: in the accepted tree, at that index.
      if (!verifyInclusion(leafHash(entry), index, cp.size, proof, fromBase64(cp.rootHash)))
        throw new ValiseError(
          "log_not_verified",
          `the server's inclusion proof for log entry ${index} does not verify`,
        );
      return { index, entry: toBase64(entry), proof: proof.map((h) => toBase64(h)) };
    };
    const assignments = [];
    for (const unit of units) assignments.push(await prove(u.archiveIndex![unit]!));
    return {
      archivist: this.handle,
      device: this.deviceId,
      deviceKey: this.profile.identity.signaturePublicKey,
      units,
      checkpoint: { note: cp.note, size: cp.size, rootHash: cp.rootHash },
      proofs: { device: await prove(d.addIndex), assignments },
    };
  }

  /** What history-transfer.ts needs of this client. */
  transferHost(): TransferHost {
    return {
      handle: this.handle,
      deviceId: this.deviceId,
      transport: this.transport,
      cipher: this.host.cipher,
      signingKey: this.host.keys.signaturePrivateKey,
      user: (h) => this.verifier.user(h),
      channelTo: (device) => this.host.engine.historyChannel(device),
      send: (conv, payload, idem) => this.host.engine.sendPayload(conv, payload, idem),
    };
  }
}
