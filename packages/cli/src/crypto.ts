/** Installs the fast Node crypto provider for MLS when available (falls back to the portable default). */
export async function installNodeCrypto(): Promise<void> {
  try {
    const proto = await import("@valise/protocol");
    const node = (await import("@valise/protocol/node/provider")) as {
      nodeCryptoProvider?: Parameters<typeof proto.setCryptoProvider>[0];
    };
    if (node.nodeCryptoProvider) proto.setCryptoProvider(node.nodeCryptoProvider);
  } catch {
    /* portable provider stays */
  }
}
