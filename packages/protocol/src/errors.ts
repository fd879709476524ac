/** Mapping ts-mls failures onto ValiseError codes. */
import { ValiseError, isValiseError } from "@valise/core";
import type { DoorCheck } from "./verifier.js";

/** Anything thrown inside an MLS operation becomes a ValiseError; a refusal at the door wins over other causes. */
export function asProtocolError(e: unknown, door: DoorCheck, what: string): ValiseError {
  if (isValiseError(e)) return e;
  const first = door.refused[0];
  if (first !== undefined)
    return new ValiseError(
      "device_not_verified",
      `${what}: ${first.cred === null ? "a credential" : `device ${first.cred.device} of ${first.cred.user}`} refused: ${first.reason}`,
      first.cred === null
        ? { reason: first.reason }
        : { user: first.cred.user, device: first.cred.device, reason: first.reason },
    );
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new ValiseError("protocol_error", `${what}: ${msg}`);
}

/** Run an MLS operation, converting its failures. */
export async function guarded<T>(door: DoorCheck, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw asProtocolError(e, door, what);
  }
}
