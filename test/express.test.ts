// The guard's Connect-style middleware inside a real Express 5 app.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import express from "express";
import {
  createKeyAuth,
  generateKey,
  writeKeyFile,
  type KeyAuth,
} from "../src/index.js";
import {
  assertDuplicateResponse,
  assertUnauthorizedResponse,
  basic,
  makeTempDir,
  request,
  waitForEvent,
} from "./helpers.js";

const REALM = "express test";

const CHALLENGE = `Basic realm="${REALM}", charset="UTF-8"`;

/** An Express app on 127.0.0.1 and the guard of its key file. */
interface Fixture {
  keyPath: string;
  key: string;
  auth: KeyAuth;
  baseUrl: string;
  /** Value of the `Host` header for the app. */
  host: string;
  /** Number of times a guarded route handler ran. */
  handlerRuns(): number;
}

/**
 * Starts an Express app on 127.0.0.1 port 0 with these routes, and stops it
 * after the test:
 * - `GET /public`: open to everyone;
 * - `GET /admin/status` and `POST /admin/echo`: behind
 *   `app.use("/admin", auth.middleware())`, which comes after `express.json()`;
 * - `GET /report`: guarded by the middleware as a route handler.
 */
async function setUp(t: TestContext): Promise<Fixture> {
  const directory = await makeTempDir();
  const keyPath = join(directory.path, "api.key");
  const key = generateKey();
  await writeKeyFile(keyPath, key);
  const auth = await createKeyAuth({ keyPath, realm: REALM, init: "load" });

  let handlerRuns = 0;
  const app = express();
  app.get("/public", (_req, res) => {
    res.send("public\n");
  });
  app.use(express.json());
  app.use("/admin", auth.middleware());
  app.get("/admin/status", (_req, res) => {
    handlerRuns++;
    res.send("admin\n");
  });
  app.post("/admin/echo", (req, res) => {
    handlerRuns++;
    res.json(req.body);
  });
  app.get("/report", auth.middleware(), (_req, res) => {
    handlerRuns++;
    res.send("report\n");
  });

  const server = http.createServer(app);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await auth.close();
    await directory[Symbol.asyncDispose]();
  });
  return {
    keyPath,
    key,
    auth,
    baseUrl: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    handlerRuns: () => handlerRuns,
  };
}

/** The two ways of mounting the middleware, by a path they guard. */
const GUARDED_PATHS = [
  { mount: "app.use", path: "/admin/status", body: "admin\n" },
  { mount: "route handler", path: "/report", body: "report\n" },
];

for (const { mount, path, body } of GUARDED_PATHS) {
  describe(`middleware as ${mount}`, () => {
    test("valid key reaches the route", async (t) => {
      const fixture = await setUp(t);

      const response = await request(fixture.baseUrl + path, {
        headers: { Authorization: basic(fixture.key) },
      });

      assert.equal(response.status, 200);
      assert.equal(response.body, body);
      assert.equal(fixture.handlerRuns(), 1);
    });

    const rejected: Array<{ name: string; headers: Record<string, string> }> = [
      { name: "wrong key", headers: { Authorization: basic(generateKey()) } },
      { name: "missing key", headers: {} },
    ];
    for (const { name, headers } of rejected) {
      test(`${name} gets 401 with the challenge`, async (t) => {
        const fixture = await setUp(t);

        const response = await request(fixture.baseUrl + path, { headers });

        assertUnauthorizedResponse(response, {
          challenge: CHALLENGE,
          keyPath: fixture.keyPath,
        });
        assert.equal(fixture.handlerRuns(), 0);
      });
    }

    test("duplicate Authorization gets 400", async (t) => {
      const fixture = await setUp(t);
      const valid = basic(fixture.key);
      const wrong = basic(generateKey());

      for (const order of [
        [valid, wrong],
        [wrong, valid],
      ]) {
        // With an array of headers, node:http sends no Host header of its
        // own, and the server would reject the request for that alone.
        const headers: Array<[string, string]> = [
          ["Host", fixture.host],
          ...order.map((value): [string, string] => ["Authorization", value]),
        ];
        const response = await request(fixture.baseUrl + path, { headers });

        assertDuplicateResponse(response);
      }
      assert.equal(fixture.handlerRuns(), 0);
    });
  });
}

describe("express app", () => {
  test("public route needs no key", async (t) => {
    const fixture = await setUp(t);

    const response = await request(`${fixture.baseUrl}/public`);

    assert.equal(response.status, 200);
    assert.equal(response.body, "public\n");
  });

  test("follows a rewrite of the key file", async (t) => {
    const fixture = await setUp(t);
    const newKey = generateKey();

    // The watcher has to adopt the new key on its own, because no request
    // carries it before the event.
    const rotated = waitForEvent(fixture.auth, "rotate", 15_000);
    await writeKeyFile(fixture.keyPath, newKey);
    await rotated;

    const oldResponse = await request(`${fixture.baseUrl}/admin/status`, {
      headers: { Authorization: basic(fixture.key) },
    });
    const newResponse = await request(`${fixture.baseUrl}/admin/status`, {
      headers: { Authorization: basic(newKey) },
    });

    assert.equal(oldResponse.status, 401);
    assert.equal(newResponse.status, 200);
  });

  test("POST after express.json() gets its body", async (t) => {
    const fixture = await setUp(t);
    const payload = { action: "restart", ids: [1, 2, 3] };

    const response = await postJson(fixture, basic(fixture.key), payload);

    assert.equal(response.status, 200);
    assert.deepEqual(JSON.parse(response.body), payload);
  });

  test("POST with a wrong key gets 401", async (t) => {
    const fixture = await setUp(t);

    const response = await postJson(fixture, basic(generateKey()), {
      action: "restart",
    });

    assert.equal(response.status, 401);
    assert.equal(fixture.handlerRuns(), 0);
  });
});

/** Sends `payload` as JSON to `POST /admin/echo` with `authorization`. */
async function postJson(
  fixture: Fixture,
  authorization: string,
  payload: unknown,
): Promise<{ status: number; body: string }> {
  const response = await fetch(`${fixture.baseUrl}/admin/echo`, {
    method: "POST",
    headers: {
      Authorization: authorization,
      "Content-Type": "application/json",
    },
    body: JSON.stringify(payload),
  });
  return { status: response.status, body: await response.text() };
}
