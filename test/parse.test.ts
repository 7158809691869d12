import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_AUTHORIZATION_LENGTH,
  findAuthorization,
  parseAuthorization,
  type AuthorizationField,
} from "../src/header.js";
import { basic, request, startFixture, type Fixture } from "./helpers.js";

// 42 characters, so `KEY:` needs `==` padding and `KEY:x` needs `=`. The
// leading `~~~` encodes to `fn5+`, so the Basic token contains a `+`. Every
// character is also allowed in a Bearer token.
const KEY = "~~~AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-._";

const TOKEN = base64(`${KEY}:`);
const TOKEN_WITH_X = base64(`${KEY}:x`);
const TOKEN_WITH_PWD = base64(`${KEY}:pwd`);

function base64(text: string): string {
  return Buffer.from(text, "latin1").toString("base64");
}

/** Replaces the character at `index` with the next one of the base64 alphabet. */
function nextBase64Character(token: string, index: number): string {
  const alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const next = alphabet[alphabet.indexOf(token[index]!) + 1]!;
  return token.slice(0, index) + next + token.slice(index + 1);
}

/** Swaps the case of the character at `index`. */
function swapCase(token: string, index: number): string {
  const character = token[index]!;
  const swapped =
    character === character.toUpperCase()
      ? character.toLowerCase()
      : character.toUpperCase();
  return token.slice(0, index) + swapped + token.slice(index + 1);
}

// "Basic" and three spaces leave 8184 characters, a whole number of base64
// groups, for the credentials: 6138 bytes.
const PASSWORD_AT_LIMIT = "p".repeat(6138 - KEY.length - 1);
const TOKEN_AT_LIMIT = base64(`${KEY}:${PASSWORD_AT_LIMIT}`);

interface HeaderCase {
  name: string;
  value: string;
  /** User-id or token that `parseAuthorization` returns with Basic only. */
  basicOnly: string | undefined;
  /** The same with Bearer accepted too. Left out, it is `basicOnly`. */
  withBearer?: string | undefined;
}

