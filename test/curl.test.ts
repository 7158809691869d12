import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { generateKey } from "../src/index.js";
import { readKey, startFixture } from "./helpers.js";

const CLI_PATH = fileURLToPath(new URL("../src/cli.js", import.meta.url));

/** Why the tests are skipped, or `undefined` when curl can run. */
const curlMissing = ((): string | undefined => {
  try {
    execFileSync("curl", ["--version"], { stdio: "ignore" });
    return undefined;
  } catch {
    return "curl is not installed; install it to run these tests";
  }
})();

/** Status and body of the last curl in a script. */
interface CurlResult {
  status: number;
  body: string;
}

/**
 * Runs `script` in `sh` with `NODE`, `CLI` (the command line) and the
 * variables of `env` set. Inside it, `curl` adds the options every call needs:
 * no configuration file, no proxy, a time limit, and the status code after
 * the body. Returns the status and body that the last curl printed.
 */
function runCurl(
  script: string,
  env: Record<string, string>,
): Promise<CurlResult> {
  const prelude =
    'curl() { command curl -q -sS --noproxy "*" --max-time 10 ' +
    '-w "\\n%{http_code}" "$@"; }\n';
  return new Promise((resolve, reject) => {
    execFile(
      "sh",
      ["-c", prelude + script],
      {
        env: {
          PATH: process.env.PATH ?? "",
          NODE: process.execPath,
          CLI: CLI_PATH,
          ...env,
        },
      },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${script} failed: ${stderr}`, { cause: error }));
          return;
        }
        const separator = stdout.lastIndexOf("\n");
        resolve({
          status: Number(stdout.slice(separator + 1)),
          body: stdout.slice(0, separator),
        });
      },
    );
  });
}

describe("curl", { skip: curlMissing }, () => {
  const passing = [
    { name: "--user KEY:", script: 'curl --user "$(cat "$KEYFILE"):" "$URL"' },
    {
      name: "--user KEY:x",
      script: 'curl --user "$(cat "$KEYFILE"):x" "$URL"',
    },
    {
      name: "--basic --user KEY:",
      script: 'curl --basic --user "$(cat "$KEYFILE"):" "$URL"',
    },
  ];

  for (const { name, script } of passing) {
    test(`accepts ${name}`, async () => {
      await using fixture = await startFixture();

      const result = await runCurl(script, {
        URL: fixture.url,
        KEYFILE: fixture.keyPath,
      });

      assert.equal(result.status, 200);
      assert.equal(result.body, "ok\n");
    });
  }

  test("rejects wrong key", async () => {
    await using fixture = await startFixture();

    const result = await runCurl('curl --user "$WRONG:" "$URL"', {
      URL: fixture.url,
      WRONG: generateKey(),
    });

    assert.equal(result.status, 401);
    assert.equal(
      result.body,
      `You must pass the API key from "${fixture.keyPath}" as the username\n`,
    );
  });

  test("rejects no credentials", async () => {
    await using fixture = await startFixture();

    const result = await runCurl('curl "$URL"', { URL: fixture.url });

    assert.equal(result.status, 401);
  });

  const bearerCases = [
    { schemes: ["basic", "bearer"] as const, status: 200 },
    { schemes: ["basic"] as const, status: 401 },
  ];

  for (const { schemes, status } of bearerCases) {
    test(`Bearer gets ${status} with ${schemes.join("+")}`, async () => {
      await using fixture = await startFixture({ schemes });

      const result = await runCurl(
        'curl -H "Authorization: Bearer $(cat "$KEYFILE")" "$URL"',
        { URL: fixture.url, KEYFILE: fixture.keyPath },
      );

      assert.equal(result.status, status);
    });
  }

  test("accepts key right after CLI rotate", async () => {
    await using fixture = await startFixture();
    let oldKey = fixture.key;

    // Each round runs the command line, then curl with the file it wrote,
    // with no wait in between.
    for (let round = 1; round <= 2; round++) {
      const fresh = await runCurl(
        '"$NODE" "$CLI" rotate "$KEYFILE" >/dev/null && ' +
          'curl --user "$(cat "$KEYFILE"):" "$URL"',
        { URL: fixture.url, KEYFILE: fixture.keyPath },
      );
      const newKey = await readKey(fixture.keyPath);
      const stale = await runCurl('curl --user "$OLD:" "$URL"', {
        URL: fixture.url,
        OLD: oldKey,
      });

      assert.notEqual(newKey, oldKey, `round ${round} kept the key`);
      assert.equal(fresh.status, 200, `round ${round} new key`);
      assert.equal(stale.status, 401, `round ${round} old key`);
      oldKey = newKey;
    }
  });
});
