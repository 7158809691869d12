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
// 4): whole groups of 4, then an optional last group of `xx==` or `xxx=` whose
// unused bits are zero. [AQgw] and [AEIMQUYcgkosw048] are the characters whose
// low 4 or 2 bits are zero.
const BASIC =
  /^basic +((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?)$/i;

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

  const basic = BASIC.exec(value);
  if (basic !== null) {
    return userIdOf(Buffer.from(basic[1]!, "base64"));
  }

  if (acceptBearer) {
    const bearer = BEARER.exec(value);
    if (bearer !== null) {
      return Buffer.from(bearer[1]!, "latin1");
    }
  }

  return undefined;
}

function userIdOf(credentials: Buffer): Buffer | undefined {
  const colon = credentials.indexOf(COLON);
  if (colon <= 0) {
    return undefined;
  }
  return credentials.subarray(0, colon);
}
