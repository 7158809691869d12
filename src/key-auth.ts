import { EventEmitter } from "node:events";
import { stat } from "node:fs/promises";
import { KeyAuthError, describeReadError } from "./errors.js";
import { findAuthorization, parseAuthorization } from "./header.js";
import { digestKey, generateKey, parseKeyFileContent } from "./key.js";
import {
  describeLoosePermissions,
  readKeyFileSync,
  statSignature,
  writeKeyFile,
  type FileSignature,
} from "./key-file.js";
import { KeyMatcher, StoredKey } from "./key-matcher.js";
import { obtainInitialKey, readStableKeyFile } from "./initial-key.js";
import {
  resolveOptions,
  type KeyAuthOptions,
  type ResolvedOptions,
} from "./options.js";
import {
  basicChallenge,
  sendDuplicateAuthorization,
  sendUnauthorized,
  type Request,
  type Response,
} from "./response.js";
import { KeyFileWatcher, type CheckReason } from "./watcher.js";
import { WarningReporter } from "./warnings.js";

/** Cause of a key change. */
export type RotateReason = "watch" | "poll" | "request" | "rotate";

/** Payload of the `'rotate'` event. */
export interface RotateEvent {
  /** First 8 hex digits of the new key's SHA-256. */
  fingerprint: string;
  reason: RotateReason;
}

/** Events of `KeyAuth`. */
export interface KeyAuthEvents {
  rotate: [event: RotateEvent];
  warning: [error: KeyAuthError];
}

type Decision = "accepted" | "rejected" | "duplicate";

/**
 * Version of the key file last read, or written by `rotate()`. `unadopted`
 * is a valid key that a request read from it and did not adopt, because the
 * request presented another key.
 */
interface LastRead {
  signature: FileSignature | undefined;
  unadopted?: { key: string; stored: StoredKey };
}

/**
 * Creates a guard for the key file at `options.keyPath`, obtaining the first
 * key as `options.init` specifies and then following rewrites of the file.
 *
 * Rejects with a `TypeError` or `RangeError` for invalid options, with a
 * `KeyAuthError` when the key file cannot be read or contains no valid key,
 * and with the file system error when a new key cannot be written.
 */
export async function createKeyAuth(options: KeyAuthOptions): Promise<KeyAuth> {
  const resolved = resolveOptions(options);
  const { key, signature } = await obtainInitialKey(
    resolved.keyPath,
    resolved.init,
  );
  const auth = new KeyAuth(
    resolved,
    key,
    signature ?? statSignature(resolved.keyPath),
  );
  await auth.start();
  return auth;
}

/**
 * Guard for a `node:http` or `node:http2` server, created by `createKeyAuth`.
 * It emits `'rotate'` once per key change and `'warning'` for problems with
 * the key file, and never emits `'error'`.
 */
export class KeyAuth extends EventEmitter<KeyAuthEvents> {
  readonly #options: ResolvedOptions;
  readonly #matcher: KeyMatcher;
  readonly #challenge: string;
  readonly #unauthorizedBody: string;
  readonly #acceptBearer: boolean;
  #watcher: KeyFileWatcher | undefined;
  #lastRead: LastRead;
  #generation = 0;
  #rotation: Promise<void> = Promise.resolve();
  /** Key that `rotate()` is writing, until it has been adopted. */
  #rotatingKey: string | undefined;
  readonly #warnings = new WarningReporter(this);
  #started = false;
  #closed = false;

  /** @internal Use `createKeyAuth`. */
  constructor(
    options: ResolvedOptions,
    key: string,
    signature: FileSignature | undefined,
  ) {
    super();
    this.#options = options;
    this.#matcher = new KeyMatcher(key, options.graceMs);
    this.#lastRead = { signature };
    this.#challenge = basicChallenge(options.realm);
    this.#unauthorizedBody = `You must pass the API key from "${options.keyPath}" as the username\n`;
    this.#acceptBearer = options.schemes.includes("bearer");
  }

  /** Fingerprint of the current key: the first 8 hex digits of its SHA-256. */
  get fingerprint(): string {
    return this.#matcher.fingerprint;
  }

