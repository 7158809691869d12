import { timingSafeEqual } from "node:crypto";
import { MAX_KEY_LENGTH, fingerprintKey } from "./key.js";

/**
 * Number of bytes compared at least. Every presented key up to this length
 * costs the same, and a longer one costs what its own length costs.
 */
const MIN_COMPARED_LENGTH = 64;

// One scratch buffer serves every comparison, since they all run synchronously.
const scratch = Buffer.alloc(MAX_KEY_LENGTH);
// Views of the common compared length, made once because a view costs about
// as much as the comparison itself.
const scratchMinimum = scratch.subarray(0, MIN_COMPARED_LENGTH);

/**
 * A key stored for comparison in constant time: its bytes, zero-padded to
 * `MAX_KEY_LENGTH`, and its length.
 */
export class StoredKey {
  readonly #padded = Buffer.alloc(MAX_KEY_LENGTH);
  readonly #paddedMinimum = this.#padded.subarray(0, MIN_COMPARED_LENGTH);
  readonly #length: number;

  constructor(key: string) {
    this.#length = this.#padded.write(key, "latin1");
  }

  /**
   * Tells whether `presented` is this key. Both sides are zero-padded to at
   * least `MIN_COMPARED_LENGTH` bytes and compared by
   * `crypto.timingSafeEqual`, and the lengths are compared apart. The work
   * thus depends only on the presented length, so neither the key nor its
   * length can be learned from the time it takes.
   */
  equals(presented: Buffer): boolean {
    const compared = Math.min(
      Math.max(presented.length, MIN_COMPARED_LENGTH),
      MAX_KEY_LENGTH,
    );
    const copied = presented.copy(scratch, 0, 0, compared);
    scratch.fill(0, copied, compared);

    const sameBytes =
      compared === MIN_COMPARED_LENGTH
        ? timingSafeEqual(scratchMinimum, this.#paddedMinimum)
        : timingSafeEqual(
            scratch.subarray(0, compared),
            this.#padded.subarray(0, compared),
          );
    const sameLength = presented.length === this.#length;
    return sameBytes && sameLength;
  }
}

/**
 * The valid keys: the current key and, for `graceMs` after a rotation, the
 * key it replaced. During a grace period a presented key is compared with
 * both, so a match on the first does not end the work early.
 */
export class KeyMatcher {
  #current: StoredKey;
  #currentFingerprint: string;
  #previous: StoredKey | undefined;
  #previousExpiresAt = 0;
  readonly #graceMs: number;

  constructor(key: string, graceMs: number) {
    this.#current = new StoredKey(key);
    this.#currentFingerprint = fingerprintKey(key);
    this.#graceMs = graceMs;
  }

  /** Fingerprint of the current key. */
  get fingerprint(): string {
    return this.#currentFingerprint;
  }

  /** Tells whether `presented` is the current key alone. */
  isCurrent(presented: Buffer): boolean {
    return this.#current.equals(presented);
  }

  /** Tells whether `presented` is a valid key, current or in its grace period. */
  matches(presented: Buffer): boolean {
    const current = this.#current.equals(presented);
    if (this.#previous === undefined) {
      return current;
    }

    // Whether a grace period runs is no secret, but which key matched is.
    const previous = this.#previous.equals(presented);
    if (performance.now() >= this.#previousExpiresAt) {
      this.#previous = undefined;
      return current;
    }
    return current || previous;
  }

  /**
   * Makes `key` the current key. The replaced key stays valid for `graceMs`
   * milliseconds, and any older key stops being valid at once. Returns false
   * when `key` is already the current key.
   */
  replace(key: string): boolean {
    if (this.#current.equals(Buffer.from(key, "latin1"))) {
      return false;
    }

    if (this.#graceMs > 0) {
      this.#previous = this.#current;
      this.#previousExpiresAt = performance.now() + this.#graceMs;
    } else {
      this.#previous = undefined;
      this.#previousExpiresAt = 0;
    }
    this.#current = new StoredKey(key);
    this.#currentFingerprint = fingerprintKey(key);
    return true;
  }
}
