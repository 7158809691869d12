import { fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import type { HeapMode, HeapResult } from "./heap-child.js";
import type { Row } from "./table.js";

/** How long the heap benchmark runs. */
export interface HeapSettings {
  /** Malformed requests sent through `check`. */
  requests: number;
}

/** Maximum heap growth, in bytes. */
const MAXIMUM_GROWTH = 1024 * 1024;

const CHILD = fileURLToPath(new URL("./heap-child.js", import.meta.url));

/**
 * Measures the heap growth after `settings.requests` malformed requests
 * through `check`, each with a new `ServerResponse` on a re-used real
 * request, and the growth of the same loop sending the 401 by hand. Each
 * runs in its own process with `--expose-gc`, and the heap is measured
 * after full collections.
 */
export async function benchHeap(settings: HeapSettings): Promise<Row[]> {
  const guarded = await measureGrowth("guarded", settings.requests);
  const bare = await measureGrowth("bare", settings.requests);
  const calls = settings.requests.toLocaleString("en-US");

  return [
    {
      measurement: `Heap growth, ${calls} malformed requests`,
      value: formatKibibytes(guarded),
      baseline: `401 sent by hand: ${formatKibibytes(bare)}`,
      ratio: "",
      target: "< 1024 KiB",
      met: guarded < MAXIMUM_GROWTH,
    },
  ];
}

function formatKibibytes(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

async function measureGrowth(
  mode: HeapMode,
  requests: number,
): Promise<number> {
  const child = fork(CHILD, [mode, String(requests)], {
    execArgv: ["--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = once(child, "exit");
  const [result] = (await Promise.race([
    once(child, "message"),
    exited.then(() => {
      throw new Error(`heap benchmark "${mode}" exited without a result`);
    }),
  ])) as [HeapResult];
  await exited;
  return result.after - result.before;
}
