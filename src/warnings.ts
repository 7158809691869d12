import type { EventEmitter } from "node:events";
import { KeyAuthError, type KeyAuthErrorCode } from "./errors.js";

/** Independent conditions, each reported once until it is healthy again. */
export type ConditionSlot = "file" | "permissions" | "watch";

/** Distinct conditions remembered per slot to report each only once. */
const MAX_REPORTED_CONDITIONS = 100;

/**
 * Sends `'warning'` events for a guard, or `process.emitWarning` when the
 * guard has no `'warning'` listener, reporting each distinct condition once
 * until its slot is healthy again.
 */
export class WarningReporter {
  readonly #emitter: EventEmitter;
  /** Conditions reported per slot since the slot was last healthy. */
  readonly #reported = new Map<ConditionSlot, Set<string>>();
  /** Warnings kept back while the guard starts, or `undefined` once released. */
  #pendingWarnings: KeyAuthError[] | undefined = [];

  constructor(emitter: EventEmitter) {
    this.#emitter = emitter;
  }

  /**
   * Reports a warning unless `condition` was reported since `slot` was last
   * healthy. `condition` identifies the problem, such as a content digest.
   */
  report(
    slot: ConditionSlot,
    code: KeyAuthErrorCode,
    message: string,
    condition: string,
  ): void {
    const key = `${code}\n${condition}`;
    let reported = this.#reported.get(slot);
    if (reported === undefined) {
      reported = new Set();
      this.#reported.set(slot, reported);
    }
    if (reported.has(key)) {
      return;
    }
    // Bounds the memory that a writer cycling through bad contents can take,
    // at the cost of reporting an old content again.
    if (reported.size >= MAX_REPORTED_CONDITIONS) {
      reported.clear();
    }
    reported.add(key);

    const warning = new KeyAuthError(code, message);
    if (this.#pendingWarnings !== undefined) {
      this.#pendingWarnings.push(warning);
    } else {
      this.#emit(warning);
    }
  }

  /** Marks `slot` healthy, so its next problem is reported again. */
  clear(slot: ConditionSlot): void {
    this.#reported.delete(slot);
  }

  /**
   * Emits the warnings kept back while the guard started. Later warnings are
   * emitted as they are reported.
   */
  release(): void {
    const pending = this.#pendingWarnings ?? [];
    this.#pendingWarnings = undefined;
    for (const warning of pending) {
      this.#emit(warning);
    }
  }

  #emit(warning: KeyAuthError): void {
    // Deferred so that a listener added right after `await createKeyAuth()`
    // still gets the warnings found while the guard was created. Those are
    // kept back until `release`, because an immediate scheduled earlier
    // could run during one of the later awaits of the start.
    setImmediate(() => {
      if (this.#emitter.listenerCount("warning") > 0) {
        this.#emitter.emit("warning", warning);
      } else {
        process.emitWarning(warning);
      }
    });
  }
}