const CASES: HeaderCase[] = [
  // Scheme name and separator.
  { name: "Basic", value: `Basic ${TOKEN}`, basicOnly: KEY },
  { name: "lower-case scheme", value: `basic ${TOKEN}`, basicOnly: KEY },
  { name: "upper-case scheme", value: `BASIC ${TOKEN}`, basicOnly: KEY },
  { name: "mixed-case scheme", value: `bAsIc ${TOKEN}`, basicOnly: KEY },
  { name: "two spaces", value: `Basic  ${TOKEN}`, basicOnly: KEY },
  { name: "five spaces", value: `Basic     ${TOKEN}`, basicOnly: KEY },
  { name: "no space", value: `Basic${TOKEN}`, basicOnly: undefined },
  { name: "tab for space", value: `Basic\t${TOKEN}`, basicOnly: undefined },
  { name: "space and tab", value: `Basic \t${TOKEN}`, basicOnly: undefined },
  { name: "scheme only", value: "Basic", basicOnly: undefined },
  { name: "empty credentials", value: "Basic ", basicOnly: undefined },
  { name: "longer scheme", value: `Basics ${TOKEN}`, basicOnly: undefined },

  // Password.
  { name: "password x", value: `Basic ${TOKEN_WITH_X}`, basicOnly: KEY },
  { name: "password with colons", value: basic(KEY, "a:b:"), basicOnly: KEY },
  {
    name: "password of any bytes",
    value: `Basic ${base64(`${KEY}:\u0000\u00ff\u00e9 \t`)}`,
    basicOnly: KEY,
  },
  { name: "password is the key", value: basic(KEY, KEY), basicOnly: KEY },

  // User-id.
  {
    name: "missing colon",
    value: `Basic ${base64(KEY)}`,
    basicOnly: undefined,
  },
  {
    name: "empty user-id",
    value: `Basic ${base64(`:${KEY}`)}`,
    basicOnly: undefined,
  },
  { name: "colon only", value: `Basic ${base64(":")}`, basicOnly: undefined },
  { name: "key in password", value: basic("user", KEY), basicOnly: "user" },
  { name: "leading space", value: basic(` ${KEY}`), basicOnly: ` ${KEY}` },
  { name: "trailing space", value: basic(`${KEY} `), basicOnly: `${KEY} ` },
  { name: "trailing newline", value: basic(`${KEY}\n`), basicOnly: `${KEY}\n` },
  {
    name: "upper-case key",
    value: basic(KEY.toUpperCase()),
    basicOnly: KEY.toUpperCase(),
  },
  {
    name: "key missing a character",
    value: basic(KEY.slice(0, -1)),
    basicOnly: KEY.slice(0, -1),
  },

  // Canonical base64 with padding. Buffer.from(token, "base64") decodes each
  // of these tokens to `KEY:`, because it skips or stops at what it cannot
  // read, so only a strict check of the token rejects them.
  {
    name: "missing == padding",
    value: `Basic ${TOKEN.replace(/==$/, "")}`,
    basicOnly: undefined,
  },
  {
    name: "missing = padding",
    value: `Basic ${TOKEN_WITH_X.replace(/=$/, "")}`,
    basicOnly: undefined,
  },
  {
    name: "one = of two",
    value: `Basic ${TOKEN.replace(/=$/, "")}`,
    basicOnly: undefined,
  },
  { name: "extra padding", value: `Basic ${TOKEN}=`, basicOnly: undefined },
  {
    name: "extra padding group",
    value: `Basic ${TOKEN_WITH_X}====`,
    basicOnly: undefined,
  },
  {
    name: "URL-safe alphabet",
    value: `Basic ${TOKEN.replace(/\+/g, "-").replace(/\//g, "_")}`,
    basicOnly: undefined,
  },
  {
    name: "non-zero bits before ==",
    value: `Basic ${nextBase64Character(TOKEN, TOKEN.length - 3)}`,
    basicOnly: undefined,
  },
  {
    name: "non-zero bits before =",
    value: `Basic ${nextBase64Character(TOKEN_WITH_X, TOKEN_WITH_X.length - 2)}`,
    basicOnly: undefined,
  },
  {
    name: "case-swapped bits before ==",
    value: `Basic ${swapCase(TOKEN_WITH_PWD, TOKEN_WITH_PWD.length - 3)}`,
    basicOnly: undefined,
  },
  {
    name: "case-swapped bits before =",
    value: `Basic ${swapCase(TOKEN_WITH_X, TOKEN_WITH_X.length - 2)}`,
    basicOnly: undefined,
  },
  {
    name: "= in the middle",
    value: `Basic ${TOKEN}QUFB`,
    basicOnly: undefined,
  },
  {
    name: "dots inside",
    value: `Basic ${TOKEN.slice(0, 4)}....${TOKEN.slice(4)}`,
    basicOnly: undefined,
  },
  {
    name: "tilde inside",
    value: `Basic ${TOKEN.slice(0, 8)}~~~~${TOKEN.slice(8)}`,
    basicOnly: undefined,
  },
  {
    name: "space inside",
    value: `Basic ${TOKEN.slice(0, 8)} ${TOKEN.slice(8)}`,
    basicOnly: undefined,
  },
  {
    name: "asterisk inside",
    value: `Basic ${TOKEN.slice(0, 8)}*${TOKEN.slice(8)}`,
    basicOnly: undefined,
  },

  // Length.
  {
    name: "value at the limit",
    value: `Basic   ${TOKEN_AT_LIMIT}`,
    basicOnly: KEY,
  },
  {
    name: "value over the limit",
    value: `Basic    ${TOKEN_AT_LIMIT}`,
    basicOnly: undefined,
  },

  // Bearer.
  {
    name: "Bearer",
    value: `Bearer ${KEY}`,
    basicOnly: undefined,
    withBearer: KEY,
  },
  {
    name: "lower-case bearer",
    value: `bearer ${KEY}`,
    basicOnly: undefined,
    withBearer: KEY,
  },
  {
    name: "upper-case BEARER",
    value: `BEARER ${KEY}`,
    basicOnly: undefined,
    withBearer: KEY,
  },
  {
    name: "Bearer two spaces",
    value: `Bearer  ${KEY}`,
    basicOnly: undefined,
    withBearer: KEY,
  },
  {
    name: "Bearer tab for space",
    value: `Bearer\t${KEY}`,
    basicOnly: undefined,
    withBearer: undefined,
  },
  {
    name: "Bearer upper-case key",
    value: `Bearer ${KEY.toUpperCase()}`,
    basicOnly: undefined,
    withBearer: KEY.toUpperCase(),
  },
  {
    name: "Bearer with Basic token",
    value: `Bearer ${TOKEN}`,
    basicOnly: undefined,
    withBearer: TOKEN,
  },
  {
    name: "Bearer with space inside",
    value: `Bearer ${KEY.slice(0, 10)} ${KEY.slice(10)}`,
    basicOnly: undefined,
    withBearer: undefined,
  },
  {
    name: "Bearer with comma",
    value: `Bearer ${KEY},x`,
    basicOnly: undefined,
    withBearer: undefined,
  },
  {
    name: "Bearer over the limit",
    value: `Bearer ${" ".repeat(MAX_AUTHORIZATION_LENGTH)}${KEY}`,
    basicOnly: undefined,
    withBearer: undefined,
  },

  // Other schemes.
  {
    name: "Digest",
    value: `Digest username="${KEY}", realm="API", nonce="abc", uri="/", response="0"`,
    basicOnly: undefined,
  },
  { name: "Negotiate", value: `Negotiate ${TOKEN}`, basicOnly: undefined },
  { name: "Token", value: `Token ${KEY}`, basicOnly: undefined },
  { name: "bare key", value: KEY, basicOnly: undefined },
  { name: "bare token", value: TOKEN, basicOnly: undefined },
  { name: "empty value", value: "", basicOnly: undefined },
];

