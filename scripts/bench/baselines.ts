import type { IncomingMessage } from "node:http";
import { timingSafeEqual } from "node:crypto";
import basicAuth from "basic-auth";
import tsscmp from "tsscmp";

/** A check that decides whether a request carries `key` as its Basic user-id. */
export type RequestCheck = (req: IncomingMessage) => boolean;

/**
 * Builds the common check of Node servers: `basic-auth` parses the header
 * and `tsscmp` compares the user-id with the key.
 */
export function basicAuthTsscmp(key: string): RequestCheck {
  return (req) => {
    const credentials = basicAuth(req);
    return credentials !== undefined && tsscmp(credentials.name, key);
  };
}

/**
 * Builds the check that `express-basic-auth` makes with a custom authorizer:
 * `basic-auth` parses the header, then `safeCompare(userInput, secret)`
 * compares the user-id with the key. Its README recommends that function
 * for custom authorizers, with the user input as the first argument. The
 * package is not a dependency here, so `safeCompare` is written out as its
 * `index.js` (LionC/express-basic-auth on GitHub) implements it. It fills two
 * zero-filled buffers of the input's byte length, the second with the secret
 * truncated or padded. Then it runs one `crypto.timingSafeEqual` and joins a
 * length test with `&`. It hashes nothing, so its time follows the input
 * length.
 */
export function expressBasicAuth(key: string): RequestCheck {
  return (req) => {
    const credentials = basicAuth(req);
    if (credentials === undefined) {
      return false;
    }
    return safeCompare(credentials.name, key);
  };
}

function safeCompare(userInput: string, secret: string): boolean {
  const inputLength = Buffer.byteLength(userInput);
  const inputBytes = Buffer.alloc(inputLength);
  inputBytes.write(userInput);
  const secretBytes = Buffer.alloc(inputLength);
  secretBytes.write(secret);

  const sameBytes = Number(timingSafeEqual(inputBytes, secretBytes));
  const sameLength = Number(inputLength === Buffer.byteLength(secret));
  return (sameBytes & sameLength) === 1;
}

const NAIVE_BASIC = /^Basic (.+)$/;

/**
 * Builds a naive, unsafe check: a regular expression, `Buffer.from(...,
 * 'base64')` and `===`. `===` stops at the first differing character, so
 * its time reveals how much of the key a guess got right. It is a floor for
 * the cost of any check.
 */
export function naive(key: string): RequestCheck {
  return (req) => {
    const match = NAIVE_BASIC.exec(req.headers.authorization ?? "");
    if (match === null) {
      return false;
    }
    const credentials = Buffer.from(match[1]!, "base64").toString();
    const colon = credentials.indexOf(":");
    return credentials.slice(0, colon) === key;
  };
}
