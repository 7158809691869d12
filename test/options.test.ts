import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createKeyAuth, type KeyAuthOptions } from "../src/index.js";
import {
  basic,
  makeTempDir,
  request,
  startFixture,
  startGuardedServer,
} from "./helpers.js";

/** Options as a caller without type checks could pass them. */
type LooseOptions = Record<string, unknown>;

const invalidCases: Array<{
  name: string;
  options: LooseOptions;
  error: typeof TypeError | typeof RangeError;
  /** Text the message must contain: the option and the rejected value. */
  mentions: string[];
}> = [
  {
    name: "missing keyPath",
    options: { keyPath: undefined },
    error: TypeError,
    mentions: ["keyPath", "undefined"],
  },
  {
    name: "empty keyPath",
    options: { keyPath: "" },
    error: TypeError,
    mentions: ["keyPath", '""'],
  },
  {
    name: "keyPath a number",
    options: { keyPath: 42 },
    error: TypeError,
    mentions: ["keyPath", "42"],
  },
  {
    name: "keyPath with null byte",
    options: { keyPath: "/tmp/a\0b" },
    error: TypeError,
    mentions: ["keyPath", '"/tmp/a\\u0000b"'],
  },
  {
    name: "realm with line feed",
    options: { realm: "a\nb" },
    error: TypeError,
    mentions: ["realm", '"a\\nb"'],
  },
  {
    name: "realm with tab",
    options: { realm: "a\tb" },
    error: TypeError,
    mentions: ["realm", '"a\\tb"'],
  },
  {
    name: "realm with DEL",
    options: { realm: "a\x7fb" },
    error: TypeError,
    mentions: ["realm", '"a\x7fb"'],
  },
  {
    name: "realm with non-ASCII",
    options: { realm: "café" },
    error: TypeError,
    mentions: ["realm", '"café"'],
  },
  {
    name: "realm not a string",
    options: { realm: 7 },
    error: TypeError,
    mentions: ["realm", "7"],
  },
  {
    name: "unknown init",
    options: { init: "create" },
    error: TypeError,
    mentions: ["init", '"create"'],
  },
  {
    name: "unknown option",
    options: { keypath: "api.key" },
    error: TypeError,
    mentions: ['"keypath"'],
  },
  {
    name: "watch a string",
    options: { watch: "yes" },
    error: TypeError,
    mentions: ["watch", '"yes"'],
  },
  {
    name: "watch a number",
    options: { watch: 1 },
    error: TypeError,
    mentions: ["watch", "1"],
  },
  {
    name: "watch null",
    options: { watch: null },
    error: TypeError,
    mentions: ["watch", "null"],
  },
  {
    name: "'poll' without interval",
    options: { watch: "poll", pollIntervalMs: 0 },
    error: RangeError,
    mentions: ["pollIntervalMs", "'poll'"],
  },
  {
    name: "schemes empty",
    options: { schemes: [] },
    error: TypeError,
    mentions: ["schemes", "[]"],
  },
  {
    name: "schemes without basic",
    options: { schemes: ["bearer"] },
    error: TypeError,
    mentions: ["schemes", '"bearer"'],
  },
  {
    name: "schemes unknown",
    options: { schemes: ["basic", "digest"] },
    error: TypeError,
    mentions: ["schemes", '"digest"'],
  },
  {
    name: "schemes not an array",
    options: { schemes: "basic" },
    error: TypeError,
    mentions: ["schemes", '"basic"'],
  },
  {
    name: "schemes wrong case",
    options: { schemes: ["Basic"] },
    error: TypeError,
    mentions: ["schemes", '"Basic"'],
  },
];

for (const name of ["pollIntervalMs", "graceMs"]) {
  const values: Array<[string, unknown, string]> = [
    ["negative", -1, "-1"],
    ["fractional", 1.5, "1.5"],
    ["above 2^31 - 1", 2 ** 31, "2147483648"],
    ["NaN", Number.NaN, "NaN"],
    ["Infinity", Number.POSITIVE_INFINITY, "Infinity"],
    ["a string", "100", "100"],
  ];
  for (const [label, value, text] of values) {
    invalidCases.push({
      name: `${name} ${label}`,
      options: { [name]: value },
      error: RangeError,
      mentions: [name, text],
    });
  }
}

