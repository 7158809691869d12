// The watcher follows rewrites of the key file made by common tools. No
// request carries a new key before the 'rotate' event, so each pickup comes
// from the watcher and not from the read-your-writes check of requests.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { generateKey, type RotateEvent } from "../src/index.js";
import { fingerprintOf, waitForEvent } from "./helpers.js";
import {
  EVENT_TIMEOUT_MS,
  sh,
  startWatchedGuard,
  statusFor,
  type Layout,
  type Warning,
  type WatchedGuard,
  type WatchedGuardOptions,
} from "./fixtures/watched-guard.js";

const execFileAsync = promisify(execFile);

/**
 * Time given to the watcher to react to a change that must have no effect,
 * in ms: several debounce periods, stable reads and 100 ms polls.
 */
const SETTLE_MS = 600;

/** Writes `$KEY` and a newline to `key` in the current directory. */
const WRITE_KEY = `printf '%s\\n' "$KEY" > key`;

/** Waits for the next warning and checks its code. */
async function expectWarning(
  guard: WatchedGuard,
  code: string,
  change: () => Promise<void>,
): Promise<Warning> {
  const warned = waitForEvent<Warning>(
    guard.guard,
    "warning",
    EVENT_TIMEOUT_MS,
  );
  await change();
  const warning = await warned;
  assert.equal(warning.code, code, warning.message);
  return warning;
}

/** Kubernetes Secret volume: `key -> ..data/key`, `..data -> ..TIMESTAMP`. */
const secretVolumeLayout: Layout = async (directory, key) => {
  const version = "..2025_01_01_00_00_00.000000000";
  await mkdir(join(directory, version));
  await writeFile(join(directory, version, "key"), `${key}\n`, {
    mode: 0o640,
  });
  await symlink(version, join(directory, "..data"));
  await symlink(join("..data", "key"), join(directory, "key"));
};

let secretVersion = 0;

/** One way of replacing the key file, run in the key file's directory. */
interface Rotation {
  name: string;
  options?: WatchedGuardOptions;
  replace(guard: WatchedGuard, key: string): Promise<void>;
}

const ROTATIONS: Rotation[] = [
  {
    name: "printf in place",
    replace: (guard, key) => sh(WRITE_KEY, guard.directory, { KEY: key }),
  },
  {
    name: "cp over key",
    async replace(guard, key) {
      await writeFile(join(guard.root, "new.key"), `${key}\n`);
      await sh("cp ../new.key key", guard.directory);
    },
  },
  {
    name: "temporary file moved over key",
    replace: (guard, key) =>
      sh(`printf '%s\\n' "$KEY" > key.tmp && mv key.tmp key`, guard.directory, {
        KEY: key,
      }),
  },
  {
    name: "editor save",
    replace: (guard, key) =>
      sh(`mv key key~ && ${WRITE_KEY} && rm key~`, guard.directory, {
        KEY: key,
      }),
  },
  {
    name: "rm, pause, new file",
    async replace(guard, key) {
      await expectWarning(guard, "KEY_FILE_UNREADABLE", () =>
        sh("rm key", guard.directory),
      );
      await sh(WRITE_KEY, guard.directory, { KEY: key });
    },
  },
  {
    name: "Kubernetes ..data swap",
    options: { layout: secretVolumeLayout },
    replace: (guard, key) => {
      secretVersion++;
      // The kubelet writes a new timestamped directory, points ..data_tmp at
      // it and renames ..data_tmp over ..data. mv -T renames the symlink
      // itself instead of moving it into the directory ..data points to.
      const script = [
        "old=$(readlink ..data)",
        'mkdir "$VERSION"',
        `printf '%s\\n' "$KEY" > "$VERSION/key"`,
        'ln -s "$VERSION" ..data_tmp',
        "mv -T ..data_tmp ..data",
        'rm -rf "$old"',
      ].join(" && ");
      return sh(script, guard.directory, {
        KEY: key,
        VERSION: `..2025_01_01_00_00_00.00000000${secretVersion}`,
      });
    },
  },
  {
    name: "permission fix",
    // Runs the guard in a child process, as user nobody when the tests run
    // as root, because root can read a file whatever its mode.
    options: { inChild: true },
    async replace(guard, key) {
      const unreadable = [
        `printf '%s\\n' "$KEY" > key.new`,
        "chmod 000 key.new",
        '{ [ -z "$OWNER" ] || chown "$OWNER" key.new; }',
        "mv key.new key",
      ].join(" && ");
      const warning = await expectWarning(guard, "KEY_FILE_UNREADABLE", () =>
        sh(unreadable, guard.directory, { KEY: key }),
      );
      assert.match(warning.message, /permission denied/);
      await sh("chmod 640 key", guard.directory);
    },
  },
];

