import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { generateKey, parseKeyFileContent } from "../src/key.js";
import {
  MAX_KEY_FILE_SIZE,
  describeLoosePermissions,
  readKeyFile,
  readKeyFileSync,
  writeKeyFile,
} from "../src/key-file.js";
import { makeTempDir, modeOf, otherGroup } from "./helpers.js";

const KEY = "Zx8rT2kLm9Qp4Wv7Yb3Nc6Hd1Jf5Gs0A";
const OTHER_KEY = "Ua4Ie8Oo2Kk6Rr0Tt9Yy3Pp7Ss1Dd5Ff";

/** Runs `action` with the process umask set to `mask`, then restores it. */
async function withUmask<T>(mask: number, action: () => Promise<T>) {
  const previous = process.umask(mask);
  try {
    return await action();
  } finally {
    process.umask(previous);
  }
}

describe("writeKeyFile content", () => {
  it("is the key and one newline", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, KEY);

    assert.deepEqual(await readFile(path), Buffer.from(`${KEY}\n`));
  });

  it("replaces a longer file entirely", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeFile(path, "x".repeat(1000));
    await writeKeyFile(path, KEY);

    assert.deepEqual(await readFile(path), Buffer.from(`${KEY}\n`));
  });

  it("replaces a previous key", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, KEY);
    await writeKeyFile(path, OTHER_KEY);

    assert.equal(await readFile(path, "latin1"), `${OTHER_KEY}\n`);
  });

  it("leaves only the key file", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, KEY);
    await writeKeyFile(path, OTHER_KEY);

    assert.deepEqual(await readdir(directory.path), ["api.key"]);
  });
});

describe("writeKeyFile modes", () => {
  for (const umask of [0o000, 0o077, 0o022, 0o027]) {
    const umaskText = umask.toString(8).padStart(3, "0");

    it(`new file is 0640 under umask ${umaskText}`, async () => {
      await using directory = await makeTempDir();
      const path = join(directory.path, "api.key");
      await withUmask(umask, () => writeKeyFile(path, KEY));

      assert.equal(await modeOf(path), 0o640);
    });

    it(`replaced file is 0640 under umask ${umaskText}`, async () => {
      await using directory = await makeTempDir();
      const path = join(directory.path, "api.key");
      await writeFile(path, `${OTHER_KEY}\n`);
      await chmod(path, 0o666);
      await withUmask(umask, () => writeKeyFile(path, KEY));

      assert.equal(await modeOf(path), 0o640);
    });

    it(`new directories are 0750 under umask ${umaskText}`, async () => {
      await using directory = await makeTempDir();
      const path = join(directory.path, "a", "b", "c", "api.key");
      await withUmask(umask, () => writeKeyFile(path, KEY));

      assert.equal(await modeOf(join(directory.path, "a")), 0o750);
      assert.equal(await modeOf(join(directory.path, "a", "b")), 0o750);
      assert.equal(await modeOf(join(directory.path, "a", "b", "c")), 0o750);
      assert.equal(await modeOf(path), 0o640);
    });
  }

  it("new directory is 0750 when one level is missing", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "keys", "api.key");
    await withUmask(0o077, () => writeKeyFile(path, KEY));

    assert.equal(await modeOf(join(directory.path, "keys")), 0o750);
  });

  it("existing directories keep their mode", async () => {
    await using directory = await makeTempDir();
    await mkdir(join(directory.path, "a"));
    await chmod(join(directory.path, "a"), 0o711);
    await chmod(directory.path, 0o701);
    const path = join(directory.path, "a", "b", "api.key");
    await writeKeyFile(path, KEY);

    assert.equal(await modeOf(directory.path), 0o701);
    assert.equal(await modeOf(join(directory.path, "a")), 0o711);
    assert.equal(await modeOf(join(directory.path, "a", "b")), 0o750);
  });
});

