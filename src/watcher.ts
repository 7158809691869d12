import { watch, type FSWatcher } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname } from "node:path";

/** Cause of a check of the key file. */
export type CheckReason = "watch" | "poll";

/** Options of `KeyFileWatcher`. */
export interface KeyFileWatcherOptions {
  /** Whether to listen for file system events on the key file's directory. */
  events: boolean;
  /** Interval between polls in milliseconds; 0 turns polling off. */
  pollIntervalMs: number;
  /** Reads the key file again; called once at a time, never concurrently. */
  check: (reason: CheckReason) => Promise<void>;
  /** Reports that events could not be set up or stopped arriving. */
  watchFailed: (error: Error) => void;
  /** Reports that events work again after a failure. */
  watchRestored: () => void;
}

/** Quiet time after the last event before the key file is read, in ms. */
export const DEBOUNCE_MS = 30;

/** Maximum delay between the first event of a burst and the read, in ms. */
export const MAX_DEBOUNCE_MS = 200;

/**
 * Calls `check` when the key file may have changed: after file system events
 * on its parent directory settle, and at every poll.
 *
 * The directory is watched, not the file, because a watch on the file itself
 * stops reporting after the first rename over it, which is how editors, `mv`
 * and Kubernetes Secret volumes replace files. Every event counts as a
 * possible change, whatever file it names, since with symlinks (as in a
 * Secret volume) the key file's content changes when another entry does.
 *
 * Neither the watch nor the timers keep the process alive.
 */
export class KeyFileWatcher {
  readonly #directory: string;
  readonly #options: KeyFileWatcherOptions;
  #watcher: FSWatcher | undefined;
  #watchedDirectory: string | undefined;
  #watchFailed = false;
  #debounceTimer: NodeJS.Timeout | undefined;
  #burstStartedAt = 0;
  #pollTimer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #pendingReason: CheckReason | undefined;
  #polling = false;
  #closed = false;

  constructor(keyPath: string, options: KeyFileWatcherOptions) {
    this.#directory = dirname(keyPath);
    this.#options = options;
  }

  /** Starts watching and polling. */
  async start(): Promise<void> {
    if (this.#options.events) {
      await this.#arm();
    }
    if (this.#options.pollIntervalMs > 0) {
      this.#pollTimer = setInterval(() => {
        void this.#poll();
      }, this.#options.pollIntervalMs);
      this.#pollTimer.unref();
    }
  }

  /** Stops watching and polling, and waits for a running check to end. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#disarm();
    clearTimeout(this.#debounceTimer);
    clearInterval(this.#pollTimer);
    this.#pendingReason = undefined;
    await this.#running;
  }

  async #arm(): Promise<void> {
    this.#disarm();

    let identity: string;
    try {
      identity = await this.#directoryIdentity();
      if (this.#closed) {
        return;
      }
      // Another re-arm may have finished during the await.
      this.#disarm();
      this.#watcher = watch(this.#directory, { persistent: false }, () => {
        this.#schedule();
      });
    } catch (error) {
      this.#fail(error);
      return;
    }

    this.#watchedDirectory = identity;
    this.#watcher.on("error", (error) => {
      this.#disarm();
      this.#fail(error);
    });
    if (this.#watchFailed) {
      this.#watchFailed = false;
      this.#options.watchRestored();
    }
  }

  #disarm(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#watchedDirectory = undefined;
  }

  #fail(error: unknown): void {
    this.#watchFailed = true;
    const reason = error instanceof Error ? error.message : String(error);
    const fallback =
      this.#options.pollIntervalMs > 0
        ? "changes to the key file are seen only at the next poll"
        : "changes to the key file are seen only when a request presents " +
          "the new key; set pollIntervalMs to poll the file";
    const message = `cannot watch directory "${this.#directory}": ${reason}; ${fallback}`;
    this.#options.watchFailed(new Error(message, { cause: error }));
  }

  async #directoryIdentity(): Promise<string> {
    const stats = await stat(this.#directory);
    return `${stats.dev}:${stats.ino}`;
  }

  #schedule(): void {
    if (this.#closed) {
      return;
    }

    const now = performance.now();
    if (this.#debounceTimer === undefined) {
      this.#burstStartedAt = now;
    } else {
      clearTimeout(this.#debounceTimer);
    }

    const remaining = this.#burstStartedAt + MAX_DEBOUNCE_MS - now;
    const delay = Math.max(0, Math.min(DEBOUNCE_MS, remaining));
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = undefined;
      void this.#run("watch");
    }, delay);
    this.#debounceTimer.unref();
  }

  async #poll(): Promise<void> {
    // A poll slower than the interval, as on a slow network file system,
    // makes the next one skip instead of piling up.
    if (this.#polling) {
      return;
    }
    this.#polling = true;
    try {
      await this.#pollOnce();
    } finally {
      this.#polling = false;
    }
  }

  async #pollOnce(): Promise<void> {
    if (this.#options.events) {
      // Re-arm when the watch failed or the directory was replaced, since a
      // watch stays on the directory it was set up on.
      let identity: string | undefined;
      try {
        identity = await this.#directoryIdentity();
      } catch {
        identity = undefined;
      }
      if (this.#closed) {
        return;
      }
      if (identity === undefined) {
        this.#disarm();
      } else if (identity !== this.#watchedDirectory) {
        await this.#arm();
      }
    }
    await this.#run("poll");
  }

  /** Runs one check at a time, then one more if a request came meanwhile. */
  async #run(reason: CheckReason): Promise<void> {
    if (this.#closed) {
      return;
    }
    if (this.#running !== undefined) {
      this.#pendingReason = reason;
      return this.#running;
    }

    this.#running = this.#options.check(reason);
    try {
      await this.#running;
    } finally {
      this.#running = undefined;
    }

    const pending = this.#pendingReason;
    if (pending !== undefined) {
      this.#pendingReason = undefined;
      await this.#run(pending);
    }
  }
}
