// Property-based tests with hostile input: arbitrary Authorization values,
// arbitrary bytes as Basic credentials, near-miss keys and random key file
// contents. Each property compares the guard with a small model of the rules
// written here, so it finds wrong acceptances and wrong rejections alike.
//
// Runs in total: 30,000 + 30,000 + 12,000 + 10,000 + 16,000 + 20,000 + 3,000
// + 150 + 1,000 = 122,150.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { createKeyAuth, KeyAuthError, type KeyAuth } from "../src/index.js";
import { parseAuthorization } from "../src/header.js";
import {
  fingerprintKey,
  MAX_KEY_FILE_SIZE,
  parseKeyFileContent,
} from "../src/key.js";
import { writeKeyFile } from "../src/key-file.js";
import { makeTempDir } from "./helpers.js";

/**
 * Seed of every property. fast-check prints the seed and the path of a
 * failing run, and `FC_SEED=... node --test` replays it.
 */
const SEED = Number(process.env.FC_SEED ?? 20250604);

/** Shows a value in an assertion message, cut to a readable length. */
function show(value: unknown): string {
  let text: string;
  if (value === undefined) {
    text = "undefined";
  } else if (Buffer.isBuffer(value)) {
    text = `<Buffer ${value.toString("hex")}>`;
  } else {
    text = JSON.stringify(value);
  }
  return text.length > 160
    ? `${text.slice(0, 160)}... (${text.length} characters)`
    : text;
}

/** Returns "accepted" or "rejected", for assertion messages. */
function verdict(accepted: boolean): string {
  return accepted ? "accepted" : "rejected";
}

/** Runs `property` with the shared seed and `numRuns` runs. */
function check<T>(property: fc.IProperty<T>, numRuns: number): void {
  fc.assert(property, { seed: SEED, numRuns, includeErrorInReport: true });
}

/** Runs an async `property` with the shared seed and `numRuns` runs. */
async function checkAsync<T>(
  property: fc.IAsyncProperty<T>,
  numRuns: number,
): Promise<void> {
  await fc.assert(property, {
    seed: SEED,
    numRuns,
    includeErrorInReport: true,
  });
}

// ---------------------------------------------------------------------------
// Models of the rules, written independently of the code under test.

/** Maximum length of an `Authorization` value in characters. */
const MAX_VALUE_LENGTH = 8192;

/**
 * Computes the key an `Authorization` value presents: the Basic user-id,
 * that is the bytes before the first colon of canonical padded base64
 * (RFC 7617, RFC 4648 section 4), or with `acceptBearer` a Bearer b64token
 * (RFC 6750, section 2.1). Returns `undefined` for anything else.
 */
function presentedKey(
  value: string,
  acceptBearer: boolean,
): Buffer | undefined {
  if (value.length > MAX_VALUE_LENGTH) {
    return undefined;
  }
  const match = /^([A-Za-z]+) +(.*)$/s.exec(value);
  if (match === null) {
    return undefined;
  }

  const scheme = match[1]!.toLowerCase();
  const token = match[2]!;
  if (scheme === "basic") {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(token) || token.length % 4 !== 0) {
      return undefined;
    }
    const decoded = Buffer.from(token, "base64");
    if (decoded.toString("base64") !== token) {
      return undefined;
    }
    const colon = decoded.indexOf(":");
    return colon > 0 ? decoded.subarray(0, colon) : undefined;
  }
  if (scheme === "bearer" && acceptBearer) {
    return /^[A-Za-z0-9\-._~+/]+=*$/.test(token)
      ? Buffer.from(token, "latin1")
      : undefined;
  }
  return undefined;
}

/** Asserts that `parseAuthorization` returns what `presentedKey` computes. */
function assertParseMatchesModel(value: string, acceptBearer: boolean): void {
  const expected = presentedKey(value, acceptBearer);
  const actual = parseAuthorization(value, acceptBearer);
  assert.deepEqual(
    actual,
    expected,
    `${show(value)}: got ${show(actual)}, expected ${show(expected)}`,
  );
}

/** Tells whether `value` presents exactly `key`. */
function presents(value: string, acceptBearer: boolean, key: string): boolean {
  const presented = presentedKey(value, acceptBearer);
  return presented !== undefined && presented.equals(Buffer.from(key));
}

