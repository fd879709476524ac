/** What every group operation needs: who we are, the door, and (optionally) which crypto to use. */
import type { CryptoProvider } from "ts-mls";
import type { DeviceKeys } from "./deviceKeys.js";
import type { DeviceVerifier } from "./verifier.js";

export interface GroupContext {
  keys: DeviceKeys;
  verifier: DeviceVerifier;
  /** Defaults to the provider installed with setCryptoProvider() (ts-mls's default unless changed). */
  crypto?: CryptoProvider;
}