describe("writeKeyFile group", () => {
  it("keeps the group of an existing file", async (t: TestContext) => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, OTHER_KEY);
    const gid = otherGroup((await stat(path)).gid);
    if (gid === undefined) {
      t.skip("needs root or a second group");
      return;
    }
    await chown(path, -1, gid);
    await writeKeyFile(path, KEY);

    assert.equal((await stat(path)).gid, gid);
    assert.equal(await modeOf(path), 0o640);
    assert.equal(await readFile(path, "latin1"), `${KEY}\n`);
  });
});

// Names a careless writer might use for its temporary file.
const GUESSABLE_NAMES = [
  "api.key.tmp",
  ".api.key.tmp",
  "api.key.new",
  "api.key~",
  ".api.key.swp",
  "api.key.lock",
  `api.key.${process.pid}`,
  `api.key.tmp.${process.pid}`,
  `.api.key.${process.pid}.tmp`,
  `.api.key.${process.pid}`,
  "tmp",
];

describe("writeKeyFile planted entries", () => {
  it("never follows a planted symlink", async () => {
    await using directory = await makeTempDir();
    const keysDirectory = join(directory.path, "keys");
    const victim = join(directory.path, "victim");
    await mkdir(keysDirectory);
    await writeFile(victim, "victim\n", { mode: 0o600 });
    for (const name of GUESSABLE_NAMES) {
      await symlink(victim, join(keysDirectory, name));
    }
    const path = join(keysDirectory, "api.key");
    await writeKeyFile(path, OTHER_KEY);
    await writeKeyFile(path, KEY);

    assert.equal(await readFile(victim, "latin1"), "victim\n");
    assert.equal(await modeOf(victim), 0o600);
    assert.equal((await lstat(path)).isFile(), true);
    assert.equal(await readFile(path, "latin1"), `${KEY}\n`);
    for (const name of GUESSABLE_NAMES) {
      assert.equal(await readlink(join(keysDirectory, name)), victim, name);
    }
  });

  it("never creates a dangling symlink's target", async () => {
    await using directory = await makeTempDir();
    const keysDirectory = join(directory.path, "keys");
    const target = join(directory.path, "created-through-link");
    await mkdir(keysDirectory);
    for (const name of GUESSABLE_NAMES) {
      await symlink(target, join(keysDirectory, name));
    }
    const path = join(keysDirectory, "api.key");
    await writeKeyFile(path, KEY);

    await assert.rejects(stat(target), { code: "ENOENT" });
    assert.equal(await readFile(path, "latin1"), `${KEY}\n`);
  });

  it("leaves planted files unchanged", async () => {
    await using directory = await makeTempDir();
    for (const name of GUESSABLE_NAMES) {
      await writeFile(join(directory.path, name), `planted ${name}\n`);
    }
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, KEY);

    assert.equal(await readFile(path, "latin1"), `${KEY}\n`);
    for (const name of GUESSABLE_NAMES) {
      const content = await readFile(join(directory.path, name), "latin1");
      assert.equal(content, `planted ${name}\n`, name);
    }
    assert.deepEqual(
      (await readdir(directory.path)).sort(),
      [...GUESSABLE_NAMES, "api.key"].sort(),
    );
  });
});

