/**
 * The one ciphersuite Valise speaks, and where its crypto comes from. The provider is a capability (STYLE.md §3):
 * browsers use ts-mls's default (Web Crypto + @hpke), Node processes install the synchronous `node:crypto` provider
 * from `./node/provider.js` once at start-up, or pass one per call in `GroupContext.crypto`.
 */
import { defaultCryptoProvider, getCiphersuiteFromName } from "ts-mls";
import type { CiphersuiteImpl, CiphersuiteName, CryptoProvider } from "ts-mls";

/** Post-quantum hybrid: X-Wing (X25519 + ML-KEM-768) KEM, AES-256-GCM, SHA-512, Ed25519 signatures (id 0x0053). */
export const DEFAULT_CIPHERSUITE = "MLS_256_XWING_AES256GCM_SHA512_Ed25519" satisfies CiphersuiteName;

let current: CryptoProvider = defaultCryptoProvider;
const impls = new WeakMap<CryptoProvider, Promise<CiphersuiteImpl>>();

/** Install the process-wide crypto provider (call once at start-up; tests may swap it). */
export function setCryptoProvider(p: CryptoProvider): void {
  current = p;
}
export function getCryptoProvider(): CryptoProvider {
  return current;
}

/** The ciphersuite implementation for `provider` (default: the installed one), built once per provider. */
export function suiteImpl(provider: CryptoProvider = current): Promise<CiphersuiteImpl> {
  let p = impls.get(provider);
  if (p === undefined) {
    p = provider.getCiphersuiteImpl(getCiphersuiteFromName(DEFAULT_CIPHERSUITE));
    impls.set(provider, p);
  }
  return p;
}
