// Shared test utilities: temporary folders, guarded servers on loopback,
// plain HTTP/1.1 and HTTP/2 requests with raw header control, and checks
// shared by several test files.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo, Server as NetServer } from "node:net";
import type { EventEmitter } from "node:events";
import {
  createKeyAuth,
  generateKey,
  writeKeyFile,
  type KeyAuth,
  type KeyAuthOptions,
} from "../src/index.js";

/** Creates a temporary folder that `dispose` removes with its content. */
export async function makeTempDir(): Promise<{
  path: string;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const path = await mkdtemp(join(tmpdir(), "keyfile-auth-"));
  return {
    path,
    async [Symbol.asyncDispose]() {
      await rm(path, { recursive: true, force: true });
    },
  };
}

/**
 * A server listening on 127.0.0.1 and a random port, which `close` and
 * `await using` shut down.
 */
export interface LoopbackServer<Server = http.Server> {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `server` on 127.0.0.1 and a random port. `closeConnections` runs
 * before `server.close`, so that closing does not wait for idle clients.
 */
async function listenOnLoopback<Server extends NetServer>(
  server: Server,
  closeConnections: () => void,
): Promise<LoopbackServer<Server>> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  const close = async (): Promise<void> => {
    closeConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}/`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Starts a `node:http` server with `handler` on 127.0.0.1. */
export function startServer(
  handler: http.RequestListener,
): Promise<LoopbackServer> {
  const server = http.createServer(handler);
  return listenOnLoopback(server, () => server.closeAllConnections());
}

/** Starts a server whose handler responds with 200 "ok\n" after `auth.check`. */
export function startGuardedServer(auth: KeyAuth): Promise<LoopbackServer> {
  return startServer((req, res) => {
    if (!auth.check(req, res)) return;
    res.end("ok\n");
  });
}

/**
 * Starts an h2c server (HTTP/2 without TLS) whose handler responds with 200
 * "ok\n" after `auth.check` with the compatibility API objects. Closing it
 * destroys the open sessions first.
 */
export function startGuardedHttp2Server(
  auth: KeyAuth,
): Promise<LoopbackServer<http2.Http2Server>> {
  const server = http2.createServer((req, res) => {
    if (!auth.check(req, res)) return;
    res.end("ok\n");
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  return listenOnLoopback(server, () => {
    for (const session of sessions) {
      session.destroy();
    }
  });
}

/** A guard on a fresh key file in a temporary folder, behind a real server. */
export interface Fixture<Server = http.Server> {
  /** Path of the temporary folder. */
  directory: string;
  keyPath: string;
  key: string;
  auth: KeyAuth;
  url: string;
  server: LoopbackServer<Server>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Where `startFixture` writes the key and which server it starts. */
export interface FixtureOptions {
  /**
   * Path of the key file inside the temporary folder, joined with a plain
   * `/` so that segments such as `./` stay in the path. Default "api.key".
   */
  fileName?: string;
  /** Key written to the file. Default: a new `generateKey()`. */
  key?: string;
  /** Server kind: HTTP/1.1 or h2c. Default "http1". */
  server?: "http1" | "http2";
}

/**
 * Writes a key file in a new temporary folder, creates a guard for it with
 * `options` and starts a guarded server on 127.0.0.1. Disposing the fixture
 * closes the server and the guard and removes the folder. When the guard
 * cannot be created, the folder is removed and the error is rethrown.
 */
export async function startFixture(
  options?: Omit<KeyAuthOptions, "keyPath">,
  fixtureOptions?: FixtureOptions & { server?: "http1" },
): Promise<Fixture>;
export async function startFixture(
  options: Omit<KeyAuthOptions, "keyPath">,
  fixtureOptions: FixtureOptions & { server: "http2" },
): Promise<Fixture<http2.Http2Server>>;
export async function startFixture(
  options?: Omit<KeyAuthOptions, "keyPath">,
  fixtureOptions?: FixtureOptions,
): Promise<Fixture<http.Server | http2.Http2Server>>;
export async function startFixture(
  options: Omit<KeyAuthOptions, "keyPath"> = {},
  fixtureOptions: FixtureOptions = {},
): Promise<Fixture<http.Server | http2.Http2Server>> {
  const { fileName = "api.key", key = generateKey() } = fixtureOptions;
  const directory = await makeTempDir();
  const keyPath = `${directory.path}/${fileName}`;
  await writeKeyFile(keyPath, key);
  const auth = await createKeyAuth({ keyPath, ...options }).catch(
    async (error: unknown) => {
      await directory[Symbol.asyncDispose]();
      throw error;
    },
  );

  const server: LoopbackServer<http.Server | http2.Http2Server> =
    fixtureOptions.server === "http2"
      ? await startGuardedHttp2Server(auth)
      : await startGuardedServer(auth);
  return {
    directory: directory.path,
    keyPath,
    key,
    auth,
    url: server.url,
    server,
    async [Symbol.asyncDispose]() {
      await server.close();
      await auth.close();
      await directory[Symbol.asyncDispose]();
    },
  };
}

/** Response of `request`. */
export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * Sends one request to a loopback server. `headers` may be an array of
 * name-value pairs to send the same header more than once. Without `agent`,
 * the request uses a connection of its own.
 */
export async function request(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string> | Array<[string, string]>;
    agent?: http.Agent;
  } = {},
): Promise<SimpleResponse> {
  const headers = options.headers ?? {};
  let flatHeaders: Record<string, string> | string[];
  if (Array.isArray(headers)) {
    // Node sends no Host header for a raw header list, and its server rejects
    // a request without one with 400 before any handler runs.
    const hasHost = headers.some(([name]) => name.toLowerCase() === "host");
    const withHost: Array<[string, string]> = hasHost
      ? headers
      : [["Host", new URL(url).host], ...headers];
    flatHeaders = withHost.flat();
  } else {
    flatHeaders = headers;
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: options.method ?? "GET",
        headers: flatHeaders,
        agent: options.agent ?? false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** Response of `http2Request`. */
export interface Http2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
}

/**
 * Sends one request over a new HTTP/2 session to `url` and closes the
 * session afterwards. `headers` are sent after `:path` "/", so they may
 * replace it or add `:method` (GET by default). `sessionOptions` go to
 * `http2.connect`.
 */
export async function http2Request(
  url: string,
  headers: http2.OutgoingHttpHeaders,
  sessionOptions: http2.ClientSessionOptions = {},
): Promise<Http2Response> {
  const session = http2.connect(url, sessionOptions);
  // Errors also reach the stream, which rejects the request.
  session.on("error", () => {});
  try {
    const stream = session.request({ ":path": "/", ...headers });
    stream.setEncoding("utf8");
    const [responseHeaders] = (await once(stream, "response")) as [
      http2.IncomingHttpHeaders,
    ];
    let body = "";
    for await (const chunk of stream) {
      body += chunk as string;
    }
    return {
      status: Number(responseHeaders[":status"]),
      headers: responseHeaders,
      body,
    };
  } finally {
    session.close();
  }
}

/**
 * Asserts that `response`, over HTTP/1.1 or HTTP/2, is the guard's 401:
 * `challenge` as `WWW-Authenticate`, no caching, and a plain-text body that
 * names `keyPath`.
 */
export function assertUnauthorizedResponse(
  response: SimpleResponse | Http2Response,
  expected: { challenge: string; keyPath: string },
): void {
  assert.equal(response.status, 401);
  assert.equal(response.headers["www-authenticate"], expected.challenge);
  assert.equal(response.headers["content-type"], "text/plain; charset=utf-8");
  assert.equal(response.headers["cache-control"], "no-store");
  assert.equal(
    response.body,
    `You must pass the API key from "${expected.keyPath}" as the username\n`,
  );
}

/**
 * Asserts that `response`, over HTTP/1.1 or HTTP/2, is the guard's 400 for
 * a request with more than one Authorization field: no challenge, and a
 * plain-text body that states the reason.
 */
export function assertDuplicateResponse(
  response: SimpleResponse | Http2Response,
): void {
  assert.equal(response.status, 400);
  assert.equal(response.headers["www-authenticate"], undefined);
  assert.equal(response.headers["content-type"], "text/plain; charset=utf-8");
  assert.equal(
    response.body,
    "The request has more than one Authorization header\n",
  );
}

/** Builds a Basic `Authorization` value with `user` and `password`. */
export function basic(user: string, password = ""): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** Computes a key's fingerprint as the guard does: 8 hex digits of SHA-256. */
export function fingerprintOf(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 8);
}

/** Reads the key from a key file, without its trailing newline. */
export async function readKey(keyPath: string): Promise<string> {
  return (await readFile(keyPath, "latin1")).trim();
}

/** Returns the permission bits of the file or directory at `path`. */
export async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

/**
 * Returns a group other than `currentGid` that this process may give a
 * file, or `undefined` when there is none. As root, which may give any
 * group, it is 65534 or, when that is the current group, 65533.
 */
export function otherGroup(currentGid: number): number | undefined {
  if (process.getuid?.() === 0) {
    return currentGid === 65534 ? 65533 : 65534;
  }
  return process.getgroups?.().find((gid) => gid !== currentGid);
}

/**
 * Waits for `event` on `emitter`, failing after `timeoutMs` so that a
 * missing event fails the test instead of hanging it.
 */
export async function waitForEvent<T = unknown>(
  emitter: EventEmitter,
  event: string,
  timeoutMs = 5000,
): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const [value] = await once(emitter, event, { signal });
    return value as T;
  } catch (error) {
    if (signal.aborted) {
      throw new Error(`no "${event}" event within ${timeoutMs} ms`);
    }
    throw error;
  }
}
