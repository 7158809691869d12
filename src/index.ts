export { createKeyAuth } from "./key-auth.js";
export type {
  KeyAuth,
  KeyAuthEvents,
  RotateEvent,
  RotateReason,
} from "./key-auth.js";
export type { InitMode, KeyAuthOptions } from "./options.js";
export type { Scheme } from "./header.js";
export type { Request, Response } from "./response.js";
export { KeyAuthError, type KeyAuthErrorCode } from "./errors.js";
export { generateKey } from "./key.js";
export { writeKeyFile, type WriteKeyFileOptions } from "./key-file.js";
