/** What a sync hands to the user: decrypted items, membership news, and alerts. */
export type ReceivedItem =
  | {
      type: "message";
      from: string;
      device: string;
      conversation: string;
      kind: string;
      label: string;
      text: string;
      seq: number;
      time: string;
    }
  | {
      type: "joined";
      from: string;
      conversation: string;
      kind: string;
      label: string;
      text: string;
      seq: number;
      time: string;
    }
  | { type: "alert"; from: string; conversation: string; label: string; text: string; seq: number; time: string };

/** Application payload inside MLS: versioned JSON. */
export interface TextPayload {
  t: "text";
  text: string;
}

/**
 * Authenticated data bound to every application message (RFC 9420 §6.3.1 authenticated_data): the conversation and
 * its label. A server that moves or relabels a ciphertext makes it fail the receiver's check.
 */
export function messageAad(conversation: string, label: string): string {
  return `valise/1\nconversation=${conversation}\nlabel=${label}`;
}