/**
 * Computes the key that key file `content` contains. That is the content
 * without a leading UTF-8 byte-order mark and surrounding ASCII whitespace
 * (tab, line feed, form feed, carriage return and space). It must be 16 to
 * 4096 characters of printable ASCII other than `:`. Returns `undefined` for
 * any other content, and for a file too large to be read to its end.
 */
function keyFileKey(content: Buffer): string | undefined {
  if (content.length > MAX_KEY_FILE_SIZE) {
    return undefined;
  }
  let text = content.toString("latin1");
  if (text.startsWith("\xef\xbb\xbf")) {
    text = text.slice(3);
  }
  text = text.replace(/^[\t\n\f\r ]+/, "").replace(/[\t\n\f\r ]+$/, "");
  return /^[\x21-\x39\x3b-\x7e]{16,4096}$/.test(text) ? text : undefined;
}

/** Removes the optional whitespace that HTTP/1.1 parsers strip from values. */
function stripOptionalWhitespace(value: string): string {
  return value.replace(/^[ \t]+/, "").replace(/[ \t]+$/, "");
}

/** Tells whether `node:http` lets a client send `value` as a header value. */
function isSendable(value: string): boolean {
  return /^[\t\x20-\x7e\x80-\xff]*$/.test(value);
}

/** Builds a Basic value from the raw bytes of user-id and password. */
function basicValue(
  user: Buffer | string,
  password: Buffer | string,
  scheme = "Basic",
): string {
  const credentials = Buffer.concat([
    Buffer.from(user),
    Buffer.from(":"),
    Buffer.from(password),
  ]);
  return `${scheme} ${credentials.toString("base64")}`;
}

// ---------------------------------------------------------------------------
// Arbitraries.

const BASE64_ALPHABET =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Characters that parsers often mishandle: controls, separators, non-ASCII. */
const awkwardCharacter = fc.constantFrom(
  "\0",
  "\t",
  "\n",
  "\r",
  "\v",
  "\f",
  " ",
  ":",
  "=",
  "-",
  "_",
  "\x7f",
  "\x80",
  "\xa0",
  "\xff",
  "\u0130",
  "\u017f",
  "\u212a",
  "\ufeff",
  "\ud800",
  "\u{1f511}",
);

const anyCharacter = fc.oneof(
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  awkwardCharacter,
);

/** Any string, with awkward characters more often than by chance. */
const anyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.string({ unit: anyCharacter, maxLength: 64 }),
);

const schemeName = fc.oneof(
  { weight: 4, arbitrary: fc.mixedCase(fc.constantFrom("basic", "bearer")) },
  fc.constantFrom(
    "",
    "Basi",
    "Basicc",
    "Ba sic",
    "Digest",
    "Negotiate",
    "Token",
    "Ba\u017fic",
    "BAS\u0130C",
    "Bearer:",
    "Basic,",
  ),
);

const separator = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(" ", "  ", "    ") },
  fc.constantFrom("", "\t", " \t", "\t ", "\xa0", "\u3000", ",", "=", ":"),
);

/** Canonical base64 of arbitrary bytes. */
const canonicalBase64 = fc
  .uint8Array({ maxLength: 48 })
  .map((bytes) => Buffer.from(bytes).toString("base64"));

