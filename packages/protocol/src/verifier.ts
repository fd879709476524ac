/**
 * THE single door: "is this device really this user's, per the directory?". Every path that encrypts to a device or
 * accepts a handshake message from or about one goes through a DeviceVerifier; key transparency later swaps the
 * implementation for a log-proof check. The same verifier also backs ts-mls's AuthenticationService (RFC 9420 §5.3.1:
 * credentials MUST be validated by the application), so ts-mls's own checks go through the door too.
 */
import { OK, ValiseError, toHex } from "@valise/core";
import type { Verdict } from "@valise/core";
import type { AuthenticationService, Credential, RatchetTree } from "ts-mls";
import { deviceCredentialOf, leafCredential } from "./credential.js";
import type { DeviceCredential } from "./credential.js";

export interface DeviceVerifier {
  verifyDevice(cred: DeviceCredential): Promise<Verdict>;
}

/**
 * Trees (by identity: ts-mls trees are immutable values) whose every leaf this verifier has accepted. Within an epoch
 * the tree does not change, so sending many messages asks the door once per member per epoch; a revocation reaches
 * the group as a Remove commit (DESIGN.md, "Membership follows the directory"), which makes a new tree.
 */
const verifiedTrees = new WeakMap<DeviceVerifier, WeakSet<RatchetTree>>();

/**
 * One operation's view of the door: remembers verdicts so that our explicit checks and ts-mls's callbacks ask the
 * verifier once per credential, and records refusals so a ts-mls failure can be reported as `device_not_verified`.
 */
export class DoorCheck implements AuthenticationService {
  private readonly verdicts = new Map<string, Promise<Verdict>>();
  readonly refused: { cred: DeviceCredential | null; reason: string }[] = [];
  /** Members let through only because `tolerateRevoked` was set: revoked since they were added. */
  readonly tolerated: DeviceCredential[] = [];
  /**
   * `tolerateRevoked` (joining from a Welcome only): a member whose device was revoked after it was added passes —
   * the group was made while it was active, and a Remove is the way it leaves (the joiner's own first send commits
   * it, nothing is ever encrypted to it: see encryptMessage). Refusing would leave the joiner outside a conversation
   * it was rightly added to, every later item undecryptable. A device never logged, or with another key, still fails.
   */
  constructor(
    private readonly verifier: DeviceVerifier,
    private readonly opts: { tolerateRevoked?: boolean } = {},
  ) {}

  /**
   * Every leaf of `tree` must pass the door (cached per verifier and tree value), except the leaves in `leaving`
   * (leaf indices a Remove in the same commit takes out): a removal must never need the removed member — a revoked
   * device — to pass the door, or revoking a device would block every later commit to its groups.
   */
  async requireTree(tree: RatchetTree, what: string, leaving: ReadonlySet<number> = new Set()): Promise<void> {
    const seen = verifiedTrees.get(this.verifier);
    if (seen?.has(tree)) return;
    const creds: (DeviceCredential | null)[] = [];
    for (let i = 0; i < tree.length; i += 2) {
      const n = tree[i];
      if (n?.nodeType === "leaf" && !leaving.has(i / 2)) creds.push(leafCredential(n.leaf));
    }
    await this.requireAll(creds, what);
    if (leaving.size === 0) this.markTree(tree);
  }

  /** Record that every leaf of `tree` has passed (the caller checked the ones that changed since a verified tree). */
  markTree(tree: RatchetTree): void {
    if (this.tolerated.length > 0) return; // a tree with revoked members is not one every member of passed
    let seen = verifiedTrees.get(this.verifier);
    if (seen === undefined) verifiedTrees.set(this.verifier, (seen = new WeakSet()));
    seen.add(tree);
  }

  isTreeVerified(tree: RatchetTree): boolean {
    return verifiedTrees.get(this.verifier)?.has(tree) ?? false;
  }

  verdict(cred: DeviceCredential): Promise<Verdict> {
    const key = `${cred.user}\n${cred.device}\n${toHex(cred.signaturePublicKey)}`;
    let v = this.verdicts.get(key);
    if (v === undefined) {
      v = this.verifier.verifyDevice(cred).then(
        (r) => r,
        (e: unknown): Verdict => ({ ok: false, reason: `verifier failed: ${String(e)}` }),
      );
      this.verdicts.set(key, v);
    }
    return v.then((r) => {
      if (!r.ok && r.revoked && this.opts.tolerateRevoked) {
        if (!this.tolerated.some((c) => c.device === cred.device)) this.tolerated.push(cred);
        return OK;
      }
      if (!r.ok) this.refused.push({ cred, reason: r.reason });
      return r;
    });
  }

  /** Throws ValiseError("device_not_verified") unless the verifier accepts `cred`. */
  async require(cred: DeviceCredential | null, what: string): Promise<DeviceCredential> {
    if (cred === null) {
      this.refused.push({ cred, reason: "not a Valise credential" });
      throw new ValiseError("device_not_verified", `${what}: not a Valise device credential`);
    }
    const r = await this.verdict(cred);
    if (!r.ok)
      throw new ValiseError(
        "device_not_verified",
        `${what}: device ${cred.device} of ${cred.user} refused: ${r.reason}`,
        {
          user: cred.user,
          device: cred.device,
          reason: r.reason,
        },
      );
    return cred;
  }

  async requireAll(creds: readonly (DeviceCredential | null)[], what: string): Promise<void> {
    await Promise.all(creds.map((c) => this.require(c, what)));
  }

  // ts-mls AuthenticationService: called for key packages, leaf nodes of trees, commit paths, GroupInfo signers.
  async validateCredential(credential: Credential, signaturePublicKey: Uint8Array): Promise<boolean> {
    const cred = deviceCredentialOf(credential, signaturePublicKey);
    if (cred === null) {
      this.refused.push({ cred, reason: "not a Valise credential" });
      return false;
    }
    return (await this.verdict(cred)).ok;
  }
}
