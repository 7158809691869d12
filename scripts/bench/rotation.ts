import http from "node:http";
import { once } from "node:events";
import { watch } from "node:fs";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { AddressInfo } from "node:net";
import {
  createKeyAuth,
  generateKey,
  type KeyAuth,
  type KeyAuthOptions,
  type RotateEvent,
} from "../../src/index.js";
import { fingerprintKey } from "../../src/key.js";
import { basicAuthorization } from "./capture.js";
import { makeBenchDirectory } from "./fixture.js";
import {
  createLayout,
  type KeyFileLayout,
  type LayoutKind,
} from "./rotation-layouts.js";
import { percentile } from "./statistics.js";
import { formatMs, type Row } from "./table.js";

/** How long the rotation benchmark runs. */
export interface RotationSettings {
  /** Rotations measured for each way of replacing the file. */
  rotations: number;
  /** Poll interval of the polling-only guard, in ms. */
  pollIntervalMs: number;
}

/** Maximum p99 pickup time with file system events, in ms. */
const EVENT_TARGET_MS = 250;

/** Time allowed past the poll interval when polling only, in ms. */
const POLL_MARGIN_MS = 250;

/** Time after which a rotation counts as missed, in ms. */
const MISSED_AFTER_MS = 5000;

/** Pause after a pickup so the watcher's follow-up reads end first, in ms. */
const SETTLE_MS = 70;

const LAYOUTS: readonly LayoutKind[] = ["in-place", "rename", "kubernetes"];

interface Pickup {
  /** Name of the way the file was replaced. */
  name: string;
  /** Time from the complete file to the `'rotate'` event, in ms. */
  latencies: number[];
  /** Time from the complete file to the first raw `fs.watch` event, in ms. */
  rawEvents: number[];
  missed: number;
}

/**
 * Measures how long the guard takes to pick up a new key file with no
 * request in between, for each way of replacing it and with polling only.
 * Then checks read-your-writes: the first request with the new key, sent
 * right after the file is complete, must be accepted.
 */
export async function benchRotation(
  settings: RotationSettings,
): Promise<Row[]> {
  const rows: Row[] = [];

  for (const kind of LAYOUTS) {
    // Polling is off, so only file system events can deliver the change.
    const pickup = await measurePickup(
      kind,
      { watch: true, pollIntervalMs: 0 },
      settings.rotations,
    );
    const p99 = p99Of(pickup.latencies);
    rows.push({
      measurement: `Rotation pickup, ${pickup.name}, n=${settings.rotations}`,
      value: describePickup(pickup.latencies, pickup.missed),
      baseline: `raw fs.watch event: ${describeLatencies(pickup.rawEvents)}`,
      ratio: "",
      target: `p99 < ${EVENT_TARGET_MS} ms`,
      met: pickup.missed === 0 && p99 < EVENT_TARGET_MS,
    });
  }

  const interval = settings.pollIntervalMs;
  const polled = await measurePickup(
    "rename",
    { watch: "poll", pollIntervalMs: interval },
    settings.rotations,
  );
  const polledP99 = p99Of(polled.latencies);
  rows.push({
    measurement: `Rotation pickup, polling only, n=${settings.rotations}`,
    value: describePickup(polled.latencies, polled.missed),
    baseline: `poll interval: ${interval} ms`,
    ratio: "",
    target: `p99 < ${interval + POLL_MARGIN_MS} ms`,
    met: polled.missed === 0 && polledP99 < interval + POLL_MARGIN_MS,
  });

  let accepted = 0;
  let byRequest = 0;
  let total = 0;
  for (const kind of LAYOUTS) {
    const result = await measureReadYourWrites(kind, settings.rotations);
    accepted += result.accepted;
    byRequest += result.byRequest;
    total += result.total;
  }
  rows.push({
    measurement: "Read-your-writes, first request with the new key",
    value: `${accepted}/${total} accepted, ${byRequest} by its own stat`,
    baseline: "",
    ratio: "",
    target: "all accepted",
    met: accepted === total,
  });
  return rows;
}

/** Returns the 99th percentile, or infinity when every rotation was missed. */
function p99Of(latencies: readonly number[]): number {
  return latencies.length === 0
    ? Infinity
    : percentile(sorted(latencies), 0.99);
}

function sorted(values: readonly number[]): Float64Array {
  return Float64Array.from(values).sort();
}

function describeLatencies(values: readonly number[]): string {
  if (values.length === 0) {
    return "none";
  }
  const order = sorted(values);
  return `p50 ${formatMs(percentile(order, 0.5))}, p99 ${formatMs(percentile(order, 0.99))}`;
}