/** Base64 variants that must all be rejected unless they stay canonical. */
const mutatedBase64 = fc.oneof(
  canonicalBase64.map((token) => token.replace(/=+$/, "")),
  canonicalBase64.map((token) => token.replace(/\+/g, "-").replace(/\//g, "_")),
  canonicalBase64.map((token) => `${token}=`),
  canonicalBase64.map((token) => `${token}==`),
  fc
    .tuple(
      canonicalBase64.filter((token) => token.endsWith("=")),
      fc.constantFrom(...BASE64_ALPHABET),
    )
    .map(([token, character]) => {
      // Changes the last data character, so the padding bits may be non-zero.
      const index = token.indexOf("=") - 1;
      return token.slice(0, index) + character + token.slice(index + 1);
    }),
  fc
    .tuple(canonicalBase64, fc.nat(), anyCharacter)
    .map(([token, at, character]) => {
      const index = at % (token.length + 1);
      return token.slice(0, index) + character + token.slice(index);
    }),
  fc.string({ unit: fc.constantFrom(...`${BASE64_ALPHABET}=-_.~`) }),
);

// ---------------------------------------------------------------------------
// The keys under test, each with a guard that accepts Basic only and one that
// also accepts Bearer.

// Fixed, so that a seed replays the same runs: the shapes of `generateKey`,
// `openssl rand -hex 32` and `uuidgen`, the shortest valid key, and one with
// every punctuation character a key may contain.
const KEYS = [
  "q3VvJd8Zp0m+Hc/2RkTfW9yLx4NbA7sEiGuO1tYaQeU=",
  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
  "0123456789abcdef",
  `!"#$%&'()*+,-./;<=>?@[\\]^_\`{|}~Zz9`,
];

interface Guard {
  key: string;
  acceptBearer: boolean;
  auth: KeyAuth;
}

/** Whitespace around a key, as a careless copy and paste adds it. */
const surroundingWhitespace = fc.string({
  unit: fc.constantFrom(" ", "\t", "\n", "\r\n", "\0", "\ufeff", "\xa0"),
  maxLength: 3,
});

/**
 * Builds strings that differ from `key` a little: one character changed,
 * added or removed, a different case, whitespace around it, a prefix, or the
 * key twice. A change may leave the key as it was; the model decides.
 */
function nearMissOf(key: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc
      .tuple(fc.nat(key.length - 1), anyCharacter)
      .map(
        ([index, character]) =>
          key.slice(0, index) + character + key.slice(index + 1),
      ),
    fc
      .tuple(fc.nat(key.length), anyCharacter)
      .map(
        ([index, character]) =>
          key.slice(0, index) + character + key.slice(index),
      ),
    fc
      .nat(key.length - 1)
      .map((index) => key.slice(0, index) + key.slice(index + 1)),
    fc.mixedCase(fc.constant(key)),
    fc
      .tuple(surroundingWhitespace, surroundingWhitespace)
      .map(([before, after]) => before + key + after),
    fc.nat(key.length - 1).map((length) => key.slice(0, length)),
    fc.constant(key + key),
  );
}

/**
 * Builds `Authorization` values around near misses of `key`: as the Basic
 * user-id with any password, as the password with an empty or other user-id,
 * and as a Bearer token.
 */
function nearMissValueOf(key: string): fc.Arbitrary<string> {
  const candidate = fc.oneof(nearMissOf(key), fc.constant(key));
  const otherUser = fc.oneof(
    fc.constant(""),
    anyString.map((user) => user.replaceAll(":", "")),
  );
  return fc.oneof(
    fc
      .tuple(candidate, anyString, schemeName)
      .map(([user, password, scheme]) => basicValue(user, password, scheme)),
    fc
      .tuple(otherUser, fc.oneof(candidate, fc.constant(key)))
      .map(([user, password]) => basicValue(user, password)),
    fc
      .tuple(fc.mixedCase(fc.constant("bearer")), separator, candidate)
      .map(([scheme, space, token]) => `${scheme}${space}${token}`),
  );
}

/**
 * Builds values around the length limit that carry the valid key in an
 * otherwise valid Basic header, so only the length decides.
 */
function longValueOf(key: string): fc.Arbitrary<string> {
  return fc.integer({ min: 8170, max: 8215 }).map((length) => {
    const bytes = Math.floor(((length - 6) / 4) * 3) - key.length - 1;
    return basicValue(key, "p".repeat(Math.max(0, bytes)));
  });
}

/** Builds structured values: a scheme, a separator and some token. */
function structuredValueOf(key: string): fc.Arbitrary<string> {
  const token = fc.oneof(
    canonicalBase64,
    mutatedBase64,
    fc
      .tuple(fc.oneof(nearMissOf(key), fc.constant(key)), anyString)
      .map(([user, password]) =>
        Buffer.from(`${user}:${password}`).toString("base64"),
      ),
    anyString,
  );
  return fc
    .tuple(schemeName, separator, token, fc.oneof(fc.constant(""), anyString))
    .map(
      ([scheme, space, credentials, suffix]) =>
        `${scheme}${space}${credentials}${suffix}`,
    );
}

/** Any value: arbitrary, structured, near misses and long ones. */
function headerValueOf(key: string): fc.Arbitrary<string> {
  return fc.oneof(anyString, structuredValueOf(key), nearMissValueOf(key), {
    weight: 1,
    arbitrary: longValueOf(key),
  });
}

/** Random key file contents, valid ones among them. */
const keyCharacter = fc
  .integer({ min: 0x21, max: 0x7e })
  .filter((code) => code !== 0x3a)
  .map((code) => String.fromCharCode(code));

const keyLike = fc.string({ unit: keyCharacter, minLength: 12, maxLength: 80 });

const fileWhitespace = fc.string({
  unit: fc.constantFrom(" ", "\t", "\n", "\r", "\v", "\f", "\r\n"),
  maxLength: 4,
});

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

const keyFileContent: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 100 }).map((bytes) => Buffer.from(bytes)),
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.boolean(), fileWhitespace, keyLike, fileWhitespace)
      .map(([bom, before, key, after]) =>
        Buffer.concat([
          bom ? BOM : Buffer.alloc(0),
          Buffer.from(before + key + after, "latin1"),
        ]),
      ),
  },
  fc
    .tuple(keyLike, fc.nat(), awkwardCharacter, fileWhitespace)
    .map(([key, at, character, after]) => {
      const index = at % (key.length + 1);
      return Buffer.from(
        key.slice(0, index) + character + key.slice(index) + after,
        "utf8",
      );
    }),
  fc
    .tuple(fileWhitespace, keyLike, fileWhitespace)
    .map(([before, key, after]) =>
      Buffer.concat([Buffer.from(before), BOM, Buffer.from(key + after)]),
    ),
  fc
    .tuple(keyCharacter, fc.integer({ min: 4090, max: 4100 }), fileWhitespace)
    .map(([character, length, after]) =>
      Buffer.from(character.repeat(length) + after, "latin1"),
    ),
  fc
    .tuple(
      fc.integer({ min: 0, max: 5200 }),
      fc.integer({ min: 16, max: 4096 }),
      fc.integer({ min: 0, max: 2000 }),
    )
    .map(([before, length, after]) =>
      Buffer.from(
        " ".repeat(before) + "k".repeat(length) + "\n".repeat(after),
        "latin1",
      ),
    ),
);

