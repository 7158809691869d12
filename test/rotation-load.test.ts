// Load test: concurrent keep-alive clients against two guards on one key file
// while the file is rotated 100 times in every way the watcher supports. One
// guard has a grace period of 1 s, the other none.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { execFile } from "node:child_process";
import {
  lstat,
  mkdir,
  readFile,
  rename,
  rm,
  symlink,
  unlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { createKeyAuth, generateKey } from "../src/index.js";
import { fingerprintKey } from "../src/key.js";
import { writeKeyFile } from "../src/key-file.js";
import { basic, makeTempDir, request, startGuardedServer } from "./helpers.js";

/** Number of times the key file is replaced during the run. */
const ROTATIONS = 100;

/** Pause after each rotation: 200 to 300 ms, the same sequence every run. */
function gapAfter(rotation: number): number {
  return 200 + ((rotation * 37) % 101);
}

/** Interval at which the clients that poll the key file read it, in ms. */
const REREAD_INTERVAL_MS = 100;

/** Grace period of the lenient guard, in ms. */
const GRACE_MS = 1000;

const CLI_PATH = fileURLToPath(new URL("../src/cli.js", import.meta.url));

const execFileAsync = promisify(execFile);

/** A way to replace the key file. Returns the key it wrote. */
interface Rotation {
  name: string;
  rotate(directory: string, keyPath: string): Promise<string>;
}

let stampCount = 0;
let currentStamp: string | undefined;

/**
 * Writes `key` the way a Kubernetes Secret volume does: into a new
 * `..TIMESTAMP` directory, then renames a new `..data_tmp` symlink over
 * `..data`. When the key file is not yet the symlink `..data/api.key`, that
 * symlink is renamed over it afterwards, which is the moment the key changes.
 */
async function swapSecretVolume(
  directory: string,
  keyPath: string,
  key: string,
): Promise<void> {
  const stamp = `..${Date.now()}_${stampCount++}`;
  await mkdir(join(directory, stamp), { mode: 0o750 });
  await writeFile(join(directory, stamp, "api.key"), `${key}\n`, {
    mode: 0o640,
  });
  await symlink(stamp, join(directory, "..data_tmp"));
  await rename(join(directory, "..data_tmp"), join(directory, "..data"));

  if (!(await lstat(keyPath)).isSymbolicLink()) {
    await symlink(join("..data", "api.key"), `${keyPath}.link`);
    await rename(`${keyPath}.link`, keyPath);
  }
  if (currentStamp !== undefined) {
    await rm(join(directory, currentStamp), { recursive: true });
  }
  currentStamp = stamp;
}

const KUBERNETES_SWAP: Rotation = {
  name: "Kubernetes ..data swap",
  async rotate(directory, keyPath) {
    const key = generateKey();
    await swapSecretVolume(directory, keyPath, key);
    return key;
  },
};

// The Kubernetes swap comes twice in a row: the first also turns the key file
// into the symlink, the second is a pure `..data` swap.
const ROTATION_METHODS: Rotation[] = [
  {
    name: "writeKeyFile",
    async rotate(_directory, keyPath) {
      const key = generateKey();
      await writeKeyFile(keyPath, key);
      return key;
    },
  },
  {
    name: "keyfile-auth rotate",
    async rotate(_directory, keyPath) {
      await execFileAsync(process.execPath, [CLI_PATH, "rotate", keyPath]);
      return (await readFile(keyPath, "latin1")).trim();
    },
  },
  {
    name: "in-place fs.writeFile",
    async rotate(_directory, keyPath) {
      const key = generateKey();
      await writeFile(keyPath, `${key}\n`);
      return key;
    },
  },
  {
    name: "editor save",
    async rotate(_directory, keyPath) {
      const key = generateKey();
      await rename(keyPath, `${keyPath}~`);
      await writeFile(keyPath, `${key}\n`, { mode: 0o640 });
      await unlink(`${keyPath}~`);
      return key;
    },
  },
  KUBERNETES_SWAP,
  KUBERNETES_SWAP,
];

/** Every key in this test comes from `generateKey`: 44 base64 characters. */
const KEY_SHAPE = /^[A-Za-z0-9+/]{43}=$/;

/**
 * Reads the key as a client script would, reading again while the file is
 * missing or incomplete: an editor save removes it for a moment, and an
 * in-place write truncates it before writing.
 */
async function readKey(keyPath: string): Promise<string> {
  for (let attempt = 0; attempt < 400; attempt++) {
    try {
      const key = (await readFile(keyPath, "latin1")).trim();
      if (KEY_SHAPE.test(key)) {
        return key;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw error;
      }
    }
    await sleep(5);
  }
  throw new Error(`no complete key in "${keyPath}" within 2 s`);
}

/** One request: the key it carried, when it was sent, and its status. */
interface RequestRecord {
  fingerprint: string;
  sentAt: number;
  status: number;
  client: string;
}

/** Sends GET / with `key` as Basic user-id over `agent` and returns the status. */
async function get(
  agent: http.Agent,
  port: number,
  key: string,
): Promise<number> {
  const url = `http://127.0.0.1:${port}/`;
  const response = await request(url, {
    agent,
    headers: { Authorization: basic(key) },
  });
  return response.status;
}

/** Everything the load run recorded, for the tests to check. */
interface LoadResults {
  /** Keys in the order they were written, the initial key first. */
  keys: string[];
  methods: string[];
  /** When each guard adopted each key, by fingerprint, in ms. */
  adoptedAt: { grace: Map<string, number>; strict: Map<string, number> };
  rereading: RequestRecord[];
  retrying: RequestRecord[];
  retries: number;
  retryFailures: RequestRecord[];
  stale: RequestRecord[];
  warnings: number;
  durationMs: number;
}

/**
 * Computes when each key stopped being current for a guard: the moment the
 * guard adopted any key written after it. A key the guard never adopted
 * counts as replaced as well.
 */
function replacedAt(
  keys: string[],
  adoptedAt: Map<string, number>,
): Map<string, number> {
  const result = new Map<string, number>();
  let earliestLater = Infinity;
  for (let index = keys.length - 1; index >= 0; index--) {
    const fingerprint = fingerprintKey(keys[index]!);
    result.set(fingerprint, earliestLater);
    earliestLater = Math.min(
      earliestLater,
      adoptedAt.get(fingerprint) ?? Infinity,
    );
  }
  return result;
}

/** Describes up to five records for an assertion message, after a colon. */
function sample(records: RequestRecord[]): string {
  if (records.length === 0) {
    return "";
  }
  const described = records
    .slice(0, 5)
    .map(
      ({ client, fingerprint, sentAt, status }) =>
        `${client} key ${fingerprint} at ${Math.round(sentAt)} ms: ${status}`,
    );
  return `: ${described.join("; ")}`;
}

async function runLoad(): Promise<LoadResults> {
  await using directory = await makeTempDir();
  const keyPath = join(directory.path, "api.key");
  const initialKey = generateKey();
  await writeKeyFile(keyPath, initialKey);

  const grace = await createKeyAuth({
    keyPath,
    init: "load",
    graceMs: GRACE_MS,
  });
  const strict = await createKeyAuth({ keyPath, init: "load" });
  const adoptedAt = {
    grace: new Map<string, number>(),
    strict: new Map<string, number>(),
  };
  let warnings = 0;
  for (const [name, auth] of [
    ["grace", grace],
    ["strict", strict],
  ] as const) {
    auth.on("rotate", ({ fingerprint }) => {
      adoptedAt[name].set(fingerprint, performance.now());
    });
    // Reads during in-place writes and editor saves can see an empty or
    // missing file, which the guards report. Warnings are only counted.
    auth.on("warning", () => warnings++);
  }
  const graceServer = await startGuardedServer(grace);
  const strictServer = await startGuardedServer(strict);
  const agents: http.Agent[] = [];
  const newAgent = () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    return agent;
  };

  const start = performance.now();
  let stopped = false;
  const rereading: RequestRecord[] = [];
  const retrying: RequestRecord[] = [];
  const retryFailures: RequestRecord[] = [];
  const stale: RequestRecord[] = [];
  let retries = 0;

  // Reads the key file every 100 ms and always sends the last key read.
  const rereadingClient = async (client: string) => {
    const agent = newAgent();
    let key = await readKey(keyPath);
    const refresh = (async () => {
      while (!stopped) {
        await sleep(REREAD_INTERVAL_MS);
        key = await readKey(keyPath);
      }
    })();
    while (!stopped) {
      const used = key;
      const sentAt = performance.now();
      const status = await get(agent, graceServer.port, used);
      rereading.push({
        client,
        fingerprint: fingerprintKey(used),
        sentAt,
        status,
      });
    }
    await refresh;
  };

  // Reads the key file only after a 401, then retries once.
  const retryingClient = async (client: string) => {
    const agent = newAgent();
    let key = await readKey(keyPath);
    while (!stopped) {
      const sentAt = performance.now();
      const status = await get(agent, strictServer.port, key);
      const record = {
        client,
        fingerprint: fingerprintKey(key),
        sentAt,
        status,
      };
      retrying.push(record);
      if (status !== 401) {
        continue;
      }

      retries++;
      key = await readKey(keyPath);
      const retrySentAt = performance.now();
      const retryStatus = await get(agent, strictServer.port, key);
      const retry = {
        client,
        fingerprint: fingerprintKey(key),
        sentAt: retrySentAt,
        status: retryStatus,
      };
      retrying.push(retry);
      if (retryStatus !== 200) {
        retryFailures.push(retry);
      }
    }
  };

  // Keeps the last three keys it read and sends them in turn, so that
  // replaced keys keep arriving after each rotation.
  const staleClient = async (client: string) => {
    const agent = newAgent();
    const recent = [await readKey(keyPath)];
    const refresh = (async () => {
      while (!stopped) {
        await sleep(REREAD_INTERVAL_MS / 2);
        const key = await readKey(keyPath);
        if (key !== recent[0]) {
          recent.unshift(key);
          recent.length = Math.min(recent.length, 3);
        }
      }
    })();
    for (let turn = 0; !stopped; turn++) {
      const used = recent[turn % recent.length]!;
      const sentAt = performance.now();
      const status = await get(agent, strictServer.port, used);
      stale.push({ client, fingerprint: fingerprintKey(used), sentAt, status });
    }
    await refresh;
  };

  const clients = [
    ...[1, 2, 3, 4].map((n) => rereadingClient(`re-reading client ${n}`)),
    ...[1, 2, 3, 4].map((n) => retryingClient(`retrying client ${n}`)),
    ...[1, 2].map((n) => staleClient(`stale-key client ${n}`)),
  ];

  const keys = [initialKey];
  const methods: string[] = [];
  try {
    for (let rotation = 0; rotation < ROTATIONS; rotation++) {
      const method = ROTATION_METHODS[rotation % ROTATION_METHODS.length]!;
      keys.push(await method.rotate(directory.path, keyPath));
      methods.push(method.name);
      await sleep(gapAfter(rotation));
    }
  } finally {
    stopped = true;
    await Promise.allSettled(clients);
    for (const agent of agents) {
      agent.destroy();
    }
    await graceServer.close();
    await strictServer.close();
    await grace.close();
    await strict.close();
  }
  // A client that failed outright, for example with a reset connection,
  // fails the run here.
  await Promise.all(clients);

  for (const map of [adoptedAt.grace, adoptedAt.strict]) {
    for (const [fingerprint, at] of map) {
      map.set(fingerprint, at - start);
    }
  }
  const shift = (records: RequestRecord[]) => {
    for (const record of records) {
      record.sentAt -= start;
    }
  };
  shift(rereading);
  shift(retrying);
  shift(stale);

  return {
    keys,
    methods,
    adoptedAt,
    rereading,
    retrying,
    retries,
    retryFailures,
    stale,
    warnings,
    durationMs: performance.now() - start,
  };
}

