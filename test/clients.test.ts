// Real HTTP clients against a guarded server on loopback: curl (Basic and
// Bearer), wget, Python's urllib, Node's fetch and a node:http2 client.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import type http from "node:http";
import { writeFile } from "node:fs/promises";
import type http2 from "node:http2";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateKey, type KeyAuthOptions } from "../src/index.js";
import {
  basic,
  http2Request,
  readKey,
  startFixture,
  type Fixture,
  type FixtureOptions,
} from "./helpers.js";

/**
 * Realm of every guard here. It is not the default, so a client keyed by it
 * fails when the server sends a wrong realm.
 */
const REALM = "keyfile-auth test";

const CHALLENGE = `Basic realm="${REALM}", charset="UTF-8"`;

const CLI_PATH = fileURLToPath(new URL("../src/cli.js", import.meta.url));

/**
 * Time limit of one client process in ms. The clients' own network timeout,
 * in seconds, is half of it, so that they fail first with their own message.
 */
const CLIENT_TIMEOUT_MS = 20_000;
const CLIENT_TIMEOUT_SECONDS = String(CLIENT_TIMEOUT_MS / 1000 / 2);

/**
 * Environment of the client processes: no proxy variables, so that every
 * request goes straight to the loopback server.
 */
const CLIENT_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) => !/^(http|https|ftp|all)_proxy$/i.test(name),
  ),
);
CLIENT_ENV.no_proxy = "*";
CLIENT_ENV.NO_PROXY = "*";

// Prints the final status of one GET through HTTPBasicAuthHandler, which
// sends the credentials only after a 401 whose challenge names the realm
// the password manager is keyed by.
const PYTHON_CLIENT = `
import sys, urllib.error, urllib.request
url, realm, user = sys.argv[1:4]
passwords = urllib.request.HTTPPasswordMgr()
passwords.add_password(realm, url, user, "")
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    urllib.request.HTTPBasicAuthHandler(passwords),
)
try:
    with opener.open(url, timeout=${CLIENT_TIMEOUT_SECONDS}) as response:
        print(response.status)
except urllib.error.HTTPError as error:
    print(error.code)
`;

/** Output of a finished process. */
interface ProcessResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program without a shell and resolves with its exit code, whatever
 * it is. Rejects when the program cannot start, is killed or times out.
 */
function run(file: string, args: readonly string[]): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: CLIENT_ENV, timeout: CLIENT_TIMEOUT_MS, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ exitCode: 0, stdout, stderr });
        } else if (typeof error.code === "number") {
          resolve({ exitCode: error.code, stdout, stderr });
        } else {
          reject(error);
        }
      },
    );
  });
}

/**
 * Returns a skip reason when `command --version` cannot run, or `false`
 * when the command is installed.
 */
async function skipUnlessInstalled(command: string): Promise<string | false> {
  try {
    await run(command, ["--version"]);
    return false;
  } catch {
    return `${command} is not installed; CI installs it with apt-get`;
  }
}

const noCurl = await skipUnlessInstalled("curl");
const noWget = await skipUnlessInstalled("wget");
const noPython = await skipUnlessInstalled("python3");

/** Options of `setUp`: the server kind and the guard options to vary. */
type SetUpOptions = { server?: FixtureOptions["server"] } & Pick<
  KeyAuthOptions,
  "schemes" | "watch" | "pollIntervalMs"
>;

/**
 * Writes a key file, starts a guard with the test realm and a server on
 * 127.0.0.1 port 0, and removes all of it after the test. The key file has
 * a folder of its own, so that files written by clients do not wake the
 * watcher.
 */
async function setUp(
  t: TestContext,
  options: SetUpOptions = {},
): Promise<Fixture<http.Server | http2.Http2Server>> {
  const { server = "http1", ...guardOptions } = options;
  const fixture = await startFixture(
    { ...guardOptions, realm: REALM, init: "load" },
    { fileName: "keys/api.key", server },
  );

  t.after(() => fixture[Symbol.asyncDispose]());
  return fixture;
}