/** Strings a naive reader could take for the key in `content`. */
function misreadKeys(content: Buffer): string[] {
  let text = content.toString("latin1");
  if (text.startsWith("\xef\xbb\xbf")) {
    text = text.slice(3);
  }
  const candidates = new Set<string>([
    text.trim(),
    ...text.split(/\r?\n/, 3).map((line) => line.trim()),
    ...text.split(/[^\x21-\x39\x3b-\x7e]+/, 3),
    content.toString("latin1", 0, MAX_KEY_FILE_SIZE + 1).trim(),
  ]);
  return [...candidates].filter(
    (candidate) =>
      candidate.length > 0 &&
      candidate.length <= 6000 &&
      !candidate.includes(":"),
  );
}

// ---------------------------------------------------------------------------
// Requests.

/**
 * Builds a request object around a socket that never connects, so that
 * `rawHeaders` can hold any string, including ones no HTTP parser would pass.
 */
function makeMessage(): http.IncomingMessage {
  return new http.IncomingMessage(new net.Socket());
}

const message = makeMessage();

/** Decides a request whose raw header list is `rawHeaders`, in process. */
function accepts(auth: KeyAuth, rawHeaders: string[]): boolean {
  message.rawHeaders = rawHeaders;
  return auth.isAuthenticated(message);
}

/** Decides a request that presents `userId` as Basic user-id, in process. */
function acceptsUserId(auth: KeyAuth, userId: string): boolean {
  return accepts(auth, [
    "Authorization",
    basicValue(Buffer.from(userId, "latin1"), ""),
  ]);
}

