// Raw bytes on a TCP socket to a guarded server: Authorization lines that no
// well-behaved client sends. The server must respond to each one and stay up.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { generateKey } from "../src/index.js";
import { basic, request, startFixture, type Fixture } from "./helpers.js";

/** One response read back from a raw socket. */
interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Responses read from one connection until the server closed it. */
interface Exchange {
  responses: RawResponse[];
  /** Bytes after the last complete response, normally none. */
  rest: string;
}

const EXCHANGE_TIMEOUT_MS = 10_000;

/**
 * Builds one HTTP/1.1 request from raw header lines, which are written as
 * latin1, so each character is one byte on the wire.
 */
function rawRequest(
  headerLines: string[],
  options: { method?: string; close?: boolean } = {},
): string {
  const { method = "GET", close = true } = options;
  const lines = [
    `${method} / HTTP/1.1`,
    "Host: 127.0.0.1",
    ...headerLines,
    ...(close ? ["Connection: close"] : []),
  ];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/**
 * Splits the bytes a server sent into responses. `methods` are the methods of
 * the requests in order, because a response to HEAD has no body, even with a
 * Content-Length header.
 */
function parseResponses(data: string, methods: string[]): Exchange {
  const responses: RawResponse[] = [];
  let offset = 0;

  while (offset < data.length) {
    const headerEnd = data.indexOf("\r\n\r\n", offset);
    if (headerEnd === -1) {
      break;
    }
    const [statusLine = "", ...headerLines] = data
      .slice(offset, headerEnd)
      .split("\r\n");
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? 0);
    const headers = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      headers.set(
        line.slice(0, colon).toLowerCase(),
        line.slice(colon + 1).trim(),
      );
    }

    const isHead = methods[responses.length] === "HEAD";
    const length = isHead ? 0 : Number(headers.get("content-length") ?? 0);
    const bodyStart = headerEnd + 4;
    if (bodyStart + length > data.length) {
      break;
    }
    responses.push({
      status,
      headers,
      body: data.slice(bodyStart, bodyStart + length),
    });
    offset = bodyStart + length;
  }

  return { responses, rest: data.slice(offset) };
}

/**
 * Writes `requests` at once on a new connection and reads until the server
 * closes it. Fails when the server neither responds nor closes in time.
 */