function describePickup(latencies: readonly number[], missed: number): string {
  const text = describeLatencies(latencies);
  return missed === 0 ? text : `${text}, ${missed} missed`;
}

/** Creates a layout and a guard on it in a new temporary folder. */
async function setUp(
  kind: LayoutKind,
  options: Omit<KeyAuthOptions, "keyPath">,
): Promise<{ directory: string; layout: KeyFileLayout; auth: KeyAuth }> {
  const directory = await makeBenchDirectory();
  const layout = createLayout(kind, directory, generateKey());
  const auth = await createKeyAuth({
    keyPath: layout.keyPath,
    init: "load",
    ...options,
  });
  auth.on("warning", (warning) => {
    console.error(
      `rotation benchmark warning ${warning.code}: ${warning.message}`,
    );
  });
  return { directory, layout, auth };
}

/**
 * Resolves with the time of the first `'rotate'` event for the key with
 * `fingerprint`, and its reason, or with `undefined` after `timeoutMs`.
 */
function waitForRotation(
  auth: KeyAuth,
  fingerprint: string,
  timeoutMs: number,
): Promise<{ at: number; reason: string } | undefined> {
  return new Promise((resolve) => {
    const onRotate = (event: RotateEvent) => {
      if (event.fingerprint !== fingerprint) {
        return;
      }
      const at = performance.now();
      clearTimeout(timer);
      auth.off("rotate", onRotate);
      resolve({ at, reason: event.reason });
    };
    const timer = setTimeout(() => {
      auth.off("rotate", onRotate);
      resolve(undefined);
    }, timeoutMs);
    auth.on("rotate", onRotate);
  });
}

async function measurePickup(
  kind: LayoutKind,
  options: Omit<KeyAuthOptions, "keyPath">,
  rotations: number,
): Promise<Pickup> {
  const { directory, layout, auth } = await setUp(kind, options);
  const polling = options.watch === "poll";
  const interval = options.pollIntervalMs ?? 0;
  const pickup: Pickup = {
    name: layout.name,
    latencies: [],
    rawEvents: [],
    missed: 0,
  };

  // An independent watch on the same folder shows when the operating system
  // reports the change, which separates the guard's own delay from it.
  let completeAt: number | undefined;
  let rawEventAt: number | undefined;
  const rawWatcher = watch(directory, () => {
    if (completeAt !== undefined && rawEventAt === undefined) {
      rawEventAt = performance.now();
    }
  });

  try {
    for (let rotation = 0; rotation < rotations; rotation++) {
      const key = generateKey();
      const picked = waitForRotation(
        auth,
        fingerprintKey(key),
        interval + MISSED_AFTER_MS,
      );
      rawEventAt = undefined;
      layout.replace(key);
      completeAt = performance.now();

      const event = await picked;
      if (event === undefined) {
        pickup.missed++;
      } else {
        pickup.latencies.push(event.at - completeAt);
      }
      if (rawEventAt !== undefined && !polling) {
        pickup.rawEvents.push(rawEventAt - completeAt);
      }
      completeAt = undefined;

      layout.cleanUp();
      // A random pause moves each rotation to another point of the poll
      // cycle, so polling latencies spread over the whole interval.
      await sleep(SETTLE_MS + Math.random() * (polling ? interval : 50));
    }
  } finally {
    rawWatcher.close();
    await auth.close();
    await rm(directory, { recursive: true, force: true });
  }
  return pickup;
}

async function measureReadYourWrites(
  kind: LayoutKind,
  rotations: number,
): Promise<{ accepted: number; byRequest: number; total: number }> {
  const { directory, layout, auth } = await setUp(kind, {});
  let byRequest = 0;
  auth.on("rotate", (event) => {
    if (event.reason === "request") {
      byRequest++;
    }
  });
  const server = http.createServer((req, res) => {
    if (!auth.check(req, res)) return;
    res.end("ok\n");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  let accepted = 0;
  try {
    for (let rotation = 0; rotation < rotations; rotation++) {
      const key = generateKey();
      layout.replace(key);
      const status = await requestStatus(port, basicAuthorization(key));
      if (status === 200) {
        accepted++;
      }

      await sleep(SETTLE_MS);
      layout.cleanUp();
      await sleep(SETTLE_MS);
    }
  } finally {
    server.closeAllConnections();
    server.close();
    await auth.close();
    await rm(directory, { recursive: true, force: true });
  }
  return { accepted, byRequest, total: rotations };
}

function requestStatus(port: number, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: "/",
        agent: false,
        headers: { Authorization: authorization },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}
