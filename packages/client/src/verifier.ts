/**
 * The directory door for now: a device is accepted iff the directory lists it, unrevoked, for that user with
 * exactly that signature key. Key transparency replaces this with a log-proof check behind the same interface;
 * until then this trusts the server's directory answer (stated, not hidden).
 */
import { equalBytes, fail, fromBase64, OK, revokedVerdict, type Verdict } from "@valise/core";
import type { DeviceCredential, DeviceVerifier } from "@valise/protocol";
import type { HttpTransport, ServerUser } from "./transport.js";

/**
 * The door plus the directory answers the SDK acts on (who is in a conversation, their clearance and devices).
 * DirectoryVerifier trusts the server; TransparencyVerifier (transparency.ts) checks every answer against the
 * witnessed directory log.
 */
export interface DirectoryDoor extends DeviceVerifier {
  /** The user's directory record, as checked by this door; null if there is no such user. */
  user(handle: string): Promise<ServerUser | null>;
  /** The members of a unit (handles, sorted), as checked by this door. */
  unitMembers(unit: string): Promise<string[]>;
  /**
   * A unit, the highest label it may carry and (when not `all`) how far back it shares keys with late members, in
   * seconds (`unit.share`), as checked by this door; null if there is no such unit.
   */
  unit(name: string): Promise<{ name: string; maxLabel: string; share?: string } | null>;
  /** Drop cached answers: the next question asks the server (and, with key transparency, the log) again. */
  forget(): void;
  /**
   * How much of the directory log this door's answers are proven against (the accepted witnessed checkpoint's
   * size); null when the door checks no log (it trusts the server's answers as they are).
   */
  provenSize(): number | null;
}

export class DirectoryVerifier implements DirectoryDoor {
  private readonly cache = new Map<string, { at: number; user: Promise<ServerUser | null> }>();
  constructor(
    private readonly transport: HttpTransport,
    private readonly ttlMs = 5_000,
    private readonly now: () => number = () => Date.now(),
  ) {}

  user(handle: string): Promise<ServerUser | null> {
    const hit = this.cache.get(handle);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.user;
    const user = this.transport.user(handle).catch(() => null);
    this.cache.set(handle, { at: this.now(), user });
    return user;
  }

  forget(): void {
    this.cache.clear();
  }

  provenSize(): number | null {
    return null;
  }

  async unitMembers(unit: string): Promise<string[]> {
    return (await this.transport.unitMembers(unit)).members;
  }

  async unit(name: string): Promise<{ name: string; maxLabel: string; share?: string } | null> {
    return (await this.transport.units()).units.find((u) => u.name === name) ?? null;
  }

  async verifyDevice(cred: DeviceCredential): Promise<Verdict> {
    let user = await this.user(cred.user);
    if (user && !user.devices.some((d) => d.id === cred.device)) {
      // A device enrolled since the cached answer: ask again before refusing.
      this.cache.delete(cred.user);
      user = await this.user(cred.user);
    }
    if (!user || user.handle !== cred.user) return fail(`user ${cred.user} not in the directory`);
    const dev = user.devices.find((d) => d.id === cred.device);
    if (!dev) return fail(`device ${cred.device} is not listed for ${cred.user}`);
    if (dev.revokedAt !== null) return revokedVerdict(`device ${cred.device} was revoked`);
    let key: Uint8Array;
    try {
      key = fromBase64(dev.signaturePublicKey);
    } catch {
      return fail("directory sent a malformed key");
    }
    if (!equalBytes(key, cred.signaturePublicKey))
      return fail(`device ${cred.device} has a different key in the directory`);
    return OK;
  }
}
