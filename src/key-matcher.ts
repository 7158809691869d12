import { randomBytes, timingSafeEqual } from "node:crypto";
import { digestKey, fingerprintKey } from "./key.js";

/**
 * The valid keys, stored as SHA-256 digests: the current key and, for
 * `graceMs` after a rotation, the key it replaced.
 *
 * A presented key is hashed and compared with both digests by
 * `crypto.timingSafeEqual`, so the work is the same whatever the presented
 * length, the key length, or whether a grace period is running.
 */
export class KeyMatcher {
  #current: Buffer;
  #currentFingerprint: string;
  #previous: Buffer;
  #previousExpiresAt = 0;
  readonly #graceMs: number;

  constructor(key: string, graceMs: number) {
    this.#current = digestKey(key);
    this.#currentFingerprint = fingerprintKey(key);
    this.#previous = randomBytes(32);
    this.#graceMs = graceMs;
  }

  /** Fingerprint of the current key. */
  get fingerprint(): string {
    return this.#currentFingerprint;
  }

  /** Tells whether `digest` is the digest of the current key alone. */
  isCurrent(digest: Buffer): boolean {
    return timingSafeEqual(digest, this.#current);
  }

  /**
   * Tells whether `digest` belongs to a valid key. Both comparisons always
   * run, so a match on the first does not end the work early.
   */
  matches(digest: Buffer): boolean {
    const current = timingSafeEqual(digest, this.#current);
    const previous = timingSafeEqual(digest, this.#previous);
    const inGrace = performance.now() < this.#previousExpiresAt;
    return current || (previous && inGrace);
  }

  /**
   * Makes `key` the current key. The replaced key stays valid for `graceMs`
   * milliseconds, and any older key stops being valid at once. Returns false
   * when `key` is already the current key.
   */
  replace(key: string): boolean {
    const digest = digestKey(key);
    if (timingSafeEqual(digest, this.#current)) {
      return false;
    }

    if (this.#graceMs > 0) {
      this.#previous = this.#current;
      this.#previousExpiresAt = performance.now() + this.#graceMs;
    } else {
      this.#previous = randomBytes(32);
      this.#previousExpiresAt = 0;
    }
    this.#current = digest;
    this.#currentFingerprint = fingerprintKey(key);
    return true;
  }
}
