import http, { type IncomingMessage } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";

/**
 * Sends one GET request per entry of `authorizations` to a `node:http`
 * server on 127.0.0.1 and returns the `IncomingMessage` objects that server
 * parsed, in the same order. An entry is the `Authorization` value to send,
 * or `undefined` to send none. The other headers are those curl sends.
 *
 * The returned objects are real parsed requests, so the benchmarks call the
 * checks on exactly what a server hands to its handler.
 */
export async function captureRequests(
  authorizations: readonly (string | undefined)[],
): Promise<IncomingMessage[]> {
  const captured: IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    captured.push(req);
    res.end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  try {
    for (const authorization of authorizations) {
      const headers: Record<string, string> = {
        "User-Agent": "curl/8.5.0",
        Accept: "*/*",
      };
      if (authorization !== undefined) {
        headers["Authorization"] = authorization;
      }
      await send(port, agent, headers);
    }
  } finally {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  }

  if (captured.length !== authorizations.length) {
    throw new Error(
      `captured ${captured.length} requests, expected ${authorizations.length}`,
    );
  }
  return captured;
}

function send(
  port: number,
  agent: http.Agent,
  headers: Record<string, string>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: "/", agent, headers },
      (res) => {
        res.resume();
        res.on("end", resolve);
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** Builds a Basic `Authorization` value with `user` and an empty password. */
export function basicAuthorization(user: string): string {
  return `Basic ${Buffer.from(`${user}:`).toString("base64")}`;
}

/**
 * Makes a Basic `Authorization` value malformed by replacing a character in
 * the middle of its credentials with `*`, which base64 does not contain.
 */
export function malformedAuthorization(authorization: string): string {
  const middle = Math.floor(("Basic ".length + authorization.length) / 2);
  return `${authorization.slice(0, middle)}*${authorization.slice(middle + 1)}`;
}
