/** Codes carried by every error and warning this module creates. */
export type KeyAuthErrorCode =
  | "KEY_FILE_INVALID"
  | "KEY_FILE_UNREADABLE"
  | "KEY_FILE_PERMISSIONS"
  | "WATCH_FAILED";

/**
 * Error with a stable `code`, thrown by `createKeyAuth` and emitted as a
 * `'warning'` event while the guard runs.
 */
export class KeyAuthError extends Error {
  readonly code: KeyAuthErrorCode;

  constructor(code: KeyAuthErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyAuthError";
    this.code = code;
  }
}

/** Returns the errno code of a Node.js system error, or `undefined`. */
export function errnoCode(error: unknown): string | undefined {
  if (error instanceof Error && "code" in error) {
    const code = (error as NodeJS.ErrnoException).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** Describes a failed read of the key file in the usual words. */
export function describeReadError(keyPath: string, error: unknown): string {
  const code = errnoCode(error);
  if (code === "ENOENT") {
    return `key file "${keyPath}" not found`;
  }
  if (code === "EACCES" || code === "EPERM") {
    return `permission denied reading key file "${keyPath}"`;
  }
  if (code === "EISDIR") {
    return `key file "${keyPath}" is a directory`;
  }
  const reason = error instanceof Error ? error.message : String(error);
  return `failed to read key file "${keyPath}": ${reason}`;
}