/** Sends one GET to `url` through `python3` with `user` for `realm`. */
async function pythonStatus(
  url: string,
  realm: string,
  user: string,
): Promise<number> {
  const result = await run("python3", [
    "-I",
    "-c",
    PYTHON_CLIENT,
    url,
    realm,
    user,
  ]);
  assert.equal(result.stderr, "", "python3 wrote to stderr");
  return Number(result.stdout.trim());
}

/** Output of one wget run: its exit code and every status it received. */
interface WgetResult {
  exitCode: number;
  statuses: number[];
}

/** Sends one GET through `wget` with `key` as the user and an empty password. */
async function wgetGet(url: string, key: string): Promise<WgetResult> {
  const result = await run("wget", [
    "--no-config",
    "--no-proxy",
    "--tries=1",
    `--timeout=${CLIENT_TIMEOUT_SECONDS}`,
    "--server-response",
    "--output-document=-",
    `--user=${key}`,
    "--password=",
    url,
  ]);
  const statuses = [...result.stderr.matchAll(/^ {2}HTTP\/[\d.]+ (\d{3})/gm)];
  return {
    exitCode: result.exitCode,
    statuses: statuses.map((match) => Number(match[1])),
  };
}

/** Common curl arguments: no config file, no proxy, print only the status. */
const CURL_ARGS = [
  "-q",
  "--silent",
  "--show-error",
  "--noproxy",
  "*",
  "--max-time",
  CLIENT_TIMEOUT_SECONDS,
  "--output",
  "/dev/null",
  "--write-out",
  "%{http_code}",
];

// Sends the key file's content as the user-id with an empty password, as in
// curl --user "$(cat api.key):". $1 is the key file and $2 the URL.
const CURL_BASIC_SCRIPT = `exec curl ${CURL_ARGS.map((arg) => `'${arg}'`).join(" ")} --user "$(cat "$1"):" "$2"`;

/** Sends one GET through `sh` and curl, reading the key from `keyFile`. */
async function curlBasicStatus(url: string, keyFile: string): Promise<number> {
  const result = await run("sh", ["-c", CURL_BASIC_SCRIPT, "sh", keyFile, url]);
  assert.equal(result.exitCode, 0, result.stderr);
  return Number(result.stdout);
}

/** Sends one GET with `key` through a real client and returns the final status. */
type SendWithKey = (
  fixture: Fixture<http.Server | http2.Http2Server>,
  key: string,
) => Promise<number>;

/** Sends the key as the Basic user-id from a key file of the client's own. */
const curlBasic: SendWithKey = async (fixture, key) => {
  const keyFile = join(fixture.directory, "client.key");
  await writeFile(keyFile, `${key}\n`);
  return curlBasicStatus(fixture.url, keyFile);
};

const curlBearer: SendWithKey = async (fixture, key) => {
  const result = await run("curl", [
    ...CURL_ARGS,
    "--header",
    `Authorization: Bearer ${key}`,
    fixture.url,
  ]);
  assert.equal(result.exitCode, 0, result.stderr);
  return Number(result.stdout);
};

const wget: SendWithKey = async (fixture, key) => {
  const { statuses } = await wgetGet(fixture.url, key);
  return statuses.at(-1) ?? 0;
};

const pythonUrllib: SendWithKey = (fixture, key) =>
  pythonStatus(fixture.url, REALM, key);

const nodeFetch: SendWithKey = async (fixture, key) => {
  const response = await fetch(fixture.url, {
    headers: { Authorization: basic(key) },
  });
  await response.arrayBuffer();
  return response.status;
};

const nodeHttp2: SendWithKey = async (fixture, key) => {
  const response = await http2Request(fixture.url, {
    authorization: basic(key),
  });
  return response.status;
};

/** Rotates the key with the command line and returns the new key. */
async function rotateWithCli(keyPath: string): Promise<string> {
  const result = await run(process.execPath, [CLI_PATH, "rotate", keyPath]);
  assert.equal(result.exitCode, 0, result.stderr);
  return readKey(keyPath);
}