describe("hostile input", () => {
  const directories: Array<{ [Symbol.asyncDispose](): Promise<void> }> = [];
  const guards: Guard[] = [];

  before(async () => {
    for (const key of KEYS) {
      const directory = await makeTempDir();
      directories.push(directory);
      const keyPath = join(directory.path, "api.key");
      await writeKeyFile(keyPath, key);
      for (const acceptBearer of [false, true]) {
        const auth = await createKeyAuth({
          keyPath,
          init: "load",
          schemes: acceptBearer ? ["basic", "bearer"] : ["basic"],
        });
        guards.push({ key, acceptBearer, auth });
      }
    }
  });

  after(async () => {
    for (const { auth } of guards) {
      await auth.close();
    }
    for (const directory of directories) {
      await directory[Symbol.asyncDispose]();
    }
  });

  const guardIndex = fc.nat(KEYS.length * 2 - 1);

  it("parseAuthorization matches the model for any string", () => {
    check(
      fc.property(anyString, fc.boolean(), assertParseMatchesModel),
      30_000,
    );
  });

  it("parseAuthorization matches the model for structured values", () => {
    check(
      fc.property(
        fc.constantFrom(...KEYS).chain(structuredValueOf),
        fc.boolean(),
        assertParseMatchesModel,
      ),
      30_000,
    );
  });

  it("isAuthenticated over any header list", () => {
    const headerName = fc.oneof(
      fc.mixedCase(fc.constant("authorization")),
      fc.constantFrom(
        "Proxy-Authorization",
        "Authorisation",
        "Authorization ",
        "X-Authorization",
        "",
      ),
    );
    check(
      fc.property(
        guardIndex.chain((index) =>
          fc.tuple(
            fc.constant(index),
            fc.array(fc.tuple(headerName, headerValueOf(guards[index]!.key)), {
              maxLength: 3,
            }),
          ),
        ),
        ([index, fields]) => {
          const { key, acceptBearer, auth } = guards[index]!;
          const authorization = fields.filter(
            ([name]) => name.toLowerCase() === "authorization",
          );
          const expected =
            authorization.length === 1 &&
            presents(authorization[0]![1], acceptBearer, key);

          assert.equal(
            accepts(auth, fields.flat()),
            expected,
            `${show(fields)} must be ${verdict(expected)}`,
          );
        },
      ),
      12_000,
    );
  });

  it("isAuthenticated decides arbitrary Basic credential bytes", () => {
    const keyBytes = (key: string) => Buffer.from(key);
    const credentials = (key: string) =>
      fc.oneof(
        fc.uint8Array({ maxLength: 120 }).map((bytes) => Buffer.from(bytes)),
        fc
          .uint8Array({ maxLength: 40 })
          .map((bytes) =>
            Buffer.concat([keyBytes(key), Buffer.from(":"), bytes]),
          ),
        fc
          .tuple(fc.uint8Array({ maxLength: 40 }), fc.uint8Array())
          .map(([user, password]) =>
            Buffer.concat([user, Buffer.from(":"), keyBytes(key), password]),
          ),
        fc
          .tuple(fc.uint8Array({ maxLength: 4 }), fc.uint8Array())
          .map(([noise, password]) =>
            Buffer.concat([keyBytes(key), noise, Buffer.from(":"), password]),
          ),
      );
    check(
      fc.property(
        guardIndex.chain((index) =>
          fc.tuple(fc.constant(index), credentials(guards[index]!.key)),
        ),
        ([index, bytes]) => {
          const { key, auth } = guards[index]!;
          const colon = bytes.indexOf(":");
          const expected =
            colon > 0 && bytes.subarray(0, colon).equals(keyBytes(key));
          const value = `Basic ${bytes.toString("base64")}`;

          assert.equal(
            accepts(auth, ["Authorization", value]),
            expected,
            `${show(bytes)} must be ${verdict(expected)}`,
          );
        },
      ),
      10_000,
    );
  });

  it("isAuthenticated rejects near-miss keys", () => {
    check(
      fc.property(
        guardIndex.chain((index) =>
          fc.tuple(fc.constant(index), nearMissValueOf(guards[index]!.key)),
        ),
        ([index, value]) => {
          const { key, acceptBearer, auth } = guards[index]!;

          const expected = presents(value, acceptBearer, key);

          assert.equal(
            accepts(auth, ["Authorization", value]),
            expected,
            `${show(value)} must be ${verdict(expected)}`,
          );
        },
      ),
      16_000,
    );
  });

  it("check over HTTP matches the model", async () => {
    const server = http.createServer((req, res) => {
      const guard = guards[Number(req.url?.slice(1))];
      if (guard === undefined || !guard.auth.check(req, res)) {
        return;
      }
      res.end("ok\n");
    });
    server.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    const { port } = server.address() as AddressInfo;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

    const send = (index: number, fields: string[]) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          {
            host: "127.0.0.1",
            port,
            path: `/${index}`,
            agent,
            // A header array replaces every default header, Host included.
            headers: ["Host", `127.0.0.1:${port}`, ...fields],
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.end();
      });

    try {
      await checkAsync(
        fc.asyncProperty(
          guardIndex.chain((index) =>
            fc.tuple(
              fc.constant(index),
              fc
                .array(headerValueOf(guards[index]!.key).filter(isSendable), {
                  minLength: 1,
                  maxLength: 2,
                })
                // Stays below the 16 KiB header limit of node:http, whose 431
                // the raw socket tests cover.
                .filter((values) => values.join("").length < 12_000),
            ),
          ),
          async ([index, values]) => {
            const { key, acceptBearer } = guards[index]!;
            let expected = 401;
            if (values.length > 1) {
              expected = 400;
            } else if (
              presents(stripOptionalWhitespace(values[0]!), acceptBearer, key)
            ) {
              expected = 200;
            }
            const fields = values.flatMap((value) => ["Authorization", value]);

            assert.equal(
              await send(index, fields),
              expected,
              `${show(values)} must get ${expected}`,
            );
          },
        ),
        3_000,
      );
    } finally {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("parseKeyFileContent matches the model", () => {
    check(
      fc.property(keyFileContent, (content) => {
        const expected = keyFileKey(content);
        const parsed = parseKeyFileContent(content);

        assert.equal(
          parsed.ok,
          expected !== undefined,
          `${show(content)}: got ${show(parsed)}, expected ${show(expected)}`,
        );
        if (parsed.ok) {
          assert.equal(parsed.key, expected);
        }
      }),
      20_000,
    );
  });

  it("createKeyAuth loads only a valid key file", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");

    await checkAsync(
      fc.asyncProperty(
        keyFileContent,
        fc.constantFrom("load" as const, "load-or-generate" as const),
        async (content, init) => {
          await writeFile(keyPath, content, { mode: 0o600 });
          const expected = keyFileKey(content);
          const label = show(content);

          if (expected === undefined) {
            await assert.rejects(
              createKeyAuth({ keyPath, init, watch: false }),
              (error: unknown) =>
                error instanceof KeyAuthError &&
                error.code === "KEY_FILE_INVALID",
              `${label} must be rejected as invalid`,
            );
            assert.deepEqual(
              await readFile(keyPath),
              content,
              `${label} must be left as it was`,
            );
            return;
          }

          const auth = await createKeyAuth({ keyPath, init, watch: false });
          try {
            assert.equal(
              auth.fingerprint,
              fingerprintKey(expected),
              `${label} must be loaded as ${show(expected)}`,
            );
            assert.equal(
              acceptsUserId(auth, expected),
              true,
              `${label} must make ${show(expected)} valid`,
            );
          } finally {
            await auth.close();
          }
        },
      ),
      150,
    );
  });

  it("rewritten key file never yields an invalid key", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");
    let lastGood = KEYS[0]!;
    await writeKeyFile(keyPath, lastGood);
    const auth = await createKeyAuth({ keyPath, init: "load" });
    const warnings: KeyAuthError[] = [];
    auth.on("warning", (warning) => warnings.push(warning));

    const written = new Set<string>();
    let count = 0;
    // Each version gets `stat` fields that no earlier one had, because the
    // request path reads the file only when they changed. A rename gives a new
    // inode, but inodes are reused and timestamps are coarse.
    const replaceKeyFile = async (content: Buffer) => {
      for (;;) {
        const temporaryPath = `${keyPath}.${count++}.tmp`;
        await writeFile(temporaryPath, content, { mode: 0o600 });
        await rename(temporaryPath, keyPath);
        const stats = await stat(keyPath);
        const signature = `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
        if (!written.has(signature)) {
          written.add(signature);
          return;
        }
        await sleep(10);
      }
    };

    try {
      await checkAsync(
        fc.asyncProperty(keyFileContent, async (content) => {
          await replaceKeyFile(content);
          const expected = keyFileKey(content);
          const label = show(content);

          if (expected !== undefined) {
            assert.equal(
              acceptsUserId(auth, expected),
              true,
              `${label} must make ${show(expected)} valid`,
            );
            if (expected !== lastGood) {
              assert.equal(
                acceptsUserId(auth, lastGood),
                false,
                `${label} must replace ${show(lastGood)}`,
              );
            }
            lastGood = expected;
            return;
          }

          for (const candidate of misreadKeys(content)) {
            const expected = candidate === lastGood;
            assert.equal(
              acceptsUserId(auth, candidate),
              expected,
              `${label} misread as ${show(candidate)} must be ${verdict(expected)}`,
            );
          }
          assert.equal(
            acceptsUserId(auth, lastGood),
            true,
            `${label} must keep ${show(lastGood)} valid`,
          );
        }),
        1_000,
      );
    } finally {
      await auth.close();
    }

    const codes = new Set(warnings.map((warning) => warning.code));
    assert.deepEqual([...codes], ["KEY_FILE_INVALID"]);
  });
});
