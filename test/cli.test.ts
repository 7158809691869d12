import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, type SpawnOptions } from "node:child_process";
import {
  chmod,
  chown,
  mkdir,
  readFile,
  readdir,
  stat,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fingerprintKey, parseKeyFileContent } from "../src/key.js";
import { writeKeyFile } from "../src/key-file.js";
import { makeTempDir, modeOf, otherGroup } from "./helpers.js";

const CLI_PATH = fileURLToPath(new URL("../src/cli.js", import.meta.url));

const OLD_KEY = "Zx8rT2kLm9Qp4Wv7Yb3Nc6Hd1Jf5Gs0A";

/** Exit code and output of one run of the command line. */
interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `keyfile-auth` with `args` in a child process and collects its output. */
async function runCli(
  args: string[],
  options: SpawnOptions = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    ...options,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30_000,
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.on("data", (chunk: string) => (stderr += chunk));

  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Reads the key from a key file, failing when it contains no valid key. */
async function readKey(path: string): Promise<string> {
  const parsed = parseKeyFileContent(await readFile(path));
  assert.equal(parsed.ok, true, `no valid key in ${path}`);
  return parsed.ok ? parsed.key : "";
}

/**
 * Makes `directory` unwritable for the command line and returns the spawn
 * options to run it with. As root, which may write anywhere, the directory
 * stays owned by root and the command runs as uid and gid 65534.
 */
async function lockDirectory(
  base: string,
  directory: string,
): Promise<SpawnOptions> {
  if (process.getuid?.() === 0) {
    await chmod(base, 0o755);
    await chmod(directory, 0o755);
    return { uid: 65534, gid: 65534 };
  }
  await chmod(directory, 0o555);
  return {};
}

describe("cli generate", () => {
  it("creates a 0640 file with a valid key", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    const result = await runCli(["generate", path]);
    const key = await readKey(path);

    assert.equal(result.code, 0);
    assert.equal(await modeOf(path), 0o640);
    assert.equal(await readFile(path, "latin1"), `${key}\n`);
    assert.equal(key.length, 44);
  });

  it("prints the fingerprint, never the key", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    const result = await runCli(["generate", path]);
    const key = await readKey(path);

    assert.match(result.stdout, new RegExp(`\\b${fingerprintKey(key)}\\b`));
    assert.equal(result.stdout.includes(key), false);
    assert.equal(result.stderr.includes(key), false);
    assert.equal(result.stderr, "");
  });

  it("creates missing directories 0750", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "etc", "app", "api.key");
    const result = await runCli(["generate", path]);

    assert.equal(result.code, 0);
    assert.equal(await modeOf(join(directory.path, "etc")), 0o750);
    assert.equal(await modeOf(join(directory.path, "etc", "app")), 0o750);
    assert.equal(await modeOf(path), 0o640);
  });

  it("writes 0640 under umask 077", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    // The child process inherits the umask when it is spawned.
    const previous = process.umask(0o077);
    const running = runCli(["generate", path]);
    process.umask(previous);
    const result = await running;

    assert.equal(result.code, 0);
    assert.equal(await modeOf(path), 0o640);
  });

  it("rejects an existing file", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, OLD_KEY);
    const result = await runCli(["generate", path]);

    assert.equal(result.code, 1);
    assert.match(result.stderr, /already exists/);
    assert.equal(result.stderr.includes(`"${path}"`), true);
    assert.match(result.stderr, /--force/);
    assert.equal(result.stdout, "");
    assert.equal(await readFile(path, "latin1"), `${OLD_KEY}\n`);
    assert.deepEqual(await readdir(directory.path), ["api.key"]);
  });

  for (const args of [
    ["generate", "--force", "PATH"],
    ["generate", "PATH", "--force"],
    ["--force", "generate", "PATH"],
  ]) {
    it(`replaces with ${args.join(" ")}`, async () => {
      await using directory = await makeTempDir();
      const path = join(directory.path, "api.key");
      await writeFile(path, `${OLD_KEY}\n`, { mode: 0o644 });
      const result = await runCli(
        args.map((arg) => (arg === "PATH" ? path : arg)),
      );
      const key = await readKey(path);

      assert.equal(result.code, 0);
      assert.notEqual(key, OLD_KEY);
      assert.equal(await modeOf(path), 0o640);
      assert.match(result.stdout, new RegExp(`\\b${fingerprintKey(key)}\\b`));
      assert.equal(result.stdout.includes(key), false);
    });
  }

  it("--force creates a missing file", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    const result = await runCli(["generate", "--force", path]);

    assert.equal(result.code, 0);
    assert.equal((await readKey(path)).length, 44);
  });

  it("writes a new key each time", async () => {
    await using directory = await makeTempDir();
    const first = join(directory.path, "first.key");
    const second = join(directory.path, "second.key");
    await runCli(["generate", first]);
    await runCli(["generate", second]);

    assert.notEqual(await readKey(first), await readKey(second));
  });
});

