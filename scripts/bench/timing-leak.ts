import type { IncomingMessage } from "node:http";
import { randomBytes, randomInt } from "node:crypto";
import { naive, type RequestCheck } from "./baselines.js";
import { basicAuthorization, captureRequests } from "./capture.js";
import { createKeyFixture } from "./fixture.js";
import { leakStatistics, type LeakStatistics } from "./statistics.js";
import type { Row } from "./table.js";

/** How long the timing-leak test runs. */
export interface TimingLeakSettings {
  /** Timed calls of each check, both classes together. */
  measurements: number;
}

/** |t| above which a difference between the classes counts as detected. */
const THRESHOLD = 4.5;

/**
 * Length of the key in characters. A long key makes a comparison that stops
 * at the first differing character measurably faster on class (b), so the
 * naive baseline shows what a leak looks like to this test.
 */
const KEY_LENGTH = 1024;

/** Real requests the measured calls take turns on, whatever their class. */
const POOL_SIZE = 64;

/** Distinct keys of each class. */
const KEYS_PER_CLASS = 1024;

/** Maximum untimed calls before the measurements, so the code is optimized first. */
const WARMUP_CALLS = 50_000;

const HEX = "0123456789abcdef";

/** Authorization values of class (a), then of class (b). */
type ClassValues = readonly [readonly string[], readonly string[]];

/**
 * Runs a dudect-style test for a timing leak. `isAuthenticated` is timed
 * with `process.hrtime.bigint()` on two classes of wrong keys, chosen at
 * random for each call. Class (a) are keys that share all but their last
 * character with the real key. Class (b) are random keys of the same length
 * whose first character differs. Welch's t between the classes is computed
 * over all measurements and over those below several percentiles, and the
 * largest |t| is reported. The naive `===` check gets the same test to show
 * that the test detects a leak, and a run of `isAuthenticated` with near
 * misses in both classes shows the noise floor, the |t| that no difference
 * gives.
 */
export async function benchTimingLeak(
  settings: TimingLeakSettings,
): Promise<Row[]> {
  const key = randomHex(KEY_LENGTH);
  await using fixture = await createKeyFixture(key);
  const ours: RequestCheck = (req) => fixture.auth.isAuthenticated(req);

  const pool = await captureRequests(
    Array.from({ length: POOL_SIZE }, () => basicAuthorization(nearMiss(key))),
  );
  const nearMisses = keyValues(() => nearMiss(key));
  const classValues: ClassValues = [
    nearMisses,
    keyValues(() => randomKeyDifferingFirst(key)),
  ];
  const noiseValues: ClassValues = [nearMisses, keyValues(() => nearMiss(key))];

  const measurements = settings.measurements;
  const leak = measureLeak(ours, pool, classValues, measurements);
  const control = measureLeak(naive(key), pool, classValues, measurements);
  const noise = measureLeak(ours, pool, noiseValues, measurements);

  const calls = measurements.toLocaleString("en-US");
  const detected = control.maxAbsolute >= THRESHOLD;
  return [
    {
      measurement: `Timing leak, max |t| of crops, ${calls} calls`,
      value: leak.maxAbsolute.toFixed(2),
      baseline: `naive ===: ${control.maxAbsolute.toFixed(2)}`,
      ratio: "",
      target: `< ${THRESHOLD}, naive >= ${THRESHOLD}`,
      met: leak.maxAbsolute < THRESHOLD && detected,
    },
    {
      measurement: `Timing leak, noise floor (near misses only)`,
      value: noise.maxAbsolute.toFixed(2),
      baseline: "",
      ratio: "",
      target: "",
      met: undefined,
    },
  ];
}

function keyValues(makeKey: () => string): string[] {
  return Array.from({ length: KEYS_PER_CLASS }, () =>
    basicAuthorization(makeKey()),
  );
}

/**
 * Times `check` on `measurements` calls, each on a random request of `pool`
 * whose `Authorization` value is replaced by a random value of a random
 * class. The value is a fresh copy of the string every time. When each
 * class kept its own string objects, where those sat in memory changed the
 * time of a call by tens of nanoseconds and the classes differed by that
 * alone.
 */
function measureLeak(
  check: RequestCheck,
  pool: readonly IncomingMessage[],
  values: ClassValues,
  measurements: number,
): LeakStatistics {
  const valueIndexes = pool.map(authorizationIndex);
  const setAuthorization = (pick: number, value: string): void => {
    const req = pool[pick]!;
    req.rawHeaders[valueIndexes[pick]!] = value;
    req.headers.authorization = value;
  };

  const warmupCalls = Math.min(WARMUP_CALLS, measurements / 4);
  for (let call = 0; call < warmupCalls; call++) {
    const pick = call % pool.length;
    setAuthorization(
      pick,
      freshCopy(values[call & 1]![call % KEYS_PER_CLASS]!),
    );
    if (check(pool[pick]!)) {
      throw new Error("a wrong key was accepted");
    }
  }

  const random = new Uint32Array(randomBytes(8 * measurements).buffer);
  const classes = new Uint8Array(measurements);
  const times = new Float64Array(measurements);

  for (let index = 0; index < measurements; index++) {
    const pick = random[2 * index]! % pool.length;
    const choice = random[2 * index + 1]!;
    const group = choice & 1;
    classes[index] = group;
    setAuthorization(
      pick,
      freshCopy(values[group]![(choice >>> 1) % KEYS_PER_CLASS]!),
    );
    const req = pool[pick]!;

    const start = process.hrtime.bigint();
    const accepted = check(req);
    const end = process.hrtime.bigint();

    if (accepted) {
      throw new Error("a wrong key was accepted");
    }
    times[index] = Number(end - start);
  }
  return leakStatistics(times, classes);
}

/** Returns the index of the `Authorization` value in `req.rawHeaders`. */
function authorizationIndex(req: IncomingMessage): number {
  const index = req.rawHeaders.findIndex(
    (entry, position) =>
      position % 2 === 0 && entry.toLowerCase() === "authorization",
  );
  if (index < 0) {
    throw new Error("a captured request has no Authorization header");
  }
  return index + 1;
}

/**
 * Returns a new flat string with the characters of `value`, as `node:http`
 * creates one for each header value it parses.
 */
function freshCopy(value: string): string {
  return Buffer.from(value, "latin1").toString("latin1");
}

function randomHex(length: number): string {
  return randomBytes(Math.ceil(length / 2))
    .toString("hex")
    .slice(0, length);
}

/** Changes the last character of `key` to another hex digit. */
function nearMiss(key: string): string {
  const last = key.at(-1)!;
  const others = HEX.replace(last, "");
  return key.slice(0, -1) + others[randomInt(others.length)]!;
}

/** Returns a random hex key of `key`'s length that differs in its first character. */
function randomKeyDifferingFirst(key: string): string {
  const others = HEX.replace(key[0]!, "");
  return others[randomInt(others.length)]! + randomHex(key.length - 1);
}
