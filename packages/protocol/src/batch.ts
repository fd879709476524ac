/**
 * A run of application messages decrypted in order, their signatures checked concurrently (catch-up).
 *
 * An application message costs one Ed25519 verify (RFC 9420 §6.1) plus the decryption around it, and each
 * decryption needs the state the previous one left (the secret tree ratchets, §9). The verify is the one piece that
 * does not feed the next message, so here it is started for message i and left to run — on Node in libuv's thread
 * pool (`verifyInPool`, see node/provider.ts) — while message i+1 is decrypted on the calling thread.
 *
 * Nothing is released before its signature is known good: the results are returned only after every verify of the
 * run has finished, and they stop before the first message whose signature fails, whose decryption fails, or which
 * is not an application PrivateMessage of this group. The group state returned is the one after the last returned
 * message, exactly the state processMessage would have produced for that prefix (a message refused there leaves the
 * state as it was). The caller handles the rest of the run with processMessage, which reports the refusal.
 */
import { ValiseError, equalBytes } from "@valise/core";
import { decodeMlsMessage } from "ts-mls";
import type { CiphersuiteImpl, ClientState, PrivateMessage, Signature } from "ts-mls";
import { decryptApplication } from "./application.js";
import { suiteImpl } from "./ciphersuite.js";
import { decodeExact } from "./codec.js";
import type { GroupContext } from "./context.js";
import type { DeviceCredential } from "./credential.js";
import { clientState, wrapGroup } from "./group.js";
import type { Group } from "./group.js";
import { DoorCheck } from "./verifier.js";

/** A Signature that can also verify off the calling thread (the Node provider: libuv's thread pool). */
export interface PooledSignature extends Signature {
  verifyInPool?(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

export interface ApplicationMessage {
  sender: DeviceCredential;
  plaintext: Uint8Array;
  aad: Uint8Array;
}

export interface ApplicationBatch {
  /** The group after the last message in `results` (the input group when `results` is empty). */
  group: Group;
  /** One per message, in order, for the longest prefix that decrypted and verified. */
  results: ApplicationMessage[];
}

/** The application PrivateMessage of this group in `bytes`, or null (anything else ends the batch). */
function applicationMessage(bytes: Uint8Array, state: ClientState): PrivateMessage | null {
  const msg = decodeExact(decodeMlsMessage, bytes);
  if (msg === null || msg.version !== "mls10" || msg.wireformat !== "mls_private_message") return null;
  const pm = msg.privateMessage;
  if (pm.contentType !== "application" || !equalBytes(pm.groupId, state.groupContext.groupId)) return null;
  return pm;
}

/**
 * Decrypts `messages` in order as processMessage would, verifying the signatures concurrently; see the module
 * comment for what is returned. At most `messages.length` results; fewer when one is refused (the caller's
 * processMessage on that message says why).
 */
export async function processApplications(
  ctx: GroupContext,
  g: Group,
  messages: readonly Uint8Array[],
): Promise<ApplicationBatch> {
  const cs = await suiteImpl(ctx.crypto);
  const real = cs.signature as PooledSignature;
  const verifyLater = real.verifyInPool !== undefined ? real.verifyInPool.bind(real) : real.verify.bind(real);
  // The signature checks of this run, started as ts-mls asks for them, awaited below. A rejected promise counts as
  // a bad signature.
  const checks: Promise<boolean>[] = [];
  const deferred: CiphersuiteImpl = {
    ...cs,
    signature: {
      ...cs.signature,
      verify: (publicKey, message, signature) => {
        checks.push(verifyLater(publicKey, message, signature).catch(() => false));
        return Promise.resolve(true);
      },
    },
  };

  const door = new DoorCheck(ctx.verifier);
  let state = clientState(g, door);
  const states: ClientState[] = [];
  const decrypted: ApplicationMessage[] = [];
  for (const bytes of messages) {
    const pm = applicationMessage(bytes, state);
    if (pm === null) break;
    const before = checks.length;
    let r;
    try {
      r = await decryptApplication(state, pm, deferred);
    } catch {
      break; // processMessage reports it
    }
    // Exactly one signature per application message (§6.1); anything else is not what this code was written for.
    if (checks.length !== before + 1) throw new ValiseError("internal", "processApplications: unexpected verify count");
    state = r.state;
    states.push(state);
    decrypted.push({ sender: r.sender, plaintext: r.plaintext, aad: r.aad });
  }
  const ok = await Promise.all(checks);
  let n = ok.indexOf(false);
  if (n === -1) n = decrypted.length;
  return {
    group: n === 0 ? g : wrapGroup(states[n - 1]!),
    results: decrypted.slice(0, n),
  };
}
