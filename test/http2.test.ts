import { describe, test } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { once } from "node:events";
import { join } from "node:path";
import { Duplex } from "node:stream";
import type { AddressInfo } from "node:net";
import {
  createKeyAuth,
  generateKey,
  writeKeyFile,
  type KeyAuth,
  type KeyAuthOptions,
} from "../src/index.js";
import { basic, makeTempDir } from "./helpers.js";

/**
 * Header name that the client sends in place of a second `authorization`
 * field. The node:http2 client refuses to send `authorization` twice, so the
 * connection renames this one on the wire.
 *
 * nghttp2 sends a name that is not in the HPACK static table as a literal, and
 * Huffman-codes it only when that is shorter (RFC 7541, section 5.2). A
 * backtick has a 15-bit Huffman code, so these 13 backticks go out as their
 * length byte (0x0d) and the raw bytes, which `authorization` replaces
 * without changing any length.
 */
const PLACEHOLDER = "`".repeat(13);
const PLACEHOLDER_BYTES = Buffer.from(`\x0d${PLACEHOLDER}`, "latin1");
const AUTHORIZATION_BYTES = Buffer.from("\x0dauthorization", "latin1");

/** A guarded h2c server and the key in its key file. */
interface Http2Fixture {
  key: string;
  keyPath: string;
  port: number;
  /** `rawHeaders` of the last request the server received. */
  lastRawHeaders(): readonly string[];
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a cleartext HTTP/2 server on 127.0.0.1 whose handler calls
 * `auth.check` with the compatibility API objects.
 */
async function startHttp2Fixture(
  options: Omit<KeyAuthOptions, "keyPath"> = {},
): Promise<Http2Fixture> {
  const directory = await makeTempDir();
  const keyPath = join(directory.path, "api.key");
  const key = generateKey();
  await writeKeyFile(keyPath, key);
  const auth: KeyAuth = await createKeyAuth({ keyPath, ...options }).catch(
    async (error: unknown) => {
      await directory[Symbol.asyncDispose]();
      throw error;
    },
  );

  let rawHeaders: readonly string[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer((req, res) => {
    rawHeaders = req.rawHeaders;
    if (!auth.check(req, res)) return;
    res.end("ok\n");
  });
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");

  return {
    key,
    keyPath,
    port: (server.address() as AddressInfo).port,
    lastRawHeaders: () => rawHeaders,
    async [Symbol.asyncDispose]() {
      for (const session of sessions) {
        session.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await auth.close();
      await directory[Symbol.asyncDispose]();
    },
  };
}

/** Replaces every placeholder name in an outgoing chunk by `authorization`. */
function renamePlaceholder(chunk: Buffer): Buffer {
  const renamed = Buffer.from(chunk);
  let index = renamed.indexOf(PLACEHOLDER_BYTES);
  while (index !== -1) {
    AUTHORIZATION_BYTES.copy(renamed, index);
    index = renamed.indexOf(PLACEHOLDER_BYTES, index + 1);
  }
  return renamed;
}

/** Opens a connection to `port` that renames the placeholder header. */
function connectRenaming(port: number): Duplex {
  const socket = net.connect(port, "127.0.0.1");
  const connection = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      socket.write(renamePlaceholder(chunk), callback);
    },
    final(callback) {
      socket.end(callback);
    },
    read() {},
    destroy(error, callback) {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  socket.on("data", (chunk: Buffer) => connection.push(chunk));
  socket.on("end", () => connection.push(null));
  socket.on("error", (error) => connection.destroy(error));
  return connection;
}

/** Response of `http2Request`. */
interface Http2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
}

/**
 * Sends one request over a new HTTP/2 session to 127.0.0.1. Each entry of
 * `authorizations` becomes one `authorization` field, in order.
 */
async function http2Request(
  port: number,
  authorizations: string[],
  method = "GET",
): Promise<Http2Response> {
  const [first, ...others] = authorizations;
  assert.ok(others.length <= 1, "at most two authorization fields");
  const headers: http2.OutgoingHttpHeaders = {
    ":path": "/",
    ":method": method,
  };
  if (first !== undefined) {
    headers.authorization = first;
  }
  if (others[0] !== undefined) {
    headers[PLACEHOLDER] = others[0];
  }

  const session = http2.connect(
    `http://127.0.0.1:${port}`,
    others.length > 0 ? { createConnection: () => connectRenaming(port) } : {},
  );
  // Errors also reach the stream, which rejects the request.
  session.on("error", () => {});
  try {
    const stream = session.request(headers);
    const [responseHeaders] = (await once(stream, "response")) as [
      http2.IncomingHttpHeaders,
    ];
    stream.setEncoding("utf8");
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

describe("http2 guard", () => {
  test("accepts valid key", async () => {
    await using fixture = await startHttp2Fixture();

    const response = await http2Request(fixture.port, [basic(fixture.key)]);

    assert.equal(response.status, 200);
    assert.equal(response.body, "ok\n");
  });

  const failures = [
    { name: "wrong key", authorizations: () => [basic(generateKey())] },
    { name: "no authorization", authorizations: () => [] },
  ];

  for (const { name, authorizations } of failures) {
    test(`sends 401 for ${name}`, async () => {
      await using fixture = await startHttp2Fixture({ realm: 'h2 "api"' });

      const response = await http2Request(fixture.port, authorizations());

      assert.equal(response.status, 401);
      assert.equal(
        response.headers["www-authenticate"],
        'Basic realm="h2 \\"api\\"", charset="UTF-8"',
      );
      assert.equal(
        response.headers["content-type"],
        "text/plain; charset=utf-8",
      );
      assert.equal(response.headers["cache-control"], "no-store");
      assert.equal(
        response.body,
        `You must pass the API key from "${fixture.keyPath}" as the username\n`,
      );
    });
  }

  test("sends HEAD 401 without body", async () => {
    await using fixture = await startHttp2Fixture();

    const response = await http2Request(
      fixture.port,
      [basic(generateKey())],
      "HEAD",
    );

    assert.equal(response.status, 401);
    assert.equal(
      response.headers["www-authenticate"],
      'Basic realm="API", charset="UTF-8"',
    );
    assert.equal(response.body, "");
  });

  test("accepts Bearer when enabled", async () => {
    await using fixture = await startHttp2Fixture({
      schemes: ["basic", "bearer"],
    });

    const response = await http2Request(fixture.port, [
      `Bearer ${fixture.key}`,
    ]);

    assert.equal(response.status, 200);
  });

  const orders = [
    { name: "valid first", valid: 0 },
    { name: "invalid first", valid: 1 },
  ];

  for (const { name, valid } of orders) {
    test(`sends 400 for two fields, ${name}`, async () => {
      await using fixture = await startHttp2Fixture();
      const fields = [basic(generateKey())];
      fields.splice(valid, 0, basic(fixture.key));

      const response = await http2Request(fixture.port, fields);
      const raw = fixture.lastRawHeaders();
      const received = raw.filter(
        (_, index) => index % 2 === 1 && raw[index - 1] === "authorization",
      );

      assert.deepEqual(received, fields, "fields the server received");
      assert.equal(response.status, 400);
      assert.equal(response.headers["www-authenticate"], undefined);
      assert.equal(
        response.headers["content-type"],
        "text/plain; charset=utf-8",
      );
      assert.equal(
        response.body,
        "The request has more than one Authorization header\n",
      );
    });
  }
});