describe("cli rotate", () => {
  it("replaces the key", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, OLD_KEY);
    const result = await runCli(["rotate", path]);
    const key = await readKey(path);

    assert.equal(result.code, 0);
    assert.notEqual(key, OLD_KEY);
    assert.equal(await modeOf(path), 0o640);
    assert.deepEqual(await readdir(directory.path), ["api.key"]);
  });

  it("prints the fingerprint, never the key", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, OLD_KEY);
    const result = await runCli(["rotate", path]);
    const key = await readKey(path);

    assert.match(result.stdout, new RegExp(`\\b${fingerprintKey(key)}\\b`));
    assert.equal(result.stdout.includes(key), false);
    assert.equal(result.stderr.includes(key), false);
    assert.equal(result.stdout.includes(OLD_KEY), false);
    assert.equal(result.stderr, "");
  });

  it("keeps the group", async (t: TestContext) => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, OLD_KEY);
    const gid = otherGroup((await stat(path)).gid);
    if (gid === undefined) {
      t.skip("needs root or a second group");
      return;
    }
    await chown(path, -1, gid);
    const result = await runCli(["rotate", path]);

    assert.equal(result.code, 0);
    assert.equal((await stat(path)).gid, gid);
    assert.notEqual(await readKey(path), OLD_KEY);
  });

  it("fails on a missing file", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    const result = await runCli(["rotate", path]);

    assert.equal(result.code, 1);
    assert.match(result.stderr, /not found/);
    assert.equal(result.stderr.includes(`"${path}"`), true);
    assert.equal(result.stdout, "");
    assert.deepEqual(await readdir(directory.path), []);
  });

  it("fails on a missing directory", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "keys", "api.key");
    const result = await runCli(["rotate", path]);

    assert.equal(result.code, 1);
    assert.match(result.stderr, /not found/);
    assert.deepEqual(await readdir(directory.path), []);
  });

  it("fails on a directory", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await mkdir(path);
    const result = await runCli(["rotate", path]);

    assert.equal(result.code, 1);
    assert.match(result.stderr, /not a regular file/);
    assert.equal(result.stderr.includes(`"${path}"`), true);
  });
});

describe("cli help", () => {
  for (const args of [
    ["--help"],
    ["-h"],
    ["generate", "--help"],
    ["rotate", "-h"],
  ]) {
    it(args.join(" "), async () => {
      const result = await runCli(args);

      assert.equal(result.code, 0);
      assert.match(result.stdout, /^Usage:/);
      assert.match(result.stdout, /keyfile-auth generate \[--force\] PATH/);
      assert.match(result.stdout, /keyfile-auth rotate PATH/);
      assert.equal(result.stderr, "");
    });
  }
});

const USAGE_ERRORS: Array<[name: string, args: string[], message: RegExp]> = [
  ["no command", [], /missing command/],
  ["unknown command", ["frobnicate", "PATH"], /unknown command "frobnicate"/],
  ["generate without path", ["generate"], /missing key file path/],
  ["rotate without path", ["rotate"], /missing key file path/],
  ["empty path", ["generate", ""], /missing key file path/],
  ["extra argument", ["generate", "PATH", "extra"], /unexpected argument/],
  ["rotate extra argument", ["rotate", "PATH", "x"], /unexpected argument/],
  ["unknown flag", ["generate", "--bogus", "PATH"], /--bogus/],
  ["unknown short flag", ["generate", "-x", "PATH"], /-x/],
  ["--force with rotate", ["rotate", "--force", "PATH"], /--force/],
  ["--force with a value", ["generate", "--force=yes", "PATH"], /--force/],
];

describe("cli usage error", () => {
  for (const [name, args, message] of USAGE_ERRORS) {
    it(name, async () => {
      await using directory = await makeTempDir();
      const path = join(directory.path, "api.key");
      const result = await runCli(
        args.map((arg) => (arg === "PATH" ? path : arg)),
      );

      assert.equal(result.code, 2);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /Usage:/);
      assert.equal(result.stdout, "");
      assert.deepEqual(await readdir(directory.path), []);
    });
  }

  it("--force with rotate leaves the file", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, OLD_KEY);
    const result = await runCli(["rotate", "--force", path]);

    assert.equal(result.code, 2);
    assert.equal(await readFile(path, "latin1"), `${OLD_KEY}\n`);
  });
});

describe("cli unwritable location", () => {
  it("generate fails and names the path", async () => {
    await using directory = await makeTempDir();
    const locked = join(directory.path, "locked");
    await mkdir(locked);
    const options = await lockDirectory(directory.path, locked);
    const path = join(locked, "api.key");
    const result = await runCli(["generate", path], options);

    assert.equal(result.code, 1);
    assert.equal(result.stderr.includes(`"${path}"`), true);
    assert.match(result.stderr, /permission denied/i);
    assert.equal(result.stdout, "");
    assert.deepEqual(await readdir(locked), []);
  });

  it("generate in a missing directory fails", async () => {
    await using directory = await makeTempDir();
    const locked = join(directory.path, "locked");
    await mkdir(locked);
    const options = await lockDirectory(directory.path, locked);
    const path = join(locked, "keys", "api.key");
    const result = await runCli(["generate", path], options);

    assert.equal(result.code, 1);
    assert.equal(result.stderr.includes(`"${path}"`), true);
    assert.deepEqual(await readdir(locked), []);
  });

  it("rotate fails and leaves the file", async () => {
    await using directory = await makeTempDir();
    const locked = join(directory.path, "locked");
    const path = join(locked, "api.key");
    await writeKeyFile(path, OLD_KEY);
    const options = await lockDirectory(directory.path, locked);
    const result = await runCli(["rotate", path], options);

    assert.equal(result.code, 1);
    assert.equal(result.stderr.includes(`"${path}"`), true);
    assert.match(result.stderr, /permission denied/i);
    assert.equal(result.stdout, "");
    assert.equal(await readFile(path, "latin1"), `${OLD_KEY}\n`);
    assert.deepEqual(await readdir(locked), ["api.key"]);
  });

  it("generate under a file fails", async () => {
    await using directory = await makeTempDir();
    const file = join(directory.path, "file");
    await writeFile(file, "x");
    const path = join(file, "api.key");
    const result = await runCli(["generate", path]);

    assert.equal(result.code, 1);
    assert.equal(result.stderr.includes(`"${path}"`), true);
    assert.doesNotMatch(result.stderr, /--force/);
    assert.equal(await readFile(file, "latin1"), "x");
  });
});
