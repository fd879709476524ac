/**
 * Server side: the routing header of an MLS message (RFC 9420 §6), read with a bounded decode over attacker bytes.
 * For a PrivateMessage only the clear fields (§6.3: group_id, epoch, content_type) are visible.
 */
import { decodeMlsMessage } from "ts-mls";
import { decodeExact } from "./codec.js";

export type WireformatKind = "public" | "private" | "welcome" | "group_info" | "key_package";
export type ContentKind = "application" | "proposal" | "commit";
export interface MlsRoutingHeader {
  wireformat: WireformatKind;
  groupId?: Uint8Array;
  epoch?: bigint;
  contentType?: ContentKind;
}

export function inspectMlsMessage(bytes: Uint8Array): MlsRoutingHeader | null {
  const msg = decodeExact(decodeMlsMessage, bytes);
  if (msg === null || msg.version !== "mls10") return null;
  switch (msg.wireformat) {
    case "mls_private_message": {
      const pm = msg.privateMessage;
      return { wireformat: "private", groupId: pm.groupId, epoch: pm.epoch, contentType: pm.contentType };
    }
    case "mls_public_message": {
      const c = msg.publicMessage.content;
      return { wireformat: "public", groupId: c.groupId, epoch: c.epoch, contentType: c.contentType };
    }
    case "mls_welcome":
      return { wireformat: "welcome" };
    case "mls_group_info": {
      const gc = msg.groupInfo.groupContext;
      return { wireformat: "group_info", groupId: gc.groupId, epoch: gc.epoch };
    }
    case "mls_key_package":
      return { wireformat: "key_package" };
  }
}