function expectedWithBearer(header: HeaderCase): string | undefined {
  return "withBearer" in header ? header.withBearer : header.basicOnly;
}

describe("parseAuthorization", () => {
  it("test tokens are as described", () => {
    assert.equal(`Basic   ${TOKEN_AT_LIMIT}`.length, MAX_AUTHORIZATION_LENGTH);
    assert.equal(TOKEN.slice(-2), "==");
    assert.equal(TOKEN_WITH_X.slice(-2, -1) !== "=", true);
    assert.equal(TOKEN_WITH_X.slice(-1), "=");
    assert.equal(TOKEN.includes("+"), true);
    assert.equal(TOKEN_WITH_PWD.slice(-2), "==");
  });

  for (const header of CASES) {
    it(header.name, () => {
      const basicOnly = parseAuthorization(header.value, false);
      const withBearer = parseAuthorization(header.value, true);

      assert.equal(basicOnly?.toString("latin1"), header.basicOnly);
      assert.equal(withBearer?.toString("latin1"), expectedWithBearer(header));
    });
  }
});

describe("guarded server with header", () => {
  let basicFixture: Fixture;
  let bearerFixture: Fixture;
  // Decisions of isAuthenticated, by the value of the `x-case` header.
  const basicDecisions = new Map<string, boolean>();
  const bearerDecisions = new Map<string, boolean>();

  before(async () => {
    basicFixture = await startFixture(
      { init: "load", watch: false },
      { key: KEY },
    );
    bearerFixture = await startFixture(
      { init: "load", watch: false, schemes: ["basic", "bearer"] },
      { key: KEY },
    );

    const basicAuth = basicFixture.auth;
    const bearerAuth = bearerFixture.auth;
    basicFixture.server.server.prependListener("request", (req) => {
      basicDecisions.set(
        String(req.headers["x-case"]),
        basicAuth.isAuthenticated(req),
      );
    });
    bearerFixture.server.server.prependListener("request", (req) => {
      bearerDecisions.set(
        String(req.headers["x-case"]),
        bearerAuth.isAuthenticated(req),
      );
    });
  });

  after(async () => {
    await basicFixture?.[Symbol.asyncDispose]();
    await bearerFixture?.[Symbol.asyncDispose]();
  });

  for (const [index, header] of CASES.entries()) {
    it(header.name, async () => {
      const headers = { "X-Case": String(index), Authorization: header.value };
      const basicResponse = await request(basicFixture.url, { headers });
      const bearerResponse = await request(bearerFixture.url, { headers });

      const basicAccepted = header.basicOnly === KEY;
      const bearerAccepted = expectedWithBearer(header) === KEY;
      assert.equal(basicResponse.status, basicAccepted ? 200 : 401);
      assert.equal(bearerResponse.status, bearerAccepted ? 200 : 401);
      assert.equal(basicDecisions.get(String(index)), basicAccepted);
      assert.equal(bearerDecisions.get(String(index)), bearerAccepted);
    });
  }

  it("no Authorization header", async () => {
    const response = await request(basicFixture.url);

    assert.equal(response.status, 401);
  });
});