describe("writeKeyFile replace false", () => {
  it("fails with EEXIST on an existing file", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, OTHER_KEY);

    await assert.rejects(writeKeyFile(path, KEY, { replace: false }), {
      code: "EEXIST",
    });
    assert.equal(await readFile(path, "latin1"), `${OTHER_KEY}\n`);
    assert.deepEqual(await readdir(directory.path), ["api.key"]);
  });

  it("fails with EEXIST on a symlink", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    const target = join(directory.path, "missing-target");
    await symlink(target, path);

    await assert.rejects(writeKeyFile(path, KEY, { replace: false }), {
      code: "EEXIST",
    });
    await assert.rejects(stat(target), { code: "ENOENT" });
  });

  it("creates a missing file", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await writeKeyFile(path, KEY, { replace: false });

    assert.equal(await readFile(path, "latin1"), `${KEY}\n`);
    assert.equal(await modeOf(path), 0o640);
    assert.deepEqual(await readdir(directory.path), ["api.key"]);
  });

  it("lets one of concurrent writers win", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    const keys = Array.from({ length: 10 }, () => generateKey());
    const results = await Promise.allSettled(
      keys.map((key) => writeKeyFile(path, key, { replace: false })),
    );
    const winners = keys.filter(
      (_, index) => results[index]!.status === "fulfilled",
    );
    const codes = results.flatMap((result) =>
      result.status === "rejected" ? [result.reason.code] : [],
    );

    assert.equal(winners.length, 1);
    assert.deepEqual(codes, Array(keys.length - 1).fill("EEXIST"));
    assert.equal(await readFile(path, "latin1"), `${winners[0]}\n`);
    assert.deepEqual(await readdir(directory.path), ["api.key"]);
  });
});

const INVALID_KEYS: Array<[name: string, key: unknown]> = [
  ["empty", ""],
  ["15 characters", "a".repeat(15)],
  ["4097 characters", "a".repeat(4097)],
  ["colon", "abcdefgh:ijklmnop"],
  ["newline at the end", `${KEY}\n`],
  ["two lines", `${KEY}\n${OTHER_KEY}`],
  ["leading space", ` ${KEY}`],
  ["tab inside", `${KEY}\t${KEY}`],
  ["non-ASCII", `${KEY}\u00e9`],
  ["NUL", `${KEY}\u0000`],
  ["number", 1234567890123456],
  ["undefined", undefined],
];

describe("writeKeyFile invalid key", () => {
  for (const [name, key] of INVALID_KEYS) {
    it(`rejects ${name}, file unchanged`, async () => {
      await using directory = await makeTempDir();
      const path = join(directory.path, "api.key");
      await writeKeyFile(path, OTHER_KEY);

      await assert.rejects(writeKeyFile(path, key as string), TypeError);
      assert.equal(await readFile(path, "latin1"), `${OTHER_KEY}\n`);
      assert.deepEqual(await readdir(directory.path), ["api.key"]);
    });
  }

  it("names the path in the error", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");

    await assert.rejects(writeKeyFile(path, "short"), (error: Error) =>
      error.message.includes(path),
    );
  });

  it("creates neither file nor directory", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "keys", "api.key");

    await assert.rejects(writeKeyFile(path, "short"), TypeError);
    assert.deepEqual(await readdir(directory.path), []);
  });

  it("rejects an empty path", async () => {
    await assert.rejects(writeKeyFile("", KEY), TypeError);
  });
});

describe("writeKeyFile failure", () => {
  it("leaves no temporary file when rename fails", async () => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    await mkdir(path);
    await writeFile(join(path, "inside"), "x");

    await assert.rejects(writeKeyFile(path, KEY));
    assert.deepEqual(await readdir(directory.path), ["api.key"]);
    assert.deepEqual(await readdir(path), ["inside"]);
  });

  it("fails when the parent is a file", async () => {
    await using directory = await makeTempDir();
    await writeFile(join(directory.path, "file"), "x");
    const path = join(directory.path, "file", "api.key");

    await assert.rejects(writeKeyFile(path, KEY), {
      code: /^(ENOTDIR|EEXIST)$/,
    });
    assert.equal(await readFile(join(directory.path, "file"), "latin1"), "x");
  });
});

// Reads the key file in a tight loop until the stop file appears, then prints
// the number of reads and of distinct keys seen, and up to 10 contents that
// were not one whole key.
const READER_SCRIPT = `
const fs = require("node:fs");
const [path, stopPath] = process.argv.slice(1);
const whole = /^[A-Za-z0-9+/]{43}=\\n$/;
const seen = new Set();
const bad = [];
let reads = 0;
fs.writeSync(1, "ready\\n");
while (!fs.existsSync(stopPath)) {
  for (let index = 0; index < 20; index++) {
    let content;
    try {
      content = fs.readFileSync(path, "latin1");
    } catch (error) {
      content = "read failed: " + error.code;
    }
    reads++;
    if (whole.test(content)) {
      seen.add(content);
    } else if (bad.length < 10) {
      bad.push(content);
    }
  }
}
fs.writeSync(1, JSON.stringify({ reads, bad, distinct: seen.size }) + "\\n");
`;