describe("rotation pickup", () => {
  for (const rotation of ROTATIONS) {
    test(rotation.name, async (t: TestContext) => {
      await using guard = await startWatchedGuard({
        ...rotation.options,
        guard: { pollIntervalMs: 0 },
      });

      let oldKey = guard.key;
      for (const round of [1, 2]) {
        const newKey = generateKey();
        const rotated = waitForEvent<RotateEvent>(
          guard.guard,
          "rotate",
          EVENT_TIMEOUT_MS,
        );
        await rotation.replace(guard, newKey);
        const changedAt = performance.now();
        const event = await rotated;
        const pickupMs = Math.round(performance.now() - changedAt);
        t.diagnostic(
          `round ${round}: 'rotate' ${pickupMs} ms after the change`,
        );

        assert.equal(event.reason, "watch");
        assert.equal(event.fingerprint, fingerprintOf(newKey));
        assert.equal(await statusFor(guard.url, newKey), 200);
        assert.equal(await statusFor(guard.url, oldKey), 401);
        oldKey = newKey;
      }
      assert.equal(guard.rotations.length, 2);
    });
  }
});

describe("watcher without a key change", () => {
  test("same content, no rotate", async () => {
    await using guard = await startWatchedGuard({
      guard: { pollIntervalMs: 100 },
    });
    const env = { KEY: guard.key };

    const rewrites = [
      WRITE_KEY,
      `printf '%s\\n' "$KEY" > key.tmp && mv key.tmp key`,
      `printf '%s\\r\\n' "$KEY" > key`,
      "touch key",
    ];
    for (const rewrite of rewrites) {
      await sh(rewrite, guard.directory, env);
      await sleep(SETTLE_MS / 2);
    }
    assert.deepEqual(guard.rotations, []);
    assert.deepEqual(guard.warnings, []);
    assert.equal(await statusFor(guard.url, guard.key), 200);

    const newKey = generateKey();
    const rotated = waitForEvent(guard.guard, "rotate", EVENT_TIMEOUT_MS);
    await sh(WRITE_KEY, guard.directory, { KEY: newKey });
    await rotated;
    assert.equal(guard.rotations.length, 1);
  });
});

const INVALID_CONTENTS = [
  { name: "empty file", content: "", problem: /is empty/ },
  {
    name: "partial key",
    content: "0123456789abcde\n",
    problem: /shorter than 16/,
  },
  {
    name: "key with colon",
    content: "0123456789:abcdefghij\n",
    problem: /contains ":"/,
  },
];

