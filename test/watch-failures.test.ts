// The watcher when file system events do not arrive: polling, a replaced
// directory, a watch that cannot be set up, and a closed guard.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { watch } from "node:fs";
import { chmod } from "node:fs/promises";
import { setImmediate, setTimeout as sleep } from "node:timers/promises";
import { generateKey, type RotateEvent } from "../src/index.js";
import { fingerprintOf, waitForEvent } from "./helpers.js";
import {
  EVENT_TIMEOUT_MS,
  plainLayout,
  sh,
  startWatchedGuard,
  statusFor,
  type Layout,
  type Warning,
  type WatchedGuard,
} from "./fixtures/watched-guard.js";

/**
 * Poll interval of the tests that tell a poll from an event, in ms. A change
 * made just after one poll is seen through an event long before the next.
 */
const SLOW_POLL_MS = 1000;

/** Time in ms during which a closed guard must not react to changes. */
const SETTLE_MS = 600;

/**
 * Writes `$KEY` to key.tmp, gives that file to `$OWNER` when it is set, and
 * renames it over `key`.
 */
const MOVE_KEY = [
  `printf '%s\\n' "$KEY" > key.tmp`,
  '{ [ -z "$OWNER" ] || chown "$OWNER" key.tmp; }',
  "mv key.tmp key",
].join(" && ");

/** Replaces the key with `key` through `script` and waits for 'rotate'. */
async function rotateBy(
  guard: WatchedGuard,
  script: string,
  key: string,
): Promise<RotateEvent> {
  const rotated = waitForEvent<RotateEvent>(
    guard.guard,
    "rotate",
    EVENT_TIMEOUT_MS,
  );
  await sh(script, guard.directory, { KEY: key });
  return rotated;
}

/** Returns the first warning with `code`, waiting for it if needed. */
async function warningWithCode(
  guard: WatchedGuard,
  code: string,
): Promise<Warning> {
  const deadline = performance.now() + EVENT_TIMEOUT_MS;
  for (;;) {
    const found = guard.warnings.find((warning) => warning.code === code);
    if (found !== undefined) {
      return found;
    }
    const left = Math.max(1, Math.ceil(deadline - performance.now()));
    await waitForEvent(guard.guard, "warning", left);
  }
}

describe("polling", () => {
  const CHANGES = [
    { name: "rename over key", script: MOVE_KEY },
    { name: "write in place", script: `printf '%s\\n' "$KEY" > key` },
  ];
  for (const { name, script } of CHANGES) {
    test(`poll mode sees ${name}`, async (t: TestContext) => {
      await using guard = await startWatchedGuard({
        guard: { watch: "poll", pollIntervalMs: 200 },
      });

      let oldKey = guard.key;
      for (const round of [1, 2]) {
        const newKey = generateKey();
        const startedAt = performance.now();
        const event = await rotateBy(guard, script, newKey);
        const pickupMs = Math.round(performance.now() - startedAt);
        t.diagnostic(
          `round ${round}: 'rotate' ${pickupMs} ms after the change began`,
        );

        assert.equal(event.reason, "poll");
        assert.equal(event.fingerprint, fingerprintOf(newKey));
        assert.equal(await statusFor(guard.url, newKey), 200);
        assert.equal(await statusFor(guard.url, oldKey), 401);
        oldKey = newKey;
      }
    });
  }

  test("replaced directory re-arms watch", async () => {
    await using guard = await startWatchedGuard({
      guard: { pollIntervalMs: SLOW_POLL_MS },
    });

    const missing = waitForEvent<Warning>(
      guard.guard,
      "warning",
      EVENT_TIMEOUT_MS,
    );
    await sh("mv keys keys.old", guard.root);
    assert.equal((await missing).code, "KEY_FILE_UNREADABLE");

    // The old watch follows keys.old, so only a poll can see the new folder.
    const firstKey = generateKey();
    const polled = waitForEvent<RotateEvent>(
      guard.guard,
      "rotate",
      EVENT_TIMEOUT_MS,
    );
    await sh(
      `mkdir keys.new && printf '%s\\n' "$KEY" > keys.new/key && mv keys.new keys`,
      guard.root,
      { KEY: firstKey },
    );
    const pollEvent = await polled;
    assert.equal(pollEvent.reason, "poll");
    assert.equal(pollEvent.fingerprint, fingerprintOf(firstKey));

    // The poll re-armed the watch before it read the file.
    const secondKey = generateKey();
    const watchEvent = await rotateBy(guard, MOVE_KEY, secondKey);
    assert.equal(watchEvent.reason, "watch");
    assert.equal(watchEvent.fingerprint, fingerprintOf(secondKey));
    assert.equal(await statusFor(guard.url, secondKey), 200);
    assert.equal(await statusFor(guard.url, firstKey), 401);
    assert.equal(await statusFor(guard.url, guard.key), 401);
    assert.equal(guard.warnings.length, 1);
  });
});