interface ReaderReport {
  reads: number;
  bad: string[];
  distinct: number;
}

describe("writeKeyFile atomicity", () => {
  it("reader never sees partial content", async (t: TestContext) => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    const stopPath = join(directory.path, "stop");
    await writeKeyFile(path, generateKey());

    const reader = spawn(
      process.execPath,
      ["-e", READER_SCRIPT, path, stopPath],
      { stdio: ["ignore", "pipe", "inherit"], timeout: 120_000 },
    );
    let output = "";
    reader.stdout.setEncoding("utf8");
    const closed = once(reader, "close");
    // Stops the reader should the test fail before it writes the stop file.
    t.after(() => {
      if (reader.exitCode === null) reader.kill();
    });
    await new Promise<void>((resolve, reject) => {
      reader.stdout.on("data", (chunk: string) => {
        output += chunk;
        if (output.startsWith("ready\n")) resolve();
      });
      reader.on("exit", (code) =>
        reject(new Error(`reader exited with code ${code} before reading`)),
      );
    });

    for (let index = 0; index < 300; index++) {
      await writeKeyFile(path, generateKey());
    }
    await writeFile(stopPath, "");
    const [code] = await closed;

    assert.equal(code, 0);
    const report = JSON.parse(output.slice("ready\n".length)) as ReaderReport;
    assert.deepEqual(report.bad, []);
    // More than one key seen proves the reads overlapped the rewrites.
    assert.ok(report.distinct > 1, `reader saw ${report.distinct} key(s)`);
  });
});

type Reader = (path: string) => Promise<Buffer>;

const READERS: Array<[name: string, read: Reader]> = [
  ["readKeyFileSync", async (path) => readKeyFileSync(path)],
  ["readKeyFile", readKeyFile],
];

const SIZES: Array<[name: string, size: number, expected: number]> = [
  ["a key", 45, 45],
  ["an empty file", 0, 0],
  ["the maximum size", MAX_KEY_FILE_SIZE, MAX_KEY_FILE_SIZE],
  ["one byte over", MAX_KEY_FILE_SIZE + 1, MAX_KEY_FILE_SIZE + 1],
  ["two bytes over", MAX_KEY_FILE_SIZE + 2, MAX_KEY_FILE_SIZE + 1],
  ["1 MiB", 1024 * 1024, MAX_KEY_FILE_SIZE + 1],
];

for (const [readerName, read] of READERS) {
  describe(readerName, () => {
    for (const [name, size, expected] of SIZES) {
      it(`reads ${name}`, async () => {
        await using directory = await makeTempDir();
        const path = join(directory.path, "api.key");
        const content = Buffer.alloc(size);
        for (let index = 0; index < size; index++) {
          content[index] = 0x41 + (index % 26);
        }
        await writeFile(path, content);
        const result = await read(path);

        assert.equal(result.length, expected);
        assert.deepEqual(result, content.subarray(0, expected));
      });
    }

    it("capped content is no valid key", async () => {
      await using directory = await makeTempDir();
      const path = join(directory.path, "api.key");
      await writeFile(path, `${KEY}\n`.padEnd(1024 * 1024, " "));

      assert.equal(parseKeyFileContent(await read(path)).ok, false);
    });

    it("rejects a missing file", async () => {
      await using directory = await makeTempDir();

      await assert.rejects(read(join(directory.path, "missing")), {
        code: "ENOENT",
      });
    });

    it("rejects a directory", async () => {
      await using directory = await makeTempDir();

      await assert.rejects(read(directory.path), { code: "EISDIR" });
    });

    it("follows a symlink", async () => {
      await using directory = await makeTempDir();
      const target = join(directory.path, "target");
      const path = join(directory.path, "api.key");
      await writeFile(target, `${KEY}\n`);
      await symlink(target, path);

      assert.equal((await read(path)).toString("latin1"), `${KEY}\n`);
    });
  });
}