/**
 * Defines the tests every client passes: the key gets 200, a wrong key 401,
 * and after a rotation by `rotate()` or by the command line the old key 401
 * and the new key 200.
 */
function testKeyAndRotation(send: SendWithKey, options: SetUpOptions): void {
  test("accepts the key", async (t) => {
    const fixture = await setUp(t, options);

    assert.equal(await send(fixture, fixture.key), 200);
  });

  test("rejects a wrong key", async (t) => {
    const fixture = await setUp(t, options);

    assert.equal(await send(fixture, generateKey()), 401);
  });

  test("follows rotate()", async (t) => {
    const fixture = await setUp(t, options);

    await fixture.auth.rotate();
    const newKey = await readKey(fixture.keyPath);

    assert.equal(await send(fixture, fixture.key), 401);
    assert.equal(await send(fixture, newKey), 200);
  });

  test("follows the CLI rotate", async (t) => {
    const fixture = await setUp(t, options);

    const newKey = await rotateWithCli(fixture.keyPath);

    // The new key goes first, so that the guard adopts it through the
    // read-your-writes check or the watcher, whichever comes first. From
    // then on the old key is invalid, since there is no grace period.
    assert.equal(await send(fixture, newKey), 200);
    assert.equal(await send(fixture, fixture.key), 401);
  });
}

describe("curl --user", { skip: noCurl }, () => {
  testKeyAndRotation(curlBasic, {});

  test("reads the key file right after CLI rotate", async (t) => {
    // Polling once a minute and no file system events: only the
    // read-your-writes check can make the new key pass this soon.
    const fixture = await setUp(t, { watch: "poll", pollIntervalMs: 60_000 });

    // The script users write: rotate, then read the file and send the key.
    const script = `"$3" "$4" rotate "$1" >/dev/null && ${CURL_BASIC_SCRIPT}`;
    const result = await run("sh", [
      "-c",
      script,
      "sh",
      fixture.keyPath,
      fixture.url,
      process.execPath,
      CLI_PATH,
    ]);

    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stdout, "200");
  });
});

describe("curl Bearer", { skip: noCurl }, () => {
  testKeyAndRotation(curlBearer, { schemes: ["basic", "bearer"] });

  test("rejected without the bearer scheme", async (t) => {
    const fixture = await setUp(t, { schemes: ["basic"] });

    assert.equal(await curlBearer(fixture, fixture.key), 401);
  });
});

describe("wget", { skip: noWget }, () => {
  testKeyAndRotation(wget, {});

  test("sends the key after the challenge", async (t) => {
    const fixture = await setUp(t);

    const result = await wgetGet(fixture.url, fixture.key);

    assert.deepEqual(result.statuses, [401, 200]);
    assert.equal(result.exitCode, 0);
  });

  test("exits 6 for a wrong key", async (t) => {
    const fixture = await setUp(t);

    const result = await wgetGet(fixture.url, generateKey());

    assert.deepEqual(result.statuses, [401, 401]);
    assert.equal(result.exitCode, 6);
  });
});

describe("python urllib", { skip: noPython }, () => {
  testKeyAndRotation(pythonUrllib, {});

  test("sends no key for another realm", async (t) => {
    const fixture = await setUp(t);

    assert.equal(await pythonStatus(fixture.url, "API", fixture.key), 401);
  });
});

describe("fetch", () => {
  testKeyAndRotation(nodeFetch, {});

  test("401 carries the challenge", async (t) => {
    const fixture = await setUp(t);

    const response = await fetch(fixture.url);
    await response.arrayBuffer();

    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), CHALLENGE);
  });
});

describe("node:http2", () => {
  testKeyAndRotation(nodeHttp2, { server: "http2" });

  test("401 carries the challenge", async (t) => {
    const fixture = await setUp(t, { server: "http2" });

    const response = await http2Request(fixture.url, {});

    assert.equal(response.status, 401);
    assert.equal(response.headers["www-authenticate"], CHALLENGE);
    assert.equal(response.headers["cache-control"], "no-store");
  });
});
