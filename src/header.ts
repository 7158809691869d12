/** Authentication schemes the guard can accept. */
export type Scheme = "basic" | "bearer";

/** Maximum length of an `Authorization` value in characters. */
export const MAX_AUTHORIZATION_LENGTH = 8192;

/** `Authorization` field values of one request, counted before parsing. */
export type AuthorizationField =
  | { kind: "missing" }
  | { kind: "single"; value: string }
  | { kind: "duplicate" };

// RFC 9110, section 11.4: credentials = auth-scheme [ 1*SP ( token68 / ... ) ]
// and RFC 7617, section 2: the Basic token68 is the base64 of user-id ":" password.
// The scheme name is case-insensitive (RFC 9110, section 11.1).
//
// The token must be canonical base64 with padding (RFC 4648, sections 3.5 and
// 4), which `decodeCanonicalBase64` checks.
const BASIC_SCHEME = /^basic +/i;

// RFC 6750, section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

const COLON = 0x3a;

/**
 * Finds the `Authorization` fields of a request in its raw header list, so
 * that a second field is seen even where `req.headers` keeps only the first.
 */
export function findAuthorization(
  rawHeaders: readonly string[],
): AuthorizationField {
  let value: string | undefined;

  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!;
    if (name.length !== 13 || name.toLowerCase() !== "authorization") {
      continue;
    }
    if (value !== undefined) {
      return { kind: "duplicate" };
    }
    value = rawHeaders[index + 1] ?? "";
  }

  return value === undefined ? { kind: "missing" } : { kind: "single", value };
}

/**
 * Extracts the presented key from an `Authorization` value: the Basic user-id
 * (the password is ignored) or, when `acceptBearer` is set, a Bearer token.
 * Returns `undefined` for a value that is malformed, too long, uses another
 * scheme, has no colon in its Basic credentials or an empty user-id.
 */
export function parseAuthorization(
  value: string,
  acceptBearer: boolean,
): Buffer | undefined {
  if (value.length > MAX_AUTHORIZATION_LENGTH) {
    return undefined;
  }

  const basic = BASIC_SCHEME.exec(value);
  if (basic !== null) {
    const credentials = decodeCanonicalBase64(value.slice(basic[0].length));
    return credentials === undefined ? undefined : userIdOf(credentials);
  }

  if (acceptBearer) {
    const bearer = BEARER.exec(value);
    if (bearer !== null) {
      return Buffer.from(bearer[1]!, "latin1");
    }
  }

  return undefined;
}

/**
 * Decodes `token` when it is standard base64 with padding in canonical form
 * (RFC 4648, sections 3.5 and 4), and returns `undefined` otherwise.
 *
 * Only the canonical encoding of the decoded bytes re-encodes to the same
 * text. The decoder skips characters outside the alphabet, accepts the
 * URL-safe alphabet and tolerates missing padding or non-zero padding bits,
 * and each of these makes the re-encoded text differ. A regular expression
 * over the token would cost more for unpredictable characters than for
 * repeated ones, so random keys would take longer than near misses.
 */
function decodeCanonicalBase64(token: string): Buffer | undefined {
  const bytes = Buffer.from(token, "base64");
  return bytes.toString("base64") === token ? bytes : undefined;
}

function userIdOf(credentials: Buffer): Buffer | undefined {
  const colon = credentials.indexOf(COLON);
  if (colon <= 0) {
    return undefined;
  }
  return credentials.subarray(0, colon);
}