describe("invalid key file", () => {
  for (const { name, content, problem } of INVALID_CONTENTS) {
    test(`${name} keeps old key`, async () => {
      await using guard = await startWatchedGuard({
        guard: { pollIntervalMs: 100 },
      });
      const writeContent = () =>
        sh(
          `printf '%s' "$CONTENT" > key.tmp && mv key.tmp key`,
          guard.directory,
          {
            CONTENT: content,
          },
        );

      const warning = await expectWarning(
        guard,
        "KEY_FILE_INVALID",
        writeContent,
      );
      assert.match(warning.message, problem);
      assert.equal(await statusFor(guard.url, guard.key), 200);

      // Writing the same content again and several polls add no warning.
      await writeContent();
      await sleep(SETTLE_MS);
      assert.equal(await statusFor(guard.url, guard.key), 200);
      assert.deepEqual(guard.rotations, []);

      const newKey = generateKey();
      const rotated = waitForEvent(guard.guard, "rotate", EVENT_TIMEOUT_MS);
      await sh(WRITE_KEY, guard.directory, { KEY: newKey });
      await rotated;
      assert.equal(guard.warnings.length, 1);
      assert.equal(guard.rotations.length, 1);
      assert.equal(await statusFor(guard.url, newKey), 200);
      assert.equal(await statusFor(guard.url, guard.key), 401);
    });
  }

  test("distinct bad contents warn each", async () => {
    await using guard = await startWatchedGuard({
      guard: { pollIntervalMs: 100 },
    });
    for (const { content } of INVALID_CONTENTS) {
      await expectWarning(guard, "KEY_FILE_INVALID", () =>
        sh(
          `printf '%s' "$CONTENT" > key.tmp && mv key.tmp key`,
          guard.directory,
          {
            CONTENT: content,
          },
        ),
      );
    }
    assert.equal(guard.warnings.length, INVALID_CONTENTS.length);
    assert.equal(await statusFor(guard.url, guard.key), 200);
  });
});

describe("missing key file", () => {
  test("old key stays valid", async () => {
    await using guard = await startWatchedGuard({
      guard: { pollIntervalMs: 100 },
    });

    const warning = await expectWarning(guard, "KEY_FILE_UNREADABLE", () =>
      sh("rm key", guard.directory),
    );
    assert.match(warning.message, /not found/);
    assert.equal(await statusFor(guard.url, guard.key), 200);
    assert.equal(await statusFor(guard.url, generateKey()), 401);

    await sleep(SETTLE_MS);
    assert.equal(guard.warnings.length, 1);
    assert.equal(await statusFor(guard.url, guard.key), 200);

    const newKey = generateKey();
    const rotated = waitForEvent<RotateEvent>(
      guard.guard,
      "rotate",
      EVENT_TIMEOUT_MS,
    );
    await sh(WRITE_KEY, guard.directory, { KEY: newKey });
    const event = await rotated;
    assert.equal(event.fingerprint, fingerprintOf(newKey));
    assert.equal(await statusFor(guard.url, newKey), 200);
    assert.equal(await statusFor(guard.url, guard.key), 401);
  });
});

/**
 * Writes `first`, waits 5 ms, then writes `rest`, through one file
 * descriptor in another process, like a slow writer would.
 */
async function writeSlowly(
  path: string,
  first: string,
  rest: string,
): Promise<void> {
  // Atomics.wait sleeps the thread for exactly the pause, without timers.
  const script = `
    const fs = require("node:fs");
    const [path, first, rest] = process.argv.slice(1);
    const fd = fs.openSync(path, "w");
    fs.writeSync(fd, first);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    fs.writeSync(fd, rest);
    fs.closeSync(fd);
  `;
  await execFileAsync(process.execPath, ["-e", script, path, first, rest]);
}

describe("slow writer", () => {
  test("half key never valid", async () => {
    await using guard = await startWatchedGuard({
      guard: { pollIntervalMs: 0 },
    });

    const keys: string[] = [];
    const halves: string[] = [];
    for (let round = 0; round < 3; round++) {
      const key = generateKey();
      // 22 characters of base64: a valid key on its own.
      const half = key.slice(0, 22);
      keys.push(key);
      halves.push(half);

      const rotated = waitForEvent(guard.guard, "rotate", EVENT_TIMEOUT_MS);
      await writeSlowly(guard.keyPath, half, `${key.slice(22)}\n`);
      await rotated;
      assert.equal(await statusFor(guard.url, half), 401);
      assert.equal(await statusFor(guard.url, key), 200);
    }

    assert.deepEqual(
      guard.rotations.map((event) => event.fingerprint),
      keys.map(fingerprintOf),
    );
    assert.deepEqual(guard.warnings, []);
  });
});
