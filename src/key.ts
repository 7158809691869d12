import { hash, randomBytes } from "node:crypto";

/** Minimum key length in characters. */
export const MIN_KEY_LENGTH = 16;

/**
 * Maximum key length in characters. A longer key could not fit in an
 * `Authorization` header of at most 8192 characters once base64-encoded.
 */
export const MAX_KEY_LENGTH = 4096;

/**
 * Maximum size of a key file in bytes. A larger file is read only this far
 * and is then invalid, so a wrong path to a large file cannot stall a server.
 */
export const MAX_KEY_FILE_SIZE = MAX_KEY_LENGTH + 1024;

/** Result of reading key file content: the key, or why it is not one. */
export type KeyParseResult =
  { ok: true; key: string } | { ok: false; problem: string };

const UTF8_BOM = [0xef, 0xbb, 0xbf];

/**
 * Generates a new key: 32 bytes from `crypto.randomBytes`, base64-encoded
 * (44 characters).
 */
export function generateKey(): string {
  return randomBytes(32).toString("base64");
}

/** Computes the SHA-256 digest of a key or of key file content. */
export function digestKey(key: Buffer | string): Buffer {
  return hash("sha256", key, "buffer");
}

/**
 * Computes a key's fingerprint: the first 8 hex digits of its SHA-256. It
 * identifies a key in logs and events without revealing it.
 */
export function fingerprintKey(key: string): string {
  return hash("sha256", key, "hex").slice(0, 8);
}

function isAsciiWhitespace(byte: number): boolean {
  // ASCII whitespace as the WHATWG Infra standard defines it: tab, line
  // feed, form feed, carriage return and space.
  return (
    byte === 0x09 ||
    byte === 0x0a ||
    byte === 0x0c ||
    byte === 0x0d ||
    byte === 0x20
  );
}

/**
 * Extracts the key from the bytes of a key file. Surrounding ASCII whitespace
 * and a leading UTF-8 byte-order mark are stripped. The rest must be one
 * valid key (see `validateKey`), and any non-ASCII byte makes it invalid,
 * as does content longer than `MAX_KEY_FILE_SIZE` bytes.
 */
export function parseKeyFileContent(content: Buffer): KeyParseResult {
  // The readers stop one byte past the limit, so a longer buffer is a file
  // that was cut off, and whitespace in front could make a prefix look valid.
  if (content.length > MAX_KEY_FILE_SIZE) {
    return {
      ok: false,
      problem: `is in a file larger than ${MAX_KEY_FILE_SIZE} bytes`,
    };
  }

  let start = 0;
  let end = content.length;

  if (UTF8_BOM.every((byte, index) => content[index] === byte)) {
    start = UTF8_BOM.length;
  }
  while (start < end && isAsciiWhitespace(content[start]!)) {
    start++;
  }
  while (end > start && isAsciiWhitespace(content[end - 1]!)) {
    end--;
  }

  for (let index = start; index < end; index++) {
    if (content[index]! > 0x7f) {
      return { ok: false, problem: "contains a non-ASCII byte" };
    }
  }

  const key = content.toString("latin1", start, end);
  const problem = validateKey(key);
  return problem === undefined ? { ok: true, key } : { ok: false, problem };
}

/**
 * Checks a key against the rules every key must meet: 16 to 4096 characters
 * of printable ASCII (0x21 to 0x7E) on one line, without `:` because a Basic
 * user-id cannot contain one (RFC 7617, section 2). Returns what is wrong, or
 * `undefined` for a valid key.
 */
export function validateKey(key: string): string | undefined {
  if (key.length === 0) {
    return "is empty";
  }
  if (/[\r\n]/.test(key)) {
    return "has more than one line";
  }
  if (/[^\x21-\x7e]/.test(key)) {
    return "contains a character outside printable ASCII (0x21 to 0x7E)";
  }
  if (key.includes(":")) {
    return 'contains ":", which a Basic user-id cannot contain';
  }
  if (key.length < MIN_KEY_LENGTH) {
    return `is shorter than ${MIN_KEY_LENGTH} characters`;
  }
  if (key.length > MAX_KEY_LENGTH) {
    return `is longer than ${MAX_KEY_LENGTH} characters`;
  }
  return undefined;
}
