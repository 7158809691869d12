import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import {
  MAX_KEY_FILE_SIZE,
  MAX_KEY_LENGTH,
  MIN_KEY_LENGTH,
  fingerprintKey,
  generateKey,
  parseKeyFileContent,
} from "../src/key.js";
import { KeyMatcher, StoredKey } from "../src/key-matcher.js";

const KEY = "Zx8rT2kLm9Qp4Wv7Yb3Nc6Hd1Jf5Gs0A";
const OTHER_KEY = "Ua4Ie8Oo2Kk6Rr0Tt9Yy3Pp7Ss1Dd5Ff";
const THIRD_KEY = "Mm5Nn9Bb3Vv7Cc1Xx4Zz8Ll2Kk6Jj0Hh";

const BOM = "\u00ef\u00bb\u00bf";

/** Makes key file content from a string of bytes written as latin1. */
function bytes(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

describe("generateKey", () => {
  it("is 44 characters", () => {
    assert.equal(generateKey().length, 44);
  });

  it("is canonical base64 of 32 bytes", () => {
    const key = generateKey();
    const decoded = Buffer.from(key, "base64");

    assert.equal(decoded.length, 32);
    assert.equal(decoded.toString("base64"), key);
  });

  it("is a valid key file content", () => {
    const key = generateKey();

    assert.deepEqual(parseKeyFileContent(bytes(`${key}\n`)), { ok: true, key });
  });

  it("differs at every call", () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateKey()));

    assert.equal(keys.size, 1000);
  });
});

describe("fingerprintKey", () => {
  it("is 8 lower-case hex digits", () => {
    assert.match(fingerprintKey(generateKey()), /^[0-9a-f]{8}$/);
  });

  it("matches the SHA-256 test vector", () => {
    // `printf abc | sha256sum` prints ba7816bf8f01cfea...
    assert.equal(fingerprintKey("abc"), "ba7816bf");
  });

  it("is the start of the key's SHA-256", () => {
    const key = generateKey();
    const expected = createHash("sha256").update(key).digest("hex").slice(0, 8);

    assert.equal(fingerprintKey(key), expected);
  });

  it("differs between keys", () => {
    assert.notEqual(fingerprintKey(KEY), fingerprintKey(OTHER_KEY));
  });
});

interface ContentCase {
  name: string;
  content: Buffer;
  /** The key found, or `undefined` when the content is invalid. */
  expected: string | undefined;
}

