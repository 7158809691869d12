// A guard that is never closed must not keep the process alive: its watch
// and its timers are unreferenced.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDir } from "./helpers.js";

const EXIT_SCRIPT = fileURLToPath(
  new URL("./fixtures/exit-process.js", import.meta.url),
);

/**
 * Time the child has to start and exit, in ms. Node starts in well under a
 * second, so this leaves a wide margin on a busy machine.
 */
const EXIT_TIMEOUT_MS = 10_000;

/** Result of a child process that ran to its end or was killed. */
interface ExitResult {
  code: number | null;
  /** Whether the child was killed after `EXIT_TIMEOUT_MS`. */
  killed: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `exit-process.js` with `args` and waits until it exits. */
async function runExitProcess(args: string[]): Promise<ExitResult> {
  const child = spawn(process.execPath, [EXIT_SCRIPT, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => (stdout += chunk));
  child.stderr.on("data", (chunk: string) => (stderr += chunk));

  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, EXIT_TIMEOUT_MS);
  const [code] = (await once(child, "close")) as [number | null];
  clearTimeout(timer);
  return { code, killed, stdout, stderr };
}

const MODES = ["defaults", "server closed", "poll only", "change pending"];

for (const mode of MODES) {
  test(`process exits: ${mode}`, async () => {
    await using directory = await makeTempDir();
    const keyPath = join(directory.path, "api.key");

    const result = await runExitProcess([mode, keyPath]);

    assert.equal(result.killed, false, "still running after the timeout");
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "ready\n");
  });
}