async function exchange(
  port: number,
  requests: string[],
  methods: string[] = requests.map(() => "GET"),
): Promise<Exchange> {
  const socket = net.connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${EXCHANGE_TIMEOUT_MS} ms`));
    }, EXCHANGE_TIMEOUT_MS);
    // The server may close while the request is still being written, as it
    // does for an oversized header, so a reset is an ordinary end here.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.write(Buffer.from(requests.join(""), "latin1"));
  });

  return parseResponses(Buffer.concat(chunks).toString("latin1"), methods);
}

/** Builds a Basic value with `key` whose length is exactly `length`. */
function basicOfLength(key: string, length: number): string {
  // Spaces between scheme and credentials are allowed in any number, so they
  // pad the value to the exact length after the token is a multiple of 4.
  const passwordLength = Math.floor((length - 6) / 4) * 3 - key.length - 1;
  const token = Buffer.from(`${key}:${"p".repeat(passwordLength)}`).toString(
    "base64",
  );
  return `Basic${" ".repeat(length - 5 - token.length)}${token}`;
}

describe("raw socket requests", () => {
  const key = generateKey();
  const valid = basic(key);
  const wrong = basic(generateKey());
  let fixture: Fixture;

  before(async () => {
    fixture = await startFixture({ init: "load" }, { key });
  });

  after(async () => {
    await fixture[Symbol.asyncDispose]();
  });

  // Node's HTTP parser rejects some bytes itself with 400 or 431 and closes
  // the connection; the guard decides every request the parser lets through.
  const cases: Array<{
    name: string;
    lines: string[];
    status: number;
    answeredBy: "handler" | "guard" | "parser";
  }> = [
    {
      name: "duplicate valid lines",
      lines: [`Authorization: ${valid}`, `Authorization: ${valid}`],
      status: 400,
      answeredBy: "guard",
    },
    {
      name: "duplicate, valid first",
      lines: [`Authorization: ${valid}`, `Authorization: ${wrong}`],
      status: 400,
      answeredBy: "guard",
    },
    {
      name: "duplicate, valid last",
      lines: [`Authorization: ${wrong}`, `Authorization: ${valid}`],
      status: 400,
      answeredBy: "guard",
    },
    {
      name: "duplicate in other cases",
      lines: [`authorization: ${valid}`, `AUTHORIZATION: ${valid}`],
      status: 400,
      answeredBy: "guard",
    },
    {
      name: "duplicate with an empty line",
      lines: [`Authorization: ${valid}`, "Authorization:"],
      status: 400,
      answeredBy: "guard",
    },
    {
      name: "value of exactly 8192 characters",
      lines: [`Authorization: ${basicOfLength(key, 8192)}`],
      status: 200,
      answeredBy: "handler",
    },
    {
      name: "value of 8193 characters",
      lines: [`Authorization: ${basicOfLength(key, 8193)}`],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "value of 16,000 characters",
      lines: [`Authorization: ${basicOfLength(key, 16_000)}`],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "value of 100,000 characters",
      lines: [`Authorization: ${basicOfLength(key, 100_000)}`],
      status: 431,
      answeredBy: "parser",
    },
    {
      name: "empty value",
      lines: ["Authorization: "],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "empty value, no space",
      lines: ["Authorization:"],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "whitespace only",
      lines: ["Authorization:  \t  "],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "tab after the scheme",
      lines: [`Authorization: ${valid.replace(" ", "\t")}`],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "tab inside the token",
      lines: [`Authorization: ${valid.slice(0, 10)}\t${valid.slice(10)}`],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "trailing tab",
      lines: [`Authorization: ${valid}\t`],
      status: 200,
      answeredBy: "handler",
    },
    {
      name: "NUL in the token",
      lines: [`Authorization: ${valid.slice(0, 10)}\0${valid.slice(10)}`],
      status: 400,
      answeredBy: "parser",
    },
    {
      name: "NUL only",
      lines: ["Authorization: \0"],
      status: 400,
      answeredBy: "parser",
    },
    {
      name: "CR alone in the value",
      lines: [`Authorization: Basic \r${valid.slice(6)}`],
      status: 400,
      answeredBy: "parser",
    },
    {
      name: "LF alone in the value",
      lines: [`Authorization: Basic \n${valid.slice(6)}`],
      status: 400,
      answeredBy: "parser",
    },
    {
      name: "DEL in the value",
      lines: [`Authorization: ${valid}\x7f`],
      status: 400,
      answeredBy: "parser",
    },
    {
      name: "escape in the value",
      lines: [`Authorization: \x1b[2J${valid}`],
      status: 400,
      answeredBy: "parser",
    },
    {
      name: "bytes 0x80 and 0xff after the token",
      lines: [`Authorization: ${valid}\x80\xff`],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "bytes 0x80 to 0xff only",
      lines: [`Authorization: ${"\x80\xa0\xc3\xa9\xff".repeat(20)}`],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "key as raw latin1 bytes",
      lines: [`Authorization: Basic ${key}\xe9:`],
      status: 401,
      answeredBy: "guard",
    },
    {
      name: "folded continuation line",
      lines: ["Authorization: Basic", ` ${valid.slice(6)}`],
      status: 400,
      answeredBy: "parser",
    },
  ];

  for (const { name, lines, status, answeredBy } of cases) {
    it(`${name} gets ${status}`, async () => {
      const { responses } = await exchange(fixture.server.port, [
        rawRequest(lines),
      ]);
      const response = responses[0];

      assert.equal(responses.length, 1, "one response");
      assert.equal(response?.status, status);
      if (answeredBy === "handler") {
        assert.equal(response?.body, "ok\n");
      } else if (answeredBy === "guard") {
        // The guard marks each of its responses as not cacheable.
        assert.equal(response?.headers.get("cache-control"), "no-store");
      } else {
        assert.equal(response?.headers.get("cache-control"), undefined);
      }
      if (status === 401) {
        assert.equal(
          response?.headers.get("www-authenticate"),
          'Basic realm="API", charset="UTF-8"',
        );
      }
    });
  }

  it("duplicate lines get the plain text 400", async () => {
    const lines = [`Authorization: ${valid}`, `Authorization: ${valid}`];
    const { responses } = await exchange(fixture.server.port, [
      rawRequest(lines),
    ]);
    const response = responses[0]!;

    assert.equal(response.headers.get("www-authenticate"), undefined);
    assert.equal(
      response.headers.get("content-type"),
      "text/plain; charset=utf-8",
    );
    assert.equal(
      response.body,
      "The request has more than one Authorization header\n",
    );
  });

  it("pipelined requests each get a response", async () => {
    // Only requests that the parser accepts: after a parse error node:http
    // closes the connection and drops the responses still queued.
    const requests: Array<{
      lines: string[];
      method?: string;
      status: number;
    }> = [
      { lines: [`Authorization: ${valid}`], status: 200 },
      { lines: [`Authorization: ${wrong}`], status: 401 },
      { lines: [], status: 401 },
      {
        lines: [`Authorization: ${valid}`, `Authorization: ${valid}`],
        status: 400,
      },
      { lines: [`Authorization: ${valid}`], method: "HEAD", status: 200 },
      { lines: [`Authorization: ${wrong}`], method: "HEAD", status: 401 },
      { lines: [`Authorization: ${basicOfLength(key, 8193)}`], status: 401 },
      { lines: ["Authorization: Basic !!!!"], status: 401 },
      { lines: [`Authorization: Bearer ${key}`], status: 401 },
      { lines: [`Authorization: ${valid}`], status: 200 },
    ];
    const methods = requests.map(({ method = "GET" }) => method);
    const raw = requests.map(({ lines, method }, index) =>
      rawRequest(lines, { method, close: index === requests.length - 1 }),
    );

    const { responses, rest } = await exchange(
      fixture.server.port,
      raw,
      methods,
    );

    assert.deepEqual(
      responses.map(({ status }) => status),
      requests.map(({ status }) => status),
    );
    assert.deepEqual(
      responses.filter(({ status }) => status === 200).map(({ body }) => body),
      ["ok\n", "", "ok\n"],
    );
    assert.equal(rest, "", "no bytes after the last response");
  });

  it("server still responds afterwards", async () => {
    const response = await request(fixture.url, {
      headers: { Authorization: valid },
    });

    assert.equal(fixture.server.server.listening, true);
    assert.equal(response.status, 200);
  });
});
