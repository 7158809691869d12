// Benchmarks of keyfile-auth, each figure beside its baseline from the same
// run: the cost of one decision, the overhead on a node:http server, the
// time to pick up a rotated key file, a timing-leak test and heap growth.
// Run it with `npm run bench`, or `npm run bench -- --quick` for a short
// smoke run. It prints one Markdown table and exits 0 whether or not the
// targets are met, because a benchmark reports and does not fail.
import { availableParallelism, cpus } from "node:os";
import { benchDecision, type DecisionSettings } from "./decision.js";
import { benchHeap, type HeapSettings } from "./heap.js";
import { benchRotation, type RotationSettings } from "./rotation.js";
import { benchServer, type ServerSettings } from "./server-overhead.js";
import { formatTable, type Row } from "./table.js";
import { benchTimingLeak, type TimingLeakSettings } from "./timing-leak.js";

interface Settings {
  decision: DecisionSettings;
  server: ServerSettings;
  rotation: RotationSettings;
  timingLeak: TimingLeakSettings;
  heap: HeapSettings;
}

/** The full run: a few minutes on a 2-core machine. */
const FULL: Settings = {
  decision: { rounds: 5, roundMs: 250 },
  server: {
    rounds: 3,
    durationSeconds: 3,
    warmupSeconds: 1,
    connections: 10,
  },
  rotation: { rotations: 50, pollIntervalMs: 200 },
  timingLeak: { measurements: 1_000_000 },
  heap: { requests: 1_000_000 },
};

/** The smoke run: about 20 seconds, with too few samples to trust. */
const QUICK: Settings = {
  decision: { rounds: 2, roundMs: 100 },
  server: {
    rounds: 1,
    durationSeconds: 0.75,
    warmupSeconds: 0.25,
    connections: 10,
  },
  rotation: { rotations: 5, pollIntervalMs: 100 },
  timingLeak: { measurements: 100_000 },
  heap: { requests: 100_000 },
};

const USAGE = `Usage: node dist/scripts/bench/index.js [--quick]

Measures keyfile-auth against its baselines and prints one Markdown table.
  --quick  run each benchmark briefly (about 20 seconds in all) as a smoke test
  --help   print this help
`;

function parseArguments(argv: readonly string[]): { quick: boolean } {
  let quick = false;
  for (const argument of argv) {
    if (argument === "--quick") {
      quick = true;
    } else if (argument === "--help" || argument === "-h") {
      process.stdout.write(USAGE);
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument: ${argument}\n${USAGE}`);
      process.exit(2);
    }
  }
  return { quick };
}

function describeMachine(): string {
  const model = cpus()[0]?.model.trim() ?? "unknown CPU";
  return `Node.js ${process.version}, ${availableParallelism()} x ${model}, ${process.platform}/${process.arch}`;
}

function describeMethod(settings: Settings): string {
  const { decision, server, rotation, timingLeak } = settings;
  return [
    `Decision: median ops/s of ${decision.rounds} rounds of ${decision.roundMs} ms, on requests parsed by node:http and re-used,`,
    "so req.headers, which the baselines read, is built once per request object. keyfile-auth's wrong key includes its stat.",
    `Server: autocannon with ${server.connections} connections for ${server.rounds} x ${server.durationSeconds} s a server, alternating,`,
    "each server in its own process; the bare 401 server sends the same 401 without checking anything.",
    `Rotation: ${rotation.rotations} rotations a row, polling off in the event rows, so p99 is the slowest of them.`,
    `Timing leak: ${timingLeak.measurements.toLocaleString("en-US")} calls a test with a 1024-character key, each call on a fresh copy`,
    "of its header string; |t| is the largest of all calls and those below the 50th, 75th, 90th, 95th, 99th and",
    "99.9th percentiles (dudect-style crops).",
  ].join("\n");
}

async function main(): Promise<void> {
  const { quick } = parseArguments(process.argv.slice(2));
  const settings = quick ? QUICK : FULL;
  const startedAt = performance.now();
  const rows: Row[] = [];

  const steps: [string, () => Promise<Row[]>][] = [
    ["cost of one decision", () => benchDecision(settings.decision)],
    ["server overhead", () => benchServer(settings.server)],
    ["rotation pickup", () => benchRotation(settings.rotation)],
    ["timing leak", () => benchTimingLeak(settings.timingLeak)],
    ["heap growth", () => benchHeap(settings.heap)],
  ];
  for (const [name, run] of steps) {
    const stepStartedAt = performance.now();
    process.stderr.write(`measuring ${name}...`);
    rows.push(...(await run()));
    const seconds = (performance.now() - stepStartedAt) / 1000;
    process.stderr.write(` ${seconds.toFixed(1)} s\n`);
  }

  const seconds = (performance.now() - startedAt) / 1000;
  console.log(
    `keyfile-auth benchmark, ${quick ? "quick" : "full"} run on ${describeMachine()}\n`,
  );
  console.log(formatTable(rows));
  console.log(`\n${describeMethod(settings)}`);
  console.log(`\nFinished in ${seconds.toFixed(0)} s.`);
  if (quick) {
    console.log(
      "The quick run takes too few samples for its figures to count.",
    );
  }
}

await main();