describe("rotation under load", () => {
  let results: LoadResults;

  before(
    async () => {
      results = await runLoad();
    },
    { timeout: 120_000 },
  );

  it("re-reading clients with grace always get 200", (t) => {
    const { rereading, keys, adoptedAt } = results;
    const failures = rereading.filter(({ status }) => status !== 200);
    const replaced = replacedAt(keys, adoptedAt.grace);
    const inGrace = rereading.filter(
      ({ fingerprint, sentAt, status }) =>
        status === 200 && replaced.get(fingerprint)! < sentAt,
    );
    const summary =
      `${rereading.length} requests, ${inGrace.length} accepted in grace, ` +
      `${failures.length} failed${sample(failures)}`;

    t.diagnostic(summary);
    assert.equal(failures.length, 0, summary);
    assert.ok(inGrace.length > 0, `no request used a replaced key; ${summary}`);
  });

  it("retrying clients never fail after a retry", (t) => {
    const { retrying, retries, retryFailures } = results;
    const summary =
      `${retrying.length} requests, ${retries} retries, ` +
      `${retryFailures.length} failed after retry${sample(retryFailures)}`;

    t.diagnostic(summary);
    assert.equal(retryFailures.length, 0, summary);
    assert.ok(retries >= ROTATIONS, `fewer retries than rotations; ${summary}`);
  });

  it("replaced keys get 401 without grace", (t) => {
    const { stale, keys, adoptedAt } = results;
    const replaced = replacedAt(keys, adoptedAt.strict);
    const afterReplacement = stale.filter(
      ({ fingerprint, sentAt }) => replaced.get(fingerprint)! < sentAt,
    );
    const accepted = afterReplacement.filter(({ status }) => status === 200);
    const summary =
      `${stale.length} requests, ${afterReplacement.length} with a replaced ` +
      `key, ${accepted.length} of them accepted${sample(accepted)}`;

    t.diagnostic(summary);
    assert.equal(accepted.length, 0, summary);
    assert.ok(afterReplacement.length > 0, `no replaced key sent; ${summary}`);
  });

  it("both guards adopt every rotated key", () => {
    const { keys, methods, adoptedAt, warnings, durationMs } = results;
    for (const [name, adopted] of Object.entries(adoptedAt)) {
      const missed = keys
        .slice(1)
        .map((key, index) => ({ key, method: methods[index] }))
        .filter(({ key }) => !adopted.has(fingerprintKey(key)))
        .map(({ key, method }) => `${fingerprintKey(key)} (${method})`);

      assert.deepEqual(
        missed,
        [],
        `${name} guard: ${adopted.size} of ${ROTATIONS} keys adopted in ` +
          `${Math.round(durationMs)} ms, ${warnings} warnings`,
      );
    }
  });
});
