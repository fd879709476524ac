/** What the cable and document services need from the client (kept narrow so they stay testable). */
import type { HttpTransport, ServerUser } from "./transport.js";
import type { ConversationTarget } from "./profile.js";
import type { ProfileRepository } from "./profile-repo.js";
import type { CablePayload, DocumentPayload } from "./items.js";
import type { StreamCipher } from "./content.js";

/**
 * The profile slices the cable and document services own: the held keys (read, and created on the first key
 * written) and the resumable uploads.
 */
export type ContentSlices = Pick<
  ProfileRepository,
  "heldKeys" | "cables" | "documents" | "uploads" | "upload" | "uploadList" | "deleteUpload"
>;

export interface ContentHost {
  readonly handle: string;
  readonly deviceId: string;
  readonly transport: HttpTransport;
  readonly cipher: StreamCipher;
  readonly profile: ContentSlices;
  authed<T>(fn: () => Promise<T>): Promise<T>;
  /** This user's directory record, through the door. */
  me(): Promise<ServerUser>;
  user(handle: string): Promise<ServerUser | null>;
  /** Sends a key payload to a target's conversation; recorded in the outbox first, so a crash retries it. */
  deliver(target: ConversationTarget, payload: CablePayload | DocumentPayload): Promise<void>;
  save(): Promise<void>;
  catchUp(): Promise<void>;
}