// Calls both readers on a FIFO in a child process, so that a reader which
// waits for a writer times out there instead of hanging the test run.
const FIFO_SCRIPT = `
const [moduleUrl, path] = process.argv.slice(1);
const { readKeyFile, readKeyFileSync } = await import(moduleUrl);
const codes = [];
for (const read of [async (path) => readKeyFileSync(path), readKeyFile]) {
  try {
    await read(path);
    codes.push("read");
  } catch (error) {
    codes.push(error.code);
  }
}
console.log(codes.join(" "));
`;

describe("key file readers", () => {
  it("reject a FIFO without waiting", async (t: TestContext) => {
    await using directory = await makeTempDir();
    const path = join(directory.path, "api.key");
    try {
      execFileSync("mkfifo", [path], { stdio: "ignore" });
    } catch {
      t.skip("needs mkfifo");
      return;
    }
    const moduleUrl = new URL("../src/key-file.js", import.meta.url).href;
    const result = spawnSync(
      process.execPath,
      ["--input-type=module", "-e", FIFO_SCRIPT, moduleUrl, path],
      { encoding: "utf8", timeout: 20_000 },
    );

    assert.equal(result.signal, null, "reader timed out on the FIFO");
    assert.equal(result.stdout, "EINVAL EINVAL\n");
  });
});

const MODES: Array<[mode: number, expected: RegExp | undefined]> = [
  [0o644, /mode 0644, so other users can read it/],
  [0o604, /mode 0604, so other users can read it/],
  [0o602, /mode 0602, so other users can write it/],
  [0o606, /mode 0606, so other users can write it/],
  [0o666, /mode 0666, so other users can write it/],
  [0o100644, /mode 0644, so other users can read it/],
  [0o640, undefined],
  [0o600, undefined],
  [0o660, undefined],
  [0o400, undefined],
  [0o100640, undefined],
];

describe("describeLoosePermissions", () => {
  const path = "/srv/app/api.key";

  for (const [mode, expected] of MODES) {
    const modeText = mode.toString(8).padStart(4, "0");

    it(`mode ${modeText}`, () => {
      const message = describeLoosePermissions(path, mode);

      if (expected === undefined) {
        assert.equal(message, undefined);
      } else {
        assert.match(message ?? "", expected);
        assert.match(message ?? "", /chmod 640 "\/srv\/app\/api\.key"/);
        assert.match(message ?? "", /^key file "\/srv\/app\/api\.key"/);
      }
    });
  }
});

describe("writeKeyFile unusable parent", () => {
  it("fails under a regular file", async () => {
    await using directory = await makeTempDir();
    const file = join(directory.path, "file");
    await writeFile(file, "x");

    await assert.rejects(writeKeyFile(join(file, "sub", "api.key"), KEY), {
      code: "ENOTDIR",
    });
  });

  it("fails under /proc without hanging", async (t: TestContext) => {
    // mkdir with `recursive` never returns for such a path on Node.js 20, so
    // a regression shows as the test runner's timeout.
    try {
      await stat("/proc/self");
    } catch {
      t.skip("no /proc on this system");
      return;
    }

    const path = "/proc/keyfile-auth-missing/sub/api.key";
    const outcome = await Promise.race([
      writeKeyFile(path, KEY).then(
        () => "written",
        (error: NodeJS.ErrnoException) => error.code,
      ),
      new Promise((resolve) => setTimeout(resolve, 5000, "timed out")),
    ]);
    assert.notEqual(outcome, "timed out");
    assert.notEqual(outcome, "written");
  });
});