describe("invalid options", () => {
  test("rejects options that are not an object", async () => {
    for (const options of [undefined, null, "api.key"]) {
      await assert.rejects(
        () => createKeyAuth(options as unknown as KeyAuthOptions),
        TypeError,
      );
    }
  });

  for (const { name, options, error, mentions } of invalidCases) {
    test(`rejects ${name}`, async () => {
      await using directory = await makeTempDir();
      const keyPath = join(directory.path, "api.key");
      const all = { keyPath, ...options } as unknown as KeyAuthOptions;

      await assert.rejects(
        () => createKeyAuth(all),
        (thrown: unknown) => {
          assert.ok(thrown instanceof error, `got ${String(thrown)}`);
          for (const text of mentions) {
            assert.ok(thrown.message.includes(text), thrown.message);
          }
          return true;
        },
      );
      assert.equal(existsSync(keyPath), false, "created the key file");
    });
  }
});

describe("valid options", () => {
  const validCases: Array<{ name: string; options: LooseOptions }> = [
    { name: "realm with quotes", options: { realm: 'a "quoted" realm' } },
    { name: "realm with backslash", options: { realm: "C:\\keys" } },
    { name: "empty realm", options: { realm: "" } },
    { name: "init generate", options: { init: "generate" } },
    { name: "watch false", options: { watch: false } },
    { name: "watch 'poll'", options: { watch: "poll", pollIntervalMs: 1 } },
    { name: "polling off", options: { pollIntervalMs: 0 } },
    { name: "maximum durations", options: { graceMs: 2 ** 31 - 1 } },
    { name: "both schemes", options: { schemes: ["bearer", "basic"] } },
    {
      name: "undefined values",
      options: { realm: undefined, init: undefined },
    },
  ];

  for (const { name, options } of validCases) {
    test(`accepts ${name}`, async () => {
      await using directory = await makeTempDir();
      const keyPath = join(directory.path, "api.key");
      const all = { keyPath, ...options } as unknown as KeyAuthOptions;

      const auth = await createKeyAuth(all);
      await auth.close();

      assert.equal(existsSync(keyPath), true);
    });
  }

  const realms = [
    { realm: 'a "quoted" realm', quoted: '"a \\"quoted\\" realm"' },
    { realm: "C:\\keys\\", quoted: '"C:\\\\keys\\\\"' },
    { realm: "", quoted: '""' },
  ];

  for (const { realm, quoted } of realms) {
    test(`escapes realm ${JSON.stringify(realm)}`, async () => {
      await using directory = await makeTempDir();
      await using auth = await createKeyAuth({
        keyPath: join(directory.path, "api.key"),
        realm,
      });
      await using server = await startGuardedServer(auth);

      const response = await request(server.url);

      assert.equal(
        response.headers["www-authenticate"],
        `Basic realm=${quoted}, charset="UTF-8"`,
      );
    });
  }
});

describe("defaults", () => {
  test("realm is API", async () => {
    await using directory = await makeTempDir();
    await using auth = await createKeyAuth({
      keyPath: join(directory.path, "api.key"),
    });
    await using server = await startGuardedServer(auth);

    const response = await request(server.url);

    assert.equal(
      response.headers["www-authenticate"],
      'Basic realm="API", charset="UTF-8"',
    );
  });

  test("init generates a missing file", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");

    await using auth = await createKeyAuth({ keyPath });

    assert.equal(existsSync(keyPath), true);
  });

  test("schemes reject Bearer", async () => {
    await using fixture = await startFixture();

    const bearer = await request(fixture.url, {
      headers: { authorization: `Bearer ${fixture.key}` },
    });
    const basicResponse = await request(fixture.url, {
      headers: { authorization: basic(fixture.key) },
    });

    assert.equal(bearer.status, 401);
    assert.equal(basicResponse.status, 200);
  });

  test("graceMs drops the replaced key", async () => {
    await using fixture = await startFixture({ watch: false });

    await fixture.auth.rotate();
    const response = await request(fixture.url, {
      headers: { authorization: basic(fixture.key) },
    });

    assert.equal(response.status, 401);
  });
});