const CONTENT_CASES: ContentCase[] = [
  { name: "key alone", content: bytes(KEY), expected: KEY },
  { name: "trailing \\n", content: bytes(`${KEY}\n`), expected: KEY },
  { name: "trailing \\r\\n", content: bytes(`${KEY}\r\n`), expected: KEY },
  { name: "several newlines", content: bytes(`\n\n${KEY}\n\n`), expected: KEY },
  { name: "surrounding spaces", content: bytes(`  ${KEY}  `), expected: KEY },
  { name: "surrounding tabs", content: bytes(`\t${KEY}\t\n`), expected: KEY },
  { name: "leading BOM", content: bytes(`${BOM}${KEY}`), expected: KEY },
  { name: "BOM and \\n", content: bytes(`${BOM}${KEY}\n`), expected: KEY },
  { name: "BOM and spaces", content: bytes(`${BOM} ${KEY} `), expected: KEY },
  {
    name: "BOM at the end",
    content: bytes(`${KEY}${BOM}`),
    expected: undefined,
  },
  {
    name: "BOM in the middle",
    content: bytes(`${KEY.slice(0, 8)}${BOM}${KEY.slice(8)}`),
    expected: undefined,
  },
  {
    name: "two BOMs",
    content: bytes(`${BOM}${BOM}${KEY}`),
    expected: undefined,
  },
  { name: "BOM only", content: bytes(BOM), expected: undefined },
  {
    name: "UTF-8 letter",
    content: Buffer.from(`${KEY}\u00e9`, "utf8"),
    expected: undefined,
  },
  { name: "latin1 byte", content: bytes(`${KEY}\u00e9`), expected: undefined },
  { name: "byte 0x80", content: bytes(`\u0080${KEY}`), expected: undefined },
  { name: "byte 0xff", content: bytes(`${KEY}\u00ff`), expected: undefined },
  {
    name: "no-break space around",
    content: Buffer.from(`\u00a0${KEY}\u00a0`, "utf8"),
    expected: undefined,
  },
  { name: "empty", content: bytes(""), expected: undefined },
  { name: "newline only", content: bytes("\n"), expected: undefined },
  { name: "whitespace only", content: bytes(" \t\r\n "), expected: undefined },
  {
    name: "15 characters",
    content: bytes("a".repeat(15)),
    expected: undefined,
  },
  {
    name: "15 characters and \\n",
    content: bytes(`${"a".repeat(15)}\n`),
    expected: undefined,
  },
  {
    name: "16 characters",
    content: bytes("a".repeat(MIN_KEY_LENGTH)),
    expected: "a".repeat(MIN_KEY_LENGTH),
  },
  {
    name: "4096 characters",
    content: bytes(`${"b".repeat(MAX_KEY_LENGTH)}\n`),
    expected: "b".repeat(MAX_KEY_LENGTH),
  },
  {
    name: "4097 characters",
    content: bytes(`${"b".repeat(MAX_KEY_LENGTH + 1)}\n`),
    expected: undefined,
  },
  {
    name: "whitespace up to the size limit",
    content: bytes(`${KEY}\n`.padEnd(MAX_KEY_FILE_SIZE, " ")),
    expected: KEY,
  },
  {
    name: "whitespace over the size limit",
    content: bytes(`${KEY}\n`.padEnd(MAX_KEY_FILE_SIZE + 1, " ")),
    expected: undefined,
  },
  {
    name: "printable ASCII bounds",
    content: bytes(`${"!~".repeat(8)}\n`),
    expected: "!~".repeat(8),
  },
  { name: "colon inside", content: bytes(`${KEY}:x`), expected: undefined },
  { name: "colon at the end", content: bytes(`${KEY}:`), expected: undefined },
  {
    name: "colon at the start",
    content: bytes(`:${KEY}`),
    expected: undefined,
  },
  {
    name: "two lines",
    content: bytes(`${KEY}\n${OTHER_KEY}\n`),
    expected: undefined,
  },
  {
    name: "two lines with \\r\\n",
    content: bytes(`${KEY}\r\n${OTHER_KEY}\r\n`),
    expected: undefined,
  },
  {
    name: "lone \\r inside",
    content: bytes(`${KEY}\r${KEY}`),
    expected: undefined,
  },
  {
    name: "space inside",
    content: bytes(`${KEY.slice(0, 16)} ${KEY.slice(16)}`),
    expected: undefined,
  },
  {
    name: "tab inside",
    content: bytes(`${KEY.slice(0, 16)}\t${KEY.slice(16)}`),
    expected: undefined,
  },
  {
    name: "NUL inside",
    content: bytes(`${KEY}\u0000${KEY}`),
    expected: undefined,
  },
  {
    name: "NUL at the end",
    content: bytes(`${KEY}\u0000`),
    expected: undefined,
  },
  {
    name: "NUL at the start",
    content: bytes(`\u0000${KEY}`),
    expected: undefined,
  },
  { name: "byte 0x01", content: bytes(`${KEY}\u0001`), expected: undefined },
  { name: "escape", content: bytes(`\u001b[31m${KEY}`), expected: undefined },
  { name: "DEL", content: bytes(`${KEY}\u007f`), expected: undefined },
];

describe("parseKeyFileContent", () => {
  for (const contentCase of CONTENT_CASES) {
    it(contentCase.name, () => {
      const result = parseKeyFileContent(contentCase.content);

      if (contentCase.expected === undefined) {
        assert.equal(result.ok, false);
        assert.match(result.ok ? "" : result.problem, /\S/);
      } else {
        assert.deepEqual(result, { ok: true, key: contentCase.expected });
      }
    });
  }

  for (const command of [
    ["openssl", "rand", "-hex", "32"],
    ["openssl", "rand", "-base64", "32"],
    ["uuidgen"],
  ]) {
    it(`output of ${command.join(" ")}`, () => {
      const output = runIfPresent(command) ?? fallbackOutput(command);
      const expected = output.toString("latin1").trim();

      assert.deepEqual(parseKeyFileContent(output), {
        ok: true,
        key: expected,
      });
    });
  }

  it("upper-case UUID", () => {
    const uuid = randomUUID().toUpperCase();

    assert.deepEqual(parseKeyFileContent(bytes(`${uuid}\n`)), {
      ok: true,
      key: uuid,
    });
  });
});

