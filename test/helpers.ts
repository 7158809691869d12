// Shared test utilities: temporary folders, guarded servers on loopback and
// plain HTTP requests with raw header control.
import http from "node:http";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import type { EventEmitter } from "node:events";
import type { KeyAuth } from "../src/index.js";

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

/** A guarded `node:http` server listening on 127.0.0.1 and a random port. */
export interface GuardedServer {
  server: http.Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts a server whose handler answers 200 "ok\n" after `auth.check`. */
export async function startGuardedServer(
  auth: KeyAuth,
): Promise<GuardedServer> {
  const server = http.createServer((req, res) => {
    if (!auth.check(req, res)) return;
    res.end("ok\n");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}/`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
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
 * name-value pairs to send the same header more than once.
 */
export async function request(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string> | Array<[string, string]>;
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
      { method: options.method ?? "GET", headers: flatHeaders, agent: false },
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

/** Builds a Basic `Authorization` value with `user` and `password`. */
export function basic(user: string, password = ""): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
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
