import { describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { execFile } from "node:child_process";
import { once } from "node:events";
import {
  chmod,
  mkdir,
  readFile,
  rename,
  rm,
  writeFile,
} from "node:fs/promises";
import {
  copyFileSync,
  existsSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { AddressInfo } from "node:net";
import {
  KeyAuthError,
  createKeyAuth,
  generateKey,
  writeKeyFile,
  type KeyAuth,
  type KeyAuthOptions,
  type Request,
  type RotateEvent,
} from "../src/index.js";
import {
  assertDuplicateResponse,
  assertUnauthorizedResponse,
  basic,
  fingerprintOf,
  makeTempDir,
  modeOf,
  readKey,
  request,
  startFixture,
  startGuardedServer,
  startServer,
  type SimpleResponse,
} from "./helpers.js";

/** Sends a GET request with `authorization` as its only `Authorization` field. */
function get(url: string, authorization: string): Promise<SimpleResponse> {
  return request(url, { headers: { authorization } });
}

/** Collects every `'rotate'` event of `auth`. */
function collectRotations(auth: KeyAuth): RotateEvent[] {
  const events: RotateEvent[] = [];
  auth.on("rotate", (event) => events.push(event));
  return events;
}

/** Waits until `condition` holds, failing after `timeoutMs`. */
async function waitUntil(
  condition: () => boolean,
  description: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms: ${description}`);
    }
    await sleep(5);
  }
}

/** A request that a `ParkingServer` holds until the test responds to it. */
interface ParkedRequest {
  req: http.IncomingMessage;
  res: http.ServerResponse;
}

/** A server on 127.0.0.1 that never responds to a request by itself. */
interface ParkingServer {
  url: string;
  /** Waits for the next `count` requests, in arrival order. */
  take(count: number): Promise<ParkedRequest[]>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a server that holds every request, so that a test can change the key
 * file and run the guard on a request in one synchronous step, before any
 * file system event can reach the watcher.
 */
async function startParkingServer(): Promise<ParkingServer> {
  const parked: ParkedRequest[] = [];
  const server = http.createServer((req, res) => parked.push({ req, res }));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    async take(count) {
      await waitUntil(() => parked.length >= count, `${count} requests`);
      return parked.splice(0, count);
    },
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Runs `auth.check` on a parked request, and ends it with 200 "ok" when it passes. */
function checkParked(auth: KeyAuth, parked: ParkedRequest): boolean {
  const accepted = auth.check(parked.req, parked.res);
  if (accepted) {
    parked.res.end("ok\n");
  }
  return accepted;
}

/** Replaces the key file by writing a temporary file and renaming it over. */
function renameKeySync(keyPath: string, content: string): void {
  const temporaryPath = `${keyPath}.new`;
  writeFileSync(temporaryPath, content);
  renameSync(temporaryPath, keyPath);
}

/** Bytes this process has read through system calls so far (Linux only). */
function bytesRead(): number {
  const io = readFileSync("/proc/self/io", "latin1");
  return Number(/^rchar: (\d+)$/m.exec(io)![1]);
}

describe("401 response", () => {
  test("sends challenge, headers and body", async () => {
    await using fixture = await startFixture(
      { realm: "Files" },
      { fileName: "./api.key" },
    );

    const response = await get(fixture.url, basic(generateKey()));

    assertUnauthorizedResponse(response, {
      challenge: 'Basic realm="Files", charset="UTF-8"',
      keyPath: `${fixture.directory}/./api.key`,
    });
  });

  test("escapes quote and backslash in realm", async () => {
    await using fixture = await startFixture({ realm: 'say "hi" \\ now' });

    const response = await get(fixture.url, basic(generateKey()));

    assert.equal(
      response.headers["www-authenticate"],
      'Basic realm="say \\"hi\\" \\\\ now", charset="UTF-8"',
    );
  });

  test("HEAD gets no body", async () => {
    await using fixture = await startFixture();

    const response = await request(fixture.url, {
      method: "HEAD",
      headers: { authorization: basic(generateKey()) },
    });

    assert.equal(response.status, 401);
    assert.equal(
      response.headers["www-authenticate"],
      'Basic realm="API", charset="UTF-8"',
    );
    assert.equal(response.body, "");
  });

  describe("same for every failure", () => {
    const failures: Array<{
      name: string;
      headers: (key: string) => Record<string, string>;
    }> = [
      { name: "no Authorization", headers: () => ({}) },
      {
        name: "wrong key",
        headers: () => ({ authorization: basic(generateKey()) }),
      },
      {
        name: "key in password",
        headers: (key) => ({ authorization: basic("", key) }),
      },
      {
        name: "no colon",
        headers: (key) => ({
          authorization: `Basic ${Buffer.from(key).toString("base64")}`,
        }),
      },
      {
        name: "invalid base64",
        headers: () => ({ authorization: "Basic !!!!" }),
      },
      {
        name: "missing padding",
        headers: (key) => ({
          authorization: basic(key, "x").replace(/=+$/, ""),
        }),
      },
      {
        name: "other scheme",
        headers: (key) => ({ authorization: `Digest username="${key}"` }),
      },
      {
        name: "Bearer not enabled",
        headers: (key) => ({ authorization: `Bearer ${key}` }),
      },
      { name: "empty value", headers: () => ({ authorization: "" }) },
      {
        name: "value too long",
        headers: () => ({ authorization: `Basic ${"A".repeat(8192)}` }),
      },
    ];

    for (const failure of failures) {
      test(failure.name, async () => {
        await using fixture = await startFixture();

        const response = await request(fixture.url, {
          headers: failure.headers(fixture.key),
        });

        assertUnauthorizedResponse(response, {
          challenge: 'Basic realm="API", charset="UTF-8"',
          keyPath: fixture.keyPath,
        });
      });
    }
  });
});

describe("duplicate Authorization", () => {
  const orders: Array<{
    name: string;
    fields: (key: string) => Array<[string, string]>;
  }> = [
    {
      name: "valid first",
      fields: (key) => [
        ["Authorization", basic(key)],
        ["Authorization", basic(generateKey())],
      ],
    },
    {
      name: "invalid first",
      fields: (key) => [
        ["Authorization", basic(generateKey())],
        ["Authorization", basic(key)],
      ],
    },
    {
      name: "both valid",
      fields: (key) => [
        ["Authorization", basic(key)],
        ["Authorization", basic(key)],
      ],
    },
    {
      name: "names in other case",
      fields: (key) => [
        ["authorization", basic(key)],
        ["AUTHORIZATION", basic(key)],
      ],
    },
  ];

  for (const order of orders) {
    test(`sends 400 with ${order.name}`, async () => {
      await using fixture = await startFixture();

      const response = await request(fixture.url, {
        headers: order.fields(fixture.key),
      });

      assertDuplicateResponse(response);
    });
  }
});

describe("check", () => {
  test("accepts the key with any password", async () => {
    await using fixture = await startFixture();

    for (const password of ["", "x", ":", "a:b", fixture.key]) {
      const response = await get(fixture.url, basic(fixture.key, password));
      assert.equal(response.status, 200, `password ${password}`);
    }
  });

  const odd = { rawHeaders: ["Authorization"] };
  const throwing = {
    get rawHeaders(): string[] {
      throw new Error("rawHeaders getter failed");
    },
  };
  const throwingMethod = {
    rawHeaders: [],
    get method(): string {
      throw new Error("method getter failed");
    },
  };
  const oddRequests: Array<{ name: string; req: unknown }> = [
    { name: "empty object", req: {} },
    { name: "null", req: null },
    { name: "rawHeaders a string", req: { rawHeaders: "Authorization" } },
    { name: "rawHeaders odd length", req: odd },
    { name: "rawHeaders numbers", req: { rawHeaders: [1, 2] } },
    { name: "rawHeaders getter throws", req: throwing },
    { name: "method getter throws", req: throwingMethod },
  ];

  for (const { name, req } of oddRequests) {
    test(`never throws for ${name}`, async () => {
      await using fixture = await startFixture();
      let checked: unknown = "not called";
      let authenticated: unknown = "not called";
      await using server = await startServer((_, res) => {
        try {
          checked = fixture.auth.check(req as Request, res);
        } catch (error) {
          checked = error;
        }
        try {
          authenticated = fixture.auth.isAuthenticated(req as Request);
        } catch (error) {
          authenticated = error;
        }
        // A request without a readable method stops check after it set the
        // headers of its 401, so the length of its body is dropped here.
        if (!res.writableEnded) {
          res.removeHeader("content-length");
          res.end();
        }
      });

      await request(server.url);

      assert.equal(checked, false);
      assert.equal(authenticated, false);
    });
  }

  const lateResponses: Array<{
    name: string;
    before: (res: http.ServerResponse) => void;
    status: number;
    body: string;
  }> = [
    {
      name: "ended response",
      before: (res) => res.end("first\n"),
      status: 200,
      body: "first\n",
    },
    {
      name: "headers already sent",
      before: (res) => {
        res.writeHead(202, { "content-type": "text/plain" });
        res.write("partial\n");
      },
      status: 202,
      body: "partial\n",
    },
  ];

  for (const late of lateResponses) {
    test(`never throws for ${late.name}`, async () => {
      await using fixture = await startFixture();
      let checked: unknown = "not called";
      await using server = await startServer((req, res) => {
        late.before(res);
        try {
          checked = fixture.auth.check(req, res);
        } catch (error) {
          checked = error;
        }
        res.end();
      });

      const response = await get(server.url, basic(generateKey()));

      assert.equal(checked, false);
      assert.equal(response.status, late.status);
      assert.equal(response.body, late.body);
    });
  }

  test("never throws on destroyed socket", async () => {
    await using fixture = await startFixture();
    let checked: unknown = "not called";
    await using server = await startServer((req, res) => {
      req.socket.destroy();
      try {
        checked = fixture.auth.check(req, res);
      } catch (error) {
        checked = error;
      }
    });

    await assert.rejects(get(server.url, basic(generateKey())));

    assert.equal(checked, false);
  });
});

describe("isAuthenticated", () => {
  const cases: Array<{
    name: string;
    fields: (key: string) => Array<[string, string]>;
    expected: boolean;
  }> = [
    {
      name: "valid key",
      fields: (key) => [["Authorization", basic(key)]],
      expected: true,
    },
    {
      name: "wrong key",
      fields: () => [["Authorization", basic(generateKey())]],
      expected: false,
    },
    { name: "no Authorization", fields: () => [], expected: false },
    {
      name: "duplicate Authorization",
      fields: (key) => [
        ["Authorization", basic(key)],
        ["Authorization", basic(key)],
      ],
      expected: false,
    },
  ];

  for (const { name, fields, expected } of cases) {
    test(`writes nothing for ${name}`, async () => {
      await using fixture = await startFixture();
      await using server = await startServer((req, res) => {
        res.end(String(fixture.auth.isAuthenticated(req)));
      });

      const response = await request(server.url, {
        headers: fields(fixture.key),
      });

      assert.equal(response.body, String(expected));
      assert.equal(response.status, 200);
      assert.equal(response.headers["www-authenticate"], undefined);
      assert.equal(response.headers["cache-control"], undefined);
    });
  }
});

describe("init", () => {
  test("'load' rejects missing file", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");

    await assert.rejects(
      createKeyAuth({ keyPath, init: "load" }),
      (error: unknown) => {
        assert.ok(error instanceof KeyAuthError);
        assert.equal(error.code, "KEY_FILE_UNREADABLE");
        assert.match(error.message, /not found/);
        assert.ok(error.message.includes(`"${keyPath}"`));
        assert.ok(
          error.message.includes(`keyfile-auth generate ${keyPath}`),
          error.message,
        );
        return true;
      },
    );
    assert.equal(existsSync(keyPath), false);
  });

  const invalidContents = [
    { name: "empty file", content: "" },
    { name: "whitespace only", content: " \n" },
    { name: "short key", content: "short\n" },
    { name: "two lines", content: `${generateKey()}\n${generateKey()}\n` },
    { name: "key with colon", content: "0123456789:abcdef\n" },
  ];

  for (const init of ["load", "load-or-generate"] as const) {
    for (const { name, content } of invalidContents) {
      test(`'${init}' rejects ${name} and keeps it`, async () => {
        await using directory = await makeTempDir();
        const keyPath = join(directory.path, "api.key");
        await writeFile(keyPath, content, { mode: 0o640 });

        await assert.rejects(
          createKeyAuth({ keyPath, init }),
          (error: unknown) => {
            assert.ok(error instanceof KeyAuthError);
            assert.equal(error.code, "KEY_FILE_INVALID");
            assert.ok(error.message.includes(`"${keyPath}"`), error.message);
            assert.ok(
              error.message.includes(`keyfile-auth generate --force`),
              error.message,
            );
            return true;
          },
        );
        assert.equal(await readFile(keyPath, "latin1"), content);
      });
    }
  }

  for (const init of ["load", "load-or-generate"] as const) {
    test(`'${init}' rejects unreadable file and keeps it`, async () => {
      await using directory = await makeTempDir();
      const keyPath = join(directory.path, "api.key");
      const key = generateKey();
      await writeKeyFile(keyPath, key);

      // Root reads any file, so the guard then runs as an unprivileged user.
      const asRoot = process.getuid?.() === 0;
      await chmod(directory.path, 0o755);
      await chmod(keyPath, asRoot ? 0o600 : 0o000);
      const moduleUrl = new URL("../src/index.js", import.meta.url).href;
      const script = `
        const [moduleUrl, keyPath, init] = process.argv.slice(1);
        const { createKeyAuth } = await import(moduleUrl);
        try {
          const auth = await createKeyAuth({ keyPath, init, watch: false });
          await auth.close();
          console.log(JSON.stringify({ created: true }));
        } catch (error) {
          console.log(JSON.stringify({ code: error.code, message: error.message }));
        }`;
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(
          process.execPath,
          ["--input-type=module", "-e", script, moduleUrl, keyPath, init],
          asRoot ? { uid: 65534, gid: 65534 } : {},
          (error, output) => (error ? reject(error) : resolve(output)),
        );
      });
      await chmod(keyPath, 0o640);

      const outcome = JSON.parse(stdout) as { code?: string; message?: string };
      assert.equal(outcome.code, "KEY_FILE_UNREADABLE");
      assert.match(outcome.message ?? "", /permission denied/);
      assert.ok(outcome.message?.includes(`"${keyPath}"`), outcome.message);
      assert.equal(await readKey(keyPath), key);
    });
  }

  test("'load-or-generate' generates missing file", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "secrets", "api.key");
    await using auth = await createKeyAuth({ keyPath });
    await using server = await startGuardedServer(auth);

    const content = await readFile(keyPath, "latin1");
    const response = await get(server.url, basic(content.trim()));

    assert.match(content, /^[A-Za-z0-9+/]{43}=\n$/);
    assert.equal(await modeOf(keyPath), 0o640);
    assert.equal(response.status, 200);
  });

  test("'load-or-generate' loads existing file", async () => {
    await using fixture = await startFixture();

    const response = await get(fixture.url, basic(fixture.key));

    assert.equal(await readKey(fixture.keyPath), fixture.key);
    assert.equal(response.status, 200);
  });

  test("'generate' replaces the file at each start", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");
    const firstKey = generateKey();
    await writeKeyFile(keyPath, firstKey);
    const keys = [firstKey];

    for (let start = 0; start < 2; start++) {
      await using auth = await createKeyAuth({ keyPath, init: "generate" });
      await using server = await startGuardedServer(auth);
      const key = await readKey(keyPath);
      const current = await get(server.url, basic(key));
      const previous = await get(server.url, basic(keys.at(-1)!));

      assert.ok(!keys.includes(key), `start ${start} kept an old key`);
      assert.equal(current.status, 200);
      assert.equal(previous.status, 401);
      keys.push(key);
    }
  });

  test("'generate' replaces an invalid file", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");
    await writeFile(keyPath, "short\n");
    await using auth = await createKeyAuth({ keyPath, init: "generate" });
    await using server = await startGuardedServer(auth);

    const response = await get(server.url, basic(await readKey(keyPath)));

    assert.equal(response.status, 200);
  });

  test("concurrent 'load-or-generate' share one key", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "new", "api.key");

    // Without watching, each guard keeps exactly the key it started with.
    const guards = await Promise.all(
      Array.from({ length: 8 }, () => createKeyAuth({ keyPath, watch: false })),
    );
    await using server = await startServer((req, res) => {
      res.end(JSON.stringify(guards.map((auth) => auth.isAuthenticated(req))));
    });

    const response = await get(server.url, basic(await readKey(keyPath)));
    await Promise.all(guards.map((auth) => auth.close()));

    assert.deepEqual(JSON.parse(response.body), Array(8).fill(true));
  });
});

describe("rotate", () => {
  test("switches to a new key and emits 'rotate'", async () => {
    await using fixture = await startFixture({ watch: false });
    const events = collectRotations(fixture.auth);

    await fixture.auth.rotate();
    const newKey = await readKey(fixture.keyPath);
    const oldResponse = await get(fixture.url, basic(fixture.key));
    const newResponse = await get(fixture.url, basic(newKey));

    assert.notEqual(newKey, fixture.key);
    assert.equal(oldResponse.status, 401);
    assert.equal(newResponse.status, 200);
    assert.deepEqual(events, [
      { fingerprint: fingerprintOf(newKey), reason: "rotate" },
    ]);
    assert.match(events[0]!.fingerprint, /^[0-9a-f]{8}$/);
  });

  const starts: Array<{ init: KeyAuthOptions["init"]; existing: boolean }> = [
    { init: "load", existing: true },
    { init: "load-or-generate", existing: true },
    { init: "load-or-generate", existing: false },
    { init: "generate", existing: true },
  ];

  for (const { init, existing } of starts) {
    const file = existing ? "existing file" : "missing file";
    test(`no event for initial '${init}' of ${file}`, async () => {
      await using directory = await makeTempDir();
      const keyPath = join(directory.path, "api.key");
      if (existing) {
        await writeKeyFile(keyPath, generateKey());
      }

      await using auth = await createKeyAuth({ keyPath, init, watch: false });
      const events = collectRotations(auth);
      await auth.rotate();

      assert.deepEqual(
        events.map((event) => event.reason),
        ["rotate"],
      );
    });
  }
});

describe("graceMs", () => {
  const graceMs = 1500;

  test("keeps replaced key until grace ends", async () => {
    await using fixture = await startFixture({ graceMs, watch: false });

    const rotatedAt = performance.now();
    await fixture.auth.rotate();
    const newKey = await readKey(fixture.keyPath);
    const duringGrace = await get(fixture.url, basic(fixture.key));
    const elapsed = performance.now() - rotatedAt;
    await sleep(graceMs - elapsed + 300);
    const afterGrace = await get(fixture.url, basic(fixture.key));
    const newAfterGrace = await get(fixture.url, basic(newKey));

    assert.ok(elapsed < graceMs, `first request took ${elapsed} ms`);
    assert.equal(duringGrace.status, 200);
    assert.equal(afterGrace.status, 401);
    assert.equal(newAfterGrace.status, 200);
  });

  test("keeps only the last replaced key", async () => {
    await using fixture = await startFixture({ graceMs, watch: false });

    await fixture.auth.rotate();
    const secondKey = await readKey(fixture.keyPath);
    await fixture.auth.rotate();
    const thirdKey = await readKey(fixture.keyPath);
    const first = await get(fixture.url, basic(fixture.key));
    const second = await get(fixture.url, basic(secondKey));
    const third = await get(fixture.url, basic(thirdKey));

    assert.equal(first.status, 401);
    assert.equal(second.status, 200);
    assert.equal(third.status, 200);
  });

  test("0 rejects replaced key at once", async () => {
    await using fixture = await startFixture({ graceMs: 0, watch: false });

    await fixture.auth.rotate();
    const response = await get(fixture.url, basic(fixture.key));

    assert.equal(response.status, 401);
  });
});

describe("read-your-writes", () => {
  const writers: Array<{
    name: string;
    write: (keyPath: string, key: string) => void | Promise<void>;
  }> = [
    {
      name: "writeKeyFile",
      write: (keyPath, key) => writeKeyFile(keyPath, key),
    },
    {
      name: "writeFileSync in place",
      write: (keyPath, key) => writeFileSync(keyPath, `${key}\n`),
    },
    {
      name: "writeFile in place",
      write: (keyPath, key) => writeFile(keyPath, `${key}\n`),
    },
    {
      name: "renameSync over",
      write: (keyPath, key) => renameKeySync(keyPath, `${key}\n`),
    },
    {
      name: "rename over",
      write: async (keyPath, key) => {
        await writeFile(`${keyPath}.new`, key);
        await rename(`${keyPath}.new`, keyPath);
      },
    },
    {
      name: "copyFileSync over",
      write: (keyPath, key) => {
        writeFileSync(`${keyPath}.new`, `${key}\r\n`);
        copyFileSync(`${keyPath}.new`, keyPath);
      },
    },
  ];

  for (const writer of writers) {
    test(`accepts new key after ${writer.name}`, async () => {
      await using fixture = await startFixture({ pollIntervalMs: 0 });
      await using parking = await startParkingServer();
      const events = collectRotations(fixture.auth);

      // An asynchronous write leaves time for the watcher, so a run where the
      // watcher took the key before the request is repeated.
      for (let attempt = 1; ; attempt++) {
        const key = generateKey();
        const response = get(parking.url, basic(key));
        const [parked] = await parking.take(1);
        const eventsBefore = events.length;
        await writer.write(fixture.keyPath, key);
        if (events.length > eventsBefore && attempt < 5) {
          checkParked(fixture.auth, parked!);
          await response;
          continue;
        }

        const accepted = checkParked(fixture.auth, parked!);
        const { status } = await response;

        assert.equal(events.length, eventsBefore + 1);
        assert.equal(accepted, true);
        assert.equal(status, 200);
        assert.deepEqual(events.at(-1), {
          fingerprint: fingerprintOf(key),
          reason: "request",
        });
        break;
      }
    });
  }

  test("wrong key does not adopt the file's key", async () => {
    await using fixture = await startFixture({ pollIntervalMs: 0 });
    await using parking = await startParkingServer();
    const events = collectRotations(fixture.auth);
    const newKey = generateKey();

    const wrong = get(parking.url, basic(generateKey()));
    const [wrongParked] = await parking.take(1);
    const old = get(parking.url, basic(fixture.key));
    const [oldParked] = await parking.take(1);
    renameKeySync(fixture.keyPath, `${newKey}\n`);
    const wrongAccepted = checkParked(fixture.auth, wrongParked!);
    const oldAccepted = checkParked(fixture.auth, oldParked!);
    await Promise.all([wrong, old]);
    await waitUntil(() => events.length > 0, "a 'rotate' event");
    const oldAfterWatch = await get(fixture.url, basic(fixture.key));
    const newAfterWatch = await get(fixture.url, basic(newKey));

    assert.equal(wrongAccepted, false);
    assert.equal(oldAccepted, true);
    assert.deepEqual(events, [
      { fingerprint: fingerprintOf(newKey), reason: "watch" },
    ]);
    assert.equal(oldAfterWatch.status, 401);
    assert.equal(newAfterWatch.status, 200);
  });

  test("accepts new key after a wrong key", async () => {
    await using fixture = await startFixture({ pollIntervalMs: 0 });
    await using parking = await startParkingServer();
    const newKey = generateKey();

    const wrong = get(parking.url, basic(generateKey()));
    const [wrongParked] = await parking.take(1);
    const fresh = get(parking.url, basic(newKey));
    const [freshParked] = await parking.take(1);
    renameKeySync(fixture.keyPath, `${newKey}\n`);
    const wrongAccepted = checkParked(fixture.auth, wrongParked!);
    const freshAccepted = checkParked(fixture.auth, freshParked!);
    await Promise.all([wrong, fresh]);

    assert.equal(wrongAccepted, false);
    assert.equal(freshAccepted, true);
  });

  test("reads only a changed file", async (t) => {
    if (!existsSync("/proc/self/io")) {
      t.skip("needs /proc/self/io to count bytes read");
      return;
    }
    await using fixture = await startFixture({ pollIntervalMs: 0 });
    await using parking = await startParkingServer();
    const keyFileSize = fixture.key.length + 1;

    // Measures the bytes read by one check, less those of reading the counter.
    const bytesReadBy = (parked: ParkedRequest): number => {
      const counterStart = bytesRead();
      const counterEnd = bytesRead();
      const start = bytesRead();
      checkParked(fixture.auth, parked);
      const end = bytesRead();
      return end - start - (counterEnd - counterStart);
    };

    const responses = [1, 2, 3].map(() =>
      get(parking.url, basic(generateKey())),
    );
    const [unchanged, changed, again] = await parking.take(3);
    const unchangedBytes = bytesReadBy(unchanged!);
    renameKeySync(fixture.keyPath, `${generateKey()}\n`);
    const changedBytes = bytesReadBy(changed!);
    const againBytes = bytesReadBy(again!);
    await Promise.all(responses);

    assert.ok(unchangedBytes < keyFileSize, `read ${unchangedBytes} bytes`);
    assert.ok(changedBytes >= keyFileSize, `read ${changedBytes} bytes`);
    assert.ok(againBytes < keyFileSize, `read ${againBytes} bytes`);
  });

  test("watch false never follows rewrites", async () => {
    await using fixture = await startFixture({
      watch: false,
      pollIntervalMs: 50,
    });
    const events = collectRotations(fixture.auth);
    const newKey = generateKey();

    renameKeySync(fixture.keyPath, `${newKey}\n`);
    const newAtOnce = await get(fixture.url, basic(newKey));
    await sleep(500);
    const newLater = await get(fixture.url, basic(newKey));
    const oldLater = await get(fixture.url, basic(fixture.key));

    assert.equal(newAtOnce.status, 401);
    assert.equal(newLater.status, 401);
    assert.equal(oldLater.status, 200);
    assert.equal(events.length, 0);
  });
});

describe("warnings", () => {
  /** Collects warnings that reach `process.emitWarning` and name `text`. */
  function collectProcessWarnings(text: string): {
    warnings: Error[];
    stop(): void;
  } {
    const warnings: Error[] = [];
    const listener = (warning: Error): void => {
      if (warning.message.includes(text)) {
        warnings.push(warning);
      }
    };
    process.on("warning", listener);
    return { warnings, stop: () => process.off("warning", listener) };
  }

  test("reports loose permissions once", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");
    await writeKeyFile(keyPath, generateKey());
    await chmod(keyPath, 0o644);
    const fromProcess = collectProcessWarnings(keyPath);

    await using auth = await createKeyAuth({ keyPath, pollIntervalMs: 0 });
    const warnings: KeyAuthError[] = [];
    auth.on("warning", (warning) => warnings.push(warning));
    await waitUntil(() => warnings.length > 0, "a permissions warning");
    await sleep(200);
    fromProcess.stop();

    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.code, "KEY_FILE_PERMISSIONS");
    assert.ok(warnings[0]!.message.includes("0644"), warnings[0]!.message);
    assert.ok(
      warnings[0]!.message.includes(`chmod 640 "${keyPath}"`),
      warnings[0]!.message,
    );
    assert.equal(fromProcess.warnings.length, 0);
  });

  test("goes to process without a listener", async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");
    await writeKeyFile(keyPath, generateKey());
    await chmod(keyPath, 0o604);
    const fromProcess = collectProcessWarnings(keyPath);

    await using auth = await createKeyAuth({ keyPath, pollIntervalMs: 0 });
    await waitUntil(
      () => fromProcess.warnings.length > 0,
      "a warning on process",
    );
    fromProcess.stop();

    const [warning] = fromProcess.warnings;
    assert.ok(warning instanceof KeyAuthError);
    assert.equal(warning.code, "KEY_FILE_PERMISSIONS");
    assert.equal(auth.listenerCount("warning"), 0);
  });

  test("reports invalid content once per content", async () => {
    await using fixture = await startFixture({ pollIntervalMs: 0 });
    const warnings: KeyAuthError[] = [];
    fixture.auth.on("warning", (warning) => warnings.push(warning));

    // Each rewrite gets a new inode, so the failed request after it reads the
    // file again, and so does the watcher.
    for (let rewrite = 0; rewrite < 3; rewrite++) {
      renameKeySync(fixture.keyPath, "short\n");
      const response = await get(fixture.url, basic(generateKey()));
      assert.equal(response.status, 401);
      await sleep(150);
    }
    await waitUntil(() => warnings.length >= 1, "a first warning");
    renameKeySync(fixture.keyPath, "still short\n");
    await waitUntil(() => warnings.length >= 2, "a second warning");
    await sleep(300);
    const oldKey = await get(fixture.url, basic(fixture.key));

    assert.equal(warnings.length, 2);
    assert.equal(warnings[0]!.code, "KEY_FILE_INVALID");
    assert.equal(warnings[1]!.code, "KEY_FILE_INVALID");
    assert.ok(warnings[0]!.message.includes(`"${fixture.keyPath}"`));
    assert.equal(oldKey.status, 200);
  });

  test("reports an unreadable file once", async () => {
    await using fixture = await startFixture({ pollIntervalMs: 0 });
    const warnings: KeyAuthError[] = [];
    fixture.auth.on("warning", (warning) => warnings.push(warning));

    // The watcher and the failed requests both find a directory at the path,
    // and must report it as one condition.
    await rm(fixture.keyPath);
    await mkdir(fixture.keyPath);
    await waitUntil(() => warnings.length >= 1, "a warning");
    for (let attempt = 0; attempt < 3; attempt++) {
      const response = await get(fixture.url, basic(generateKey()));
      assert.equal(response.status, 401);
    }
    await sleep(300);
    const oldKey = await get(fixture.url, basic(fixture.key));

    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.code, "KEY_FILE_UNREADABLE");
    assert.match(warnings[0]!.message, /is a directory/);
    assert.equal(oldKey.status, 200);
  });
});

describe("close", () => {
  test("twice resolves", async () => {
    await using directory = await makeTempDir();
    const auth = await createKeyAuth({
      keyPath: join(directory.path, "api.key"),
    });

    await assert.doesNotReject(auth.close());
    await assert.doesNotReject(auth.close());
  });

  const closers: Array<{
    name: string;
    open: (keyPath: string) => Promise<KeyAuth>;
  }> = [
    {
      name: "close()",
      open: async (keyPath) => {
        const auth = await createKeyAuth({ keyPath });
        await auth.close();
        return auth;
      },
    },
    {
      name: "await using",
      open: async (keyPath) => {
        await using auth = await createKeyAuth({ keyPath });
        return auth;
      },
    },
  ];

  for (const closer of closers) {
    test(`${closer.name} stops following the file`, async () => {
      await using directory = await makeTempDir();
      const keyPath = join(directory.path, "api.key");
      const oldKey = generateKey();
      await writeKeyFile(keyPath, oldKey);
      const auth = await closer.open(keyPath);
      const events = collectRotations(auth);
      await using server = await startGuardedServer(auth);
      const newKey = generateKey();

      renameKeySync(keyPath, `${newKey}\n`);
      const newAtOnce = await get(server.url, basic(newKey));
      await sleep(300);
      const oldLater = await get(server.url, basic(oldKey));

      assert.equal(newAtOnce.status, 401);
      assert.equal(oldLater.status, 200);
      assert.equal(events.length, 0);
    });
  }
});

describe("middleware", () => {
  const cases: Array<{
    name: string;
    fields: (key: string) => Array<[string, string]>;
    status: number;
    nextCalls: number;
  }> = [
    {
      name: "valid key",
      fields: (key) => [["Authorization", basic(key)]],
      status: 200,
      nextCalls: 1,
    },
    {
      name: "wrong key",
      fields: () => [["Authorization", basic(generateKey())]],
      status: 401,
      nextCalls: 0,
    },
    { name: "no Authorization", fields: () => [], status: 401, nextCalls: 0 },
    {
      name: "duplicate Authorization",
      fields: (key) => [
        ["Authorization", basic(key)],
        ["Authorization", basic(key)],
      ],
      status: 400,
      nextCalls: 0,
    },
  ];

  for (const { name, fields, status, nextCalls } of cases) {
    test(`calls next ${nextCalls} times for ${name}`, async () => {
      await using fixture = await startFixture();
      const guard = fixture.auth.middleware();
      let calls = 0;
      await using server = await startServer((req, res) => {
        guard(req, res, () => {
          calls++;
          res.end("next\n");
        });
      });

      const response = await request(server.url, {
        headers: fields(fixture.key),
      });

      assert.equal(response.status, status);
      assert.equal(calls, nextCalls);
    });
  }
});

describe("Bearer", () => {
  const both = ["basic", "bearer"] as const;
  const cases: Array<{
    name: string;
    schemes: KeyAuthOptions["schemes"];
    value: (key: string) => string;
    status: number;
  }> = [
    {
      name: "accepts Bearer when enabled",
      schemes: both,
      value: (key) => `Bearer ${key}`,
      status: 200,
    },
    {
      name: "accepts lowercase bearer",
      schemes: both,
      value: (key) => `bearer ${key}`,
      status: 200,
    },
    {
      name: "keeps Basic when enabled",
      schemes: both,
      value: (key) => basic(key),
      status: 200,
    },
    {
      name: "rejects wrong Bearer key",
      schemes: both,
      value: () => `Bearer ${generateKey()}`,
      status: 401,
    },
    {
      name: "rejects Bearer by default",
      schemes: ["basic"],
      value: (key) => `Bearer ${key}`,
      status: 401,
    },
  ];

  for (const { name, schemes, value, status } of cases) {
    test(name, async () => {
      await using fixture = await startFixture({ schemes });

      const response = await get(fixture.url, value(fixture.key));

      assert.equal(response.status, status);
    });
  }
});