/** Runs a command and returns its output, or `undefined` when it is missing. */
function runIfPresent(command: string[]): Buffer | undefined {
  try {
    return execFileSync(command[0]!, command.slice(1), {
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return undefined;
    }
    throw error;
  }
}

/** Builds output of the same format as `command`, for a missing program. */
function fallbackOutput(command: string[]): Buffer {
  if (command[0] === "uuidgen") {
    return bytes(`${randomUUID()}\n`);
  }
  const format = command[2] === "-hex" ? "hex" : "base64";
  return bytes(`${randomBytes(32).toString(format)}\n`);
}

describe("KeyMatcher", () => {
  it("matches the current key", () => {
    const matcher = new KeyMatcher(KEY, 0);

    assert.equal(matcher.matches(Buffer.from(KEY)), true);
  });

  it("rejects another key", () => {
    const matcher = new KeyMatcher(KEY, 0);

    assert.equal(matcher.matches(Buffer.from(OTHER_KEY)), false);
  });

  it("rejects the empty key", () => {
    const matcher = new KeyMatcher(KEY, 0);

    assert.equal(matcher.matches(Buffer.from("")), false);
  });

  it("matches a key given as bytes", () => {
    const matcher = new KeyMatcher(KEY, 0);

    assert.equal(matcher.matches(Buffer.from(KEY)), true);
  });

  it("fingerprint follows replace", () => {
    const matcher = new KeyMatcher(KEY, 0);
    const firstFingerprint = matcher.fingerprint;
    matcher.replace(OTHER_KEY);

    assert.equal(firstFingerprint, fingerprintKey(KEY));
    assert.equal(matcher.fingerprint, fingerprintKey(OTHER_KEY));
  });

  it("replace returns true for a new key", () => {
    const matcher = new KeyMatcher(KEY, 0);

    assert.equal(matcher.replace(OTHER_KEY), true);
  });

  it("replace returns false for the same key", () => {
    const matcher = new KeyMatcher(KEY, 0);

    assert.equal(matcher.replace(KEY), false);
  });

  it("graceMs 0 rejects the old key at once", () => {
    const matcher = new KeyMatcher(KEY, 0);
    matcher.replace(OTHER_KEY);

    assert.equal(matcher.matches(Buffer.from(KEY)), false);
    assert.equal(matcher.matches(Buffer.from(OTHER_KEY)), true);
  });

  it("old key valid within grace", () => {
    const matcher = new KeyMatcher(KEY, 60_000);
    matcher.replace(OTHER_KEY);

    assert.equal(matcher.matches(Buffer.from(KEY)), true);
    assert.equal(matcher.matches(Buffer.from(OTHER_KEY)), true);
  });

  it("old key rejected after grace", async () => {
    const matcher = new KeyMatcher(KEY, 50);
    matcher.replace(OTHER_KEY);
    await delay(250);

    assert.equal(matcher.matches(Buffer.from(KEY)), false);
    assert.equal(matcher.matches(Buffer.from(OTHER_KEY)), true);
  });

  it("old key is not current in grace", () => {
    const matcher = new KeyMatcher(KEY, 60_000);
    matcher.replace(OTHER_KEY);

    assert.equal(matcher.isCurrent(Buffer.from(KEY)), false);
    assert.equal(matcher.isCurrent(Buffer.from(OTHER_KEY)), true);
  });

  it("two rotations keep only the last replaced key", () => {
    const matcher = new KeyMatcher(KEY, 60_000);
    matcher.replace(OTHER_KEY);
    matcher.replace(THIRD_KEY);

    assert.equal(matcher.matches(Buffer.from(KEY)), false);
    assert.equal(matcher.matches(Buffer.from(OTHER_KEY)), true);
    assert.equal(matcher.matches(Buffer.from(THIRD_KEY)), true);
  });

  it("second rotation restarts grace", async () => {
    const matcher = new KeyMatcher(KEY, 2000);
    matcher.replace(OTHER_KEY);
    await delay(1200);
    matcher.replace(THIRD_KEY);

    // Grace counted from the first rotation would have ended 200 ms ago.
    await delay(1000);
    assert.equal(matcher.matches(Buffer.from(OTHER_KEY)), true);
  });

  it("same key again keeps the grace period", () => {
    const matcher = new KeyMatcher(KEY, 60_000);
    matcher.replace(OTHER_KEY);
    matcher.replace(OTHER_KEY);

    assert.equal(matcher.matches(Buffer.from(KEY)), true);
  });

  it("returning to a replaced key", () => {
    const matcher = new KeyMatcher(KEY, 0);
    matcher.replace(OTHER_KEY);

    assert.equal(matcher.replace(KEY), true);
    assert.equal(matcher.matches(Buffer.from(KEY)), true);
    assert.equal(matcher.matches(Buffer.from(OTHER_KEY)), false);
  });
});

describe("StoredKey.equals", () => {
  const stored = new StoredKey(KEY);
  const cases: Array<{ name: string; presented: Buffer; expected: boolean }> = [
    { name: "same key", presented: Buffer.from(KEY), expected: true },
    { name: "other key", presented: Buffer.from(OTHER_KEY), expected: false },
    { name: "empty", presented: Buffer.alloc(0), expected: false },
    {
      name: "prefix",
      presented: Buffer.from(KEY.slice(0, -1)),
      expected: false,
    },
    {
      name: "key and NUL",
      presented: Buffer.from(`${KEY}\0`),
      expected: false,
    },
    {
      name: "key and more",
      presented: Buffer.from(`${KEY}x`),
      expected: false,
    },
    {
      name: "longer than maximum",
      presented: Buffer.alloc(MAX_KEY_LENGTH + 10, KEY),
      expected: false,
    },
  ];
  for (const { name, presented, expected } of cases) {
    it(name, () => {
      assert.equal(stored.equals(presented), expected);
    });
  }

  it("matches longest key", () => {
    const longest = "k".repeat(MAX_KEY_LENGTH);
    assert.equal(new StoredKey(longest).equals(Buffer.from(longest)), true);
    assert.equal(
      new StoredKey(longest).equals(Buffer.from(longest.slice(1))),
      false,
    );
  });
});
