import { describe, test } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import { generateKey, type KeyAuthOptions } from "../src/index.js";
import {
  assertDuplicateResponse,
  assertUnauthorizedResponse,
  basic,
  http2Request,
  startFixture,
  type Fixture,
  type Http2Response,
} from "./helpers.js";

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

/** A guarded h2c server that records the raw headers of each request. */
interface Http2Fixture extends Fixture<http2.Http2Server> {
  /** `rawHeaders` of the last request the server received. */
  lastRawHeaders(): readonly string[];
}

/**
 * Starts a fixture with an h2c server and records the `rawHeaders` of each
 * request before the guard checks it.
 */
async function startHttp2Fixture(
  options: Omit<KeyAuthOptions, "keyPath"> = {},
): Promise<Http2Fixture> {
  const fixture = await startFixture(options, { server: "http2" });
  let rawHeaders: readonly string[] = [];
  fixture.server.server.prependListener("request", (req) => {
    rawHeaders = req.rawHeaders;
  });
  return { ...fixture, lastRawHeaders: () => rawHeaders };
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

/**
 * Sends one request over a new HTTP/2 session to 127.0.0.1. Each entry of
 * `authorizations` becomes one `authorization` field, in order.
 */
function sendAuthorizations(
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

  return http2Request(
    `http://127.0.0.1:${port}`,
    headers,
    others.length > 0 ? { createConnection: () => connectRenaming(port) } : {},
  );
}

describe("http2 guard", () => {
  test("accepts valid key", async () => {
    await using fixture = await startHttp2Fixture();

    const response = await sendAuthorizations(fixture.server.port, [
      basic(fixture.key),
    ]);

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

      const response = await sendAuthorizations(
        fixture.server.port,
        authorizations(),
      );

      assertUnauthorizedResponse(response, {
        challenge: 'Basic realm="h2 \\"api\\"", charset="UTF-8"',
        keyPath: fixture.keyPath,
      });
    });
  }

  test("sends HEAD 401 without body", async () => {
    await using fixture = await startHttp2Fixture();

    const response = await sendAuthorizations(
      fixture.server.port,
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

    const response = await sendAuthorizations(fixture.server.port, [
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

      const response = await sendAuthorizations(fixture.server.port, fields);
      const raw = fixture.lastRawHeaders();
      const received = raw.filter(
        (_, index) => index % 2 === 1 && raw[index - 1] === "authorization",
      );

      assert.deepEqual(received, fields, "fields the server received");
      assertDuplicateResponse(response);
    });
  }
});