interface FieldCase {
  name: string;
  rawHeaders: string[];
  expected: AuthorizationField;
}

const FIELD_CASES: FieldCase[] = [
  { name: "no headers", rawHeaders: [], expected: { kind: "missing" } },
  {
    name: "other headers only",
    rawHeaders: ["Host", "example", "Accept", "*/*"],
    expected: { kind: "missing" },
  },
  {
    name: "Authorization",
    rawHeaders: ["Host", "example", "Authorization", "Basic a"],
    expected: { kind: "single", value: "Basic a" },
  },
  {
    name: "lower-case name",
    rawHeaders: ["authorization", "Basic a"],
    expected: { kind: "single", value: "Basic a" },
  },
  {
    name: "upper-case name",
    rawHeaders: ["AUTHORIZATION", "Basic a"],
    expected: { kind: "single", value: "Basic a" },
  },
  {
    name: "mixed-case name",
    rawHeaders: ["aUtHoRiZaTiOn", "Basic a"],
    expected: { kind: "single", value: "Basic a" },
  },
  {
    name: "empty value",
    rawHeaders: ["Authorization", ""],
    expected: { kind: "single", value: "" },
  },
  {
    name: "Proxy-Authorization",
    rawHeaders: ["Proxy-Authorization", "Basic a"],
    expected: { kind: "missing" },
  },
  {
    name: "name with a suffix",
    rawHeaders: ["Authorizations", "Basic a"],
    expected: { kind: "missing" },
  },
  {
    name: "same length, other name",
    rawHeaders: ["Authorisation", "Basic a"],
    expected: { kind: "missing" },
  },
  {
    name: "Authorization as a value",
    rawHeaders: ["X-Note", "Authorization", "Authorization", "Basic a"],
    expected: { kind: "single", value: "Basic a" },
  },
  {
    name: "two fields",
    rawHeaders: ["Authorization", "Basic a", "Authorization", "Basic b"],
    expected: { kind: "duplicate" },
  },
  {
    name: "two fields, names in other cases",
    rawHeaders: ["authorization", "Basic a", "AUTHORIZATION", "Basic b"],
    expected: { kind: "duplicate" },
  },
  {
    name: "two fields apart",
    rawHeaders: ["Authorization", "x", "Host", "h", "authorization", "Basic a"],
    expected: { kind: "duplicate" },
  },
  {
    name: "two fields in the other order",
    rawHeaders: ["authorization", "Basic a", "Host", "h", "Authorization", "x"],
    expected: { kind: "duplicate" },
  },
  {
    name: "two empty fields",
    rawHeaders: ["Authorization", "", "Authorization", ""],
    expected: { kind: "duplicate" },
  },
  {
    name: "three fields",
    rawHeaders: [
      "Authorization",
      "a",
      "Authorization",
      "b",
      "Authorization",
      "c",
    ],
    expected: { kind: "duplicate" },
  },
];

describe("findAuthorization", () => {
  for (const field of FIELD_CASES) {
    it(field.name, () => {
      assert.deepEqual(findAuthorization(field.rawHeaders), field.expected);
    });
  }
});