/**
 * Key file in a directory with search but no read permission: the file can
 * be read, but inotify needs read permission on the directory. Tests using
 * it run the guard in a child process, as user nobody when the tests run as
 * root, because root can read any directory.
 */
const unreadableDirectoryLayout: Layout = async (directory, key) => {
  await plainLayout(directory, key);
  await chmod(directory, 0o311);
};

describe("watch failure", () => {
  test("unreadable directory: WATCH_FAILED", async () => {
    await using guard = await startWatchedGuard({
      inChild: true,
      guard: { pollIntervalMs: SLOW_POLL_MS },
      layout: unreadableDirectoryLayout,
    });
    try {
      const warning = await warningWithCode(guard, "WATCH_FAILED");
      assert.match(warning.message, /cannot watch directory/);
      assert.ok(
        warning.message.includes(guard.directory),
        `the message names the directory: ${warning.message}`,
      );
      assert.match(warning.message, /seen only at the next poll/);

      const firstKey = generateKey();
      const pollEvent = await rotateBy(guard, MOVE_KEY, firstKey);
      assert.equal(pollEvent.reason, "poll");
      assert.equal(pollEvent.fingerprint, fingerprintOf(firstKey));

      // The next poll, about SLOW_POLL_MS after the last one, arms the
      // watch. The change comes after it and well before the poll after.
      await chmod(guard.directory, 0o755);
      await sleep(SLOW_POLL_MS * 1.4);
      const secondKey = generateKey();
      const watchEvent = await rotateBy(guard, MOVE_KEY, secondKey);
      assert.equal(watchEvent.reason, "watch");
      assert.equal(watchEvent.fingerprint, fingerprintOf(secondKey));

      const watchFailures = guard.warnings.filter(
        (warning) => warning.code === "WATCH_FAILED",
      );
      assert.equal(watchFailures.length, 1);
      assert.equal(await statusFor(guard.url, secondKey), 200);
      assert.equal(await statusFor(guard.url, firstKey), 401);
    } finally {
      // Without read permission a non-root owner cannot remove the folder.
      await chmod(guard.directory, 0o755);
    }
  });

  test("WATCH_FAILED without polling", async () => {
    await using guard = await startWatchedGuard({
      inChild: true,
      guard: { pollIntervalMs: 0 },
      layout: unreadableDirectoryLayout,
    });
    try {
      const warning = await warningWithCode(guard, "WATCH_FAILED");
      assert.doesNotMatch(warning.message, /next poll/);
      assert.match(warning.message, /when a request presents the new key/);

      // The fallback that the warning names works: the new key is accepted.
      const newKey = generateKey();
      await sh(MOVE_KEY, guard.directory, { KEY: newKey });
      const rotated = waitForEvent<RotateEvent>(
        guard.guard,
        "rotate",
        EVENT_TIMEOUT_MS,
      );
      assert.equal(await statusFor(guard.url, newKey), 200);
      assert.equal((await rotated).reason, "request");
    } finally {
      await chmod(guard.directory, 0o755);
    }
  });
});

describe("close", () => {
  test("no rotate after close", async () => {
    await using guard = await startWatchedGuard({
      guard: { pollIntervalMs: 100 },
    });
    await guard.auth?.close();
    await guard.auth?.close();

    await sh(MOVE_KEY, guard.directory, { KEY: generateKey() });
    await sh(`printf '%s\\n' "$KEY" > key`, guard.directory, {
      KEY: generateKey(),
    });
    await sh("rm key", guard.directory);
    await sleep(SETTLE_MS);

    assert.deepEqual(guard.rotations, []);
    assert.deepEqual(guard.warnings, []);
    assert.equal(await statusFor(guard.url, guard.key), 200);
  });

  test("close drops pending change", async () => {
    await using guard = await startWatchedGuard({
      guard: { pollIntervalMs: 0 },
    });

    // libuv hands one inotify event to every watch on the directory in the
    // same loop turn, so once this watch has seen the change, the guard's
    // debounce timer is running.
    const probe = watch(guard.directory);
    try {
      const seen = waitForEvent(probe, "change", EVENT_TIMEOUT_MS);
      await sh("rm key", guard.directory);
      await seen;
    } finally {
      probe.close();
    }
    await setImmediate();
    await guard.auth?.close();
    await sleep(SETTLE_MS);

    // A check that ran anyway would report the missing file.
    assert.deepEqual(guard.warnings, []);
  });
});