  /** @internal Checks permissions and starts following the key file. */
  async start(): Promise<void> {
    if (this.#started) {
      return;
    }
    this.#started = true;
    try {
      await this.#checkPermissions();

      if (this.#options.watch === false) {
        return;
      }
      this.#watcher = new KeyFileWatcher(this.#options.keyPath, {
        events: this.#options.watch === true,
        pollIntervalMs: this.#options.pollIntervalMs,
        check: (reason) => this.#refresh(reason),
        watchFailed: (error) =>
          this.#warnings.report(
            "watch",
            "WATCH_FAILED",
            error.message,
            error.message,
          ),
        watchRestored: () => this.#warnings.clear("watch"),
      });
      await this.#watcher.start();
    } finally {
      this.#warnings.release();
    }
  }

  /**
   * Tells whether the request carries a valid key. Otherwise sends 401 with
   * the Basic challenge, or 400 when the request has more than one
   * `Authorization` field, and returns false. Never throws.
   */
  check(req: Request, res: Response): boolean {
    const decision = this.#decide(req);
    if (decision === "accepted") {
      return true;
    }

    try {
      if (decision === "duplicate") {
        sendDuplicateAuthorization(req, res);
      } else {
        sendUnauthorized(req, res, this.#challenge, this.#unauthorizedBody);
      }
    } catch {
      // The response was closed or is not usable; the request stays rejected.
    }
    return false;
  }

  /** Tells whether the request carries a valid key, writing nothing. Never throws. */
  isAuthenticated(req: Request): boolean {
    return this.#decide(req) === "accepted";
  }

  /**
   * Returns Connect-style middleware, as used by Express: it calls `next()`
   * for a request with a valid key and otherwise sends the same response as
   * `check`, without calling `next`.
   */
  middleware(): (
    req: Request,
    res: Response,
    next: (error?: unknown) => void,
  ) => void {
    return (req, res, next) => {
      if (this.check(req, res)) {
        next();
      }
    };
  }

  /**
   * Writes a new key to the key file atomically and uses it at once. Rejects
   * with the file system error when the write fails, keeping the old key.
   */
  async rotate(): Promise<void> {
    // Rotations run one at a time, so the key adopted last is the one the
    // file contains.
    const rotation = this.#rotation.then(() => this.#rotateOnce());
    this.#rotation = rotation.catch(() => undefined);
    return rotation;
  }

  async #rotateOnce(): Promise<void> {
    const key = generateKey();
    this.#rotatingKey = key;
    try {
      await writeKeyFile(this.#options.keyPath, key);
      this.#lastRead = { signature: statSignature(this.#options.keyPath) };
      this.#adopt(key, "rotate");
    } finally {
      this.#rotatingKey = undefined;
    }
  }

  /** Stops watching and polling. Calling it again does nothing. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#watcher?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #decide(req: Request): Decision {
    try {
      const field = findAuthorization(req.rawHeaders);
      if (field.kind !== "single") {
        return field.kind === "duplicate" ? "duplicate" : "rejected";
      }

      const presented = parseAuthorization(field.value, this.#acceptBearer);
      if (presented === undefined) {
        return "rejected";
      }

      if (this.#matcher.matches(presented)) {
        return "accepted";
      }
      return this.#refreshForRequest(presented) ? "accepted" : "rejected";
    } catch {
      return "rejected";
    }
  }

  /**
   * Reads the key file again when its `stat` changed since it was last read,
   * so that a client which read a freshly rotated key file is accepted before
   * the watcher reacts. Only a key equal to the presented one is adopted, and
   * any other change is left to the watcher, so requests with wrong keys
   * cannot make a half-written file the key.
   *
   * NOTE: a synchronous read cannot tell a finished write from a paused one.
   * A file rewritten in place that pauses after 16 or more characters, read
   * by a client that sends exactly that prefix, is adopted until the watcher
   * reads the whole file (about 50 ms later). Writers that rename a complete
   * file over the key, as `rotate()` and the command line do, avoid this.
   */
  #refreshForRequest(presented: Buffer): boolean {
    if (this.#closed || this.#options.watch === false) {
      return false;
    }

    const path = this.#options.keyPath;
    const signature = statSignature(path);
    if (signature === undefined) {
      return false;
    }
    if (signature !== this.#lastRead.signature) {
      const key = this.#readKeyForRequest(path);
      this.#lastRead =
        key === undefined
          ? { signature }
          : { signature, unadopted: { key, stored: new StoredKey(key) } };
    }

    // A key read for an earlier request with another key is still the file's
    // content, so it is compared again without reading the file.
    const unadopted = this.#lastRead.unadopted;
    if (unadopted === undefined || !unadopted.stored.equals(presented)) {
      return false;
    }

    this.#lastRead = { signature };
    this.#warnings.clear("file");
    // Listeners run after the decision, so one that throws cannot fail it.
    this.#adopt(unadopted.key, "request", true);
    return true;
  }

  /** Reads the key file synchronously, reporting a failed read or invalid key. */
  #readKeyForRequest(path: string): string | undefined {
    let content: Buffer;
    try {
      content = readKeyFileSync(path);
    } catch (error) {
      this.#reportUnreadable(error);
      return undefined;
    }

    const parsed = parseKeyFileContent(content);
    if (!parsed.ok) {
      this.#reportInvalid(content, parsed.problem);
      return undefined;
    }
    return parsed.key;
  }

  /** Reads the key file and adopts its key if it changed. Never rejects. */
  async #refresh(reason: CheckReason): Promise<void> {
    // A key adopted while the file was read makes that content stale, so the
    // file is read again.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.#refreshOnce(reason)) {
        return;
      }
    }
  }

  /** Returns false when a key was adopted elsewhere during the read. */
  async #refreshOnce(reason: CheckReason): Promise<boolean> {
    const path = this.#options.keyPath;
    const generation = this.#generation;

    let read;
    try {
      read = await readStableKeyFile(path);
    } catch (error) {
      this.#reportUnreadable(error);
      return true;
    }
    if (read === undefined || this.#closed) {
      return true;
    }
    if (generation !== this.#generation) {
      return false;
    }
    this.#lastRead = { signature: read.signature };

    const parsed = parseKeyFileContent(read.content);
    if (!parsed.ok) {
      this.#reportInvalid(read.content, parsed.problem);
      return true;
    }
    this.#warnings.clear("file");
    this.#adopt(parsed.key, reason);
    await this.#checkPermissions();
    return true;
  }

  /**
   * Makes `key` the current key and emits `'rotate'` if it changed. With
   * `deferEvent`, listeners run on the next tick instead of inside the caller.
   */
  #adopt(key: string, reason: RotateReason, deferEvent = false): void {
    if (!this.#matcher.replace(key)) {
      return;
    }
    this.#generation++;

    // The watcher or a request can see the renamed file before `rotate()`
    // resumes, but the change is still the rotation's.
    const event: RotateEvent = {
      fingerprint: this.#matcher.fingerprint,
      reason: key === this.#rotatingKey ? "rotate" : reason,
    };
    if (deferEvent) {
      process.nextTick(() => this.emit("rotate", event));
    } else {
      this.emit("rotate", event);
    }
  }

  async #checkPermissions(): Promise<void> {
    let mode: number;
    try {
      mode = (await stat(this.#options.keyPath)).mode;
    } catch {
      return;
    }

    const message = describeLoosePermissions(this.#options.keyPath, mode);
    if (message === undefined) {
      this.#warnings.clear("permissions");
    } else {
      this.#warnings.report(
        "permissions",
        "KEY_FILE_PERMISSIONS",
        message,
        message,
      );
    }
  }

  #reportUnreadable(error: unknown): void {
    const problem = describeReadError(this.#options.keyPath, error);
    const message = `${problem}; the last valid key stays in use`;
    this.#warnings.report("file", "KEY_FILE_UNREADABLE", message, problem);
  }

  #reportInvalid(content: Buffer, problem: string): void {
    const condition = digestKey(content).toString("hex");
    const message =
      `key file "${this.#options.keyPath}" does not contain a valid key: ` +
      `the key ${problem}; the last valid key stays in use`;
    this.#warnings.report("file", "KEY_FILE_INVALID", message, condition);
  }
}
