/**
 * `--no-wait` (any profile command): fail at once when another process holds the profile instead of waiting. Its own
 * module so that the entry point can set it without loading the client SDK.
 */
export const profileOptions = { noWait: false };
