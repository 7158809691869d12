import type { IncomingMessage } from "node:http";
import { generateKey } from "../../src/index.js";
import {
  basicAuthTsscmp,
  expressBasicAuth,
  naive,
  type RequestCheck,
} from "./baselines.js";
import {
  basicAuthorization,
  captureRequests,
  malformedAuthorization,
} from "./capture.js";
import { createKeyFixture } from "./fixture.js";
import { median } from "./statistics.js";
import { formatOps, formatRatio, type Row } from "./table.js";

/** How long the decision benchmark runs. */
export interface DecisionSettings {
  /** Measured rounds, after one warmup round. */
  rounds: number;
  /** Duration of one contender's turn in a round, in ms. */
  roundMs: number;
}

interface Contender {
  name: string;
  check: RequestCheck;
}

interface Case {
  name: string;
  authorization: string;
  expected: boolean;
  /** Minimum ops/s relative to basic-auth + tsscmp. */
  minimumOverBasicAuth: number;
  /** Maximum time relative to the naive check, or undefined for none. */
  maximumTimeOverNaive: number | undefined;
}

/** Distinct request objects a case cycles through; a power of two. */
const POOL_SIZE = 16;

/** Calls between two reads of the clock. */
const BATCH = 1000;

/** Keeps the results of the measured calls alive, so none is optimized out. */
let sink = 0;

/**
 * Measures the operations per second of one decision by keyfile-auth's
 * `isAuthenticated` and by three baselines, on real requests parsed by
 * `node:http`, for a valid key, a wrong key of the same length and a
 * malformed header. Contenders take turns within each round so that drift of
 * the machine's speed affects them alike, and the median round counts.
 */
export async function benchDecision(
  settings: DecisionSettings,
): Promise<Row[]> {
  const key = generateKey();
  let wrongKey = generateKey();
  while (wrongKey === key) {
    wrongKey = generateKey();
  }
  await using fixture = await createKeyFixture(key);

  const contenders: Contender[] = [
    { name: "keyfile-auth", check: (req) => fixture.auth.isAuthenticated(req) },
    { name: "basic-auth + tsscmp", check: basicAuthTsscmp(key) },
    { name: "express-basic-auth", check: expressBasicAuth(key) },
    { name: "naive", check: naive(key) },
  ];
  const cases: Case[] = [
    {
      name: "valid key",
      authorization: basicAuthorization(key),
      expected: true,
      minimumOverBasicAuth: 2,
      maximumTimeOverNaive: 1.5,
    },
    {
      name: "wrong key, same length",
      authorization: basicAuthorization(wrongKey),
      expected: false,
      minimumOverBasicAuth: 2,
      maximumTimeOverNaive: undefined,
    },
    {
      name: "malformed header",
      authorization: malformedAuthorization(basicAuthorization(key)),
      expected: false,
      minimumOverBasicAuth: 1,
      maximumTimeOverNaive: undefined,
    },
  ];

  const rows: Row[] = [];
  for (const testCase of cases) {
    const pool = await captureRequests(
      Array.from({ length: POOL_SIZE }, () => testCase.authorization),
    );
    for (const contender of contenders) {
      verify(contender, pool, testCase);
    }
    const ops = measureContenders(contenders, pool, settings);
    rows.push(...caseRows(testCase, contenders, ops));
  }
  return rows;
}

function verify(
  contender: Contender,
  pool: readonly IncomingMessage[],
  testCase: Case,
): void {
  for (const req of pool) {
    if (contender.check(req) !== testCase.expected) {
      throw new Error(
        `${contender.name} decided the ${testCase.name} case wrongly`,
      );
    }
  }
}

/** Returns the median ops/s of each contender, in the order given. */
function measureContenders(
  contenders: readonly Contender[],
  pool: readonly IncomingMessage[],
  settings: DecisionSettings,
): number[] {
  const samples: number[][] = contenders.map(() => []);

  for (let round = -1; round < settings.rounds; round++) {
    for (let turn = 0; turn < contenders.length; turn++) {
      // Each round starts with another contender, so none always runs first.
      const index = (turn + Math.max(round, 0)) % contenders.length;
      const ops = measureOps(contenders[index]!.check, pool, settings.roundMs);
      if (round >= 0) {
        samples[index]!.push(ops);
      }
    }
  }
  return samples.map(median);
}

function measureOps(
  check: RequestCheck,
  pool: readonly IncomingMessage[],
  durationMs: number,
): number {
  const mask = pool.length - 1;
  let calls = 0;
  let accepted = 0;
  let elapsed = 0;
  const start = performance.now();

  do {
    for (let index = 0; index < BATCH; index++) {
      if (check(pool[index & mask]!)) {
        accepted++;
      }
    }
    calls += BATCH;
    elapsed = performance.now() - start;
  } while (elapsed < durationMs);

  sink += accepted;
  return calls / (elapsed / 1000);
}

function caseRows(
  testCase: Case,
  contenders: readonly Contender[],
  ops: readonly number[],
): Row[] {
  const [ours, basicAuth, express, floor] = ops as [
    number,
    number,
    number,
    number,
  ];
  const label = `Decision, ${testCase.name}`;
  const overBasicAuth = ours / basicAuth;
  const timeOverNaive = floor / ours;
  const maximum = testCase.maximumTimeOverNaive;

  return [
    {
      measurement: label,
      value: formatOps(ours),
      baseline: `${contenders[1]!.name}: ${formatOps(basicAuth)}`,
      ratio: `${formatRatio(overBasicAuth)} ops/s`,
      target: `>= ${formatRatio(testCase.minimumOverBasicAuth)} ops/s`,
      met: overBasicAuth >= testCase.minimumOverBasicAuth,
    },
    {
      measurement: label,
      value: formatOps(ours),
      baseline: `${contenders[2]!.name}: ${formatOps(express)}`,
      ratio: `${formatRatio(ours / express)} ops/s`,
      target: "",
      met: undefined,
    },
    {
      measurement: label,
      value: formatOps(ours),
      baseline: `${contenders[3]!.name}: ${formatOps(floor)}`,
      ratio: `${formatRatio(timeOverNaive)} time`,
      target: maximum === undefined ? "" : `<= ${formatRatio(maximum)} time`,
      met: maximum === undefined ? undefined : timeOverNaive <= maximum,
    },
  ];
}
