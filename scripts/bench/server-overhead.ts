import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { generateKey } from "../../src/index.js";
import { basicAuthorization } from "./capture.js";
import { createKeyFixture } from "./fixture.js";
import type { ServerMode } from "./server-child.js";
import type { Row } from "./table.js";

/** How long the server benchmark runs. */
export interface ServerSettings {
  /** Measured runs of each server, taken in turns. */
  rounds: number;
  /** Duration of one autocannon run in seconds. */
  durationSeconds: number;
  /** Duration of the unmeasured first run of each server in seconds. */
  warmupSeconds: number;
  /** Concurrent connections of autocannon. */
  connections: number;
}

/** Minimum throughput of the guarded server relative to the bare one. */
const MINIMUM_RATIO = 0.95;

const CHILD = fileURLToPath(new URL("./server-child.js", import.meta.url));

interface RunningServer {
  child: ChildProcess;
  url: string;
}

/**
 * Measures the requests per second of a `node:http` server whose handler
 * calls `auth.check` against the same server without the guard, for the
 * 200 path (valid key) and the 401 path (wrong key of the same length). For
 * the 401 path the bare server sends the same 401 response without looking
 * at the request. Each server runs in its own process, autocannon in this
 * one, and the runs alternate (bare, guarded, bare, guarded) so that drift
 * of the machine's speed affects both alike.
 */
export async function benchServer(settings: ServerSettings): Promise<Row[]> {
  const key = generateKey();
  await using fixture = await createKeyFixture(key, { watch: false });

  const modes: ServerMode[] = ["bare-ok", "bare-unauthorized", "guarded"];
  const started = await Promise.allSettled(
    modes.map((mode) => startServer(mode, fixture.keyPath)),
  );
  const servers = started.flatMap((result) =>
    result.status === "fulfilled" ? [result.value] : [],
  );

  try {
    const failed = started.find((result) => result.status === "rejected");
    if (failed !== undefined) {
      throw failed.reason;
    }
    const [bareOk, bareUnauthorized, guarded] = servers as [
      RunningServer,
      RunningServer,
      RunningServer,
    ];

    const paths: LoadPath[] = [
      {
        name: "200 path",
        authorization: basicAuthorization(key),
        status: 200,
      },
      {
        name: "401 path",
        authorization: basicAuthorization(generateKey()),
        status: 401,
      },
    ];
    return [
      await comparePath(bareOk, guarded, paths[0]!, settings),
      await comparePath(bareUnauthorized, guarded, paths[1]!, settings),
    ];
  } finally {
    await Promise.all(servers.map(stopServer));
  }
}

interface LoadPath {
  name: string;
  authorization: string;
  /** Status every response must have. */
  status: number;
}

async function comparePath(
  bare: RunningServer,
  guarded: RunningServer,
  path: LoadPath,
  settings: ServerSettings,
): Promise<Row> {
  const load = (server: RunningServer, seconds: number) =>
    runLoad(server.url, path.authorization, path.status, seconds, settings);

  await load(bare, settings.warmupSeconds);
  await load(guarded, settings.warmupSeconds);
  let bareRequests = 0;
  let bareSeconds = 0;
  let guardedRequests = 0;
  let guardedSeconds = 0;
  for (let round = 0; round < settings.rounds; round++) {
    const bareRun = await load(bare, settings.durationSeconds);
    bareRequests += bareRun.requests;
    bareSeconds += bareRun.seconds;
    const guardedRun = await load(guarded, settings.durationSeconds);
    guardedRequests += guardedRun.requests;
    guardedSeconds += guardedRun.seconds;
  }

  const bareRate = bareRequests / bareSeconds;
  const guardedRate = guardedRequests / guardedSeconds;
  const ratio = guardedRate / bareRate;
  return {
    measurement: `Server throughput, ${path.name}`,
    value: formatRequestRate(guardedRate),
    baseline: `bare node:http: ${formatRequestRate(bareRate)}`,
    ratio: `${(ratio * 100).toFixed(1)}%`,
    target: `>= ${(MINIMUM_RATIO * 100).toFixed(0)}%`,
    met: ratio >= MINIMUM_RATIO,
  };
}

function formatRequestRate(rate: number): string {
  return `${Math.round(rate).toLocaleString("en-US")} req/s`;
}

async function startServer(
  mode: ServerMode,
  keyPath: string,
): Promise<RunningServer> {
  const child = fork(CHILD, [mode, keyPath], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [message] = (await Promise.race([
    once(child, "message"),
    once(child, "exit").then(() => {
      throw new Error(`benchmark server "${mode}" exited before listening`);
    }),
  ])) as [{ port: number }];
  return { child, url: `http://127.0.0.1:${message.port}/` };
}

async function stopServer(server: RunningServer): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    return;
  }
  const exited = once(server.child, "exit");
  server.child.disconnect();
  await exited;
}

/**
 * Runs autocannon against `url` and returns the requests completed and the
 * seconds taken. Throws when any response has another status than `status`
 * or a connection failed, since the figure would then measure something else.
 */
async function runLoad(
  url: string,
  authorization: string,
  status: number,
  seconds: number,
  settings: ServerSettings,
): Promise<{ requests: number; seconds: number }> {
  const result = await autocannon({
    url,
    connections: settings.connections,
    duration: seconds,
    headers: { authorization },
  });

  const expected = result.statusCodeStats?.[`${status}`]?.count ?? 0;
  if (result.errors > 0 || expected !== result.requests.total) {
    throw new Error(
      `load on ${url} got ${expected} responses with status ${status} of ` +
        `${result.requests.total}, and ${result.errors} errors`,
    );
  }
  return { requests: result.requests.total, seconds: result.duration };
}
