import type { Scheme } from "./header.js";

/** Source of the first key in `createKeyAuth`. */
export type InitMode = "load" | "generate" | "load-or-generate";

/** Options of `createKeyAuth`. */
export interface KeyAuthOptions {
  /** Path of the key file. Required. */
  keyPath: string;
  /** Realm of the `WWW-Authenticate` challenge, printable ASCII. Default: `'API'`. */
  realm?: string;
  /**
   * `'load'`: the file must exist and contain a valid key. `'generate'`:
   * write a new key at every start, replacing the file. `'load-or-generate'`:
   * load the file, or generate it when it does not exist. Default:
   * `'load-or-generate'`.
   */
  init?: InitMode;
  /**
   * `true`: follow rewrites of the key file through file system events on
   * its directory, polling, and a `stat` on failed requests. `'poll'`: the
   * same without file system events. `false`: the key changes only through
   * `rotate()`. Default: `true`.
   */
  watch?: boolean | "poll";
  /** Interval between polls of the key file in ms; 0 turns polling off. Default: 2000. */
  pollIntervalMs?: number;
  /** Time in ms during which a replaced key stays valid. Default: 0. */
  graceMs?: number;
  /** Accepted schemes: `'basic'`, which is required, and `'bearer'`. Default: `['basic']`. */
  schemes?: readonly Scheme[];
}

/** Options with every default applied. */
export interface ResolvedOptions {
  keyPath: string;
  realm: string;
  init: InitMode;
  watch: boolean | "poll";
  pollIntervalMs: number;
  graceMs: number;
  schemes: readonly Scheme[];
}

export const DEFAULT_POLL_INTERVAL_MS = 2000;

const INIT_MODES: readonly InitMode[] = [
  "load",
  "generate",
  "load-or-generate",
];
const SCHEMES: readonly Scheme[] = ["basic", "bearer"];
const OPTION_NAMES = new Set([
  "keyPath",
  "realm",
  "init",
  "watch",
  "pollIntervalMs",
  "graceMs",
  "schemes",
]);

/** Applies defaults and checks every option, throwing a `TypeError` or `RangeError`. */
export function resolveOptions(options: KeyAuthOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object with a keyPath");
  }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) {
      throw new TypeError(
        `unknown option "${name}"; the options are ${[...OPTION_NAMES].join(", ")}`,
      );
    }
  }

  const {
    keyPath,
    realm = "API",
    init = "load-or-generate",
    watch = true,
    pollIntervalMs = DEFAULT_POLL_INTERVAL_MS,
    graceMs = 0,
    schemes = ["basic"],
  } = options;

  if (typeof keyPath !== "string" || keyPath.length === 0) {
    throw new TypeError(
      `keyPath must be a non-empty string: ${JSON.stringify(keyPath) ?? String(keyPath)}`,
    );
  }
  if (keyPath.includes("\0")) {
    throw new TypeError(
      `keyPath must not contain a null byte: ${JSON.stringify(keyPath)}`,
    );
  }
  if (typeof realm !== "string" || !/^[\x20-\x7e]*$/.test(realm)) {
    throw new TypeError(
      `realm must be printable ASCII (0x20 to 0x7E): ${JSON.stringify(realm)}`,
    );
  }
  if (!INIT_MODES.includes(init)) {
    throw new TypeError(
      `init must be 'load', 'generate' or 'load-or-generate': ${JSON.stringify(init)}`,
    );
  }
  if (watch !== true && watch !== false && watch !== "poll") {
    throw new TypeError(
      `watch must be true, false or 'poll': ${JSON.stringify(watch)}`,
    );
  }
  checkDuration("pollIntervalMs", pollIntervalMs);
  checkDuration("graceMs", graceMs);
  if (watch === "poll" && pollIntervalMs === 0) {
    throw new RangeError("pollIntervalMs must be above 0 when watch is 'poll'");
  }
  if (
    !Array.isArray(schemes) ||
    !schemes.includes("basic") ||
    !schemes.every((scheme) => SCHEMES.includes(scheme))
  ) {
    throw new TypeError(
      `schemes must be ['basic'] or ['basic', 'bearer'], because every 401 carries a Basic challenge: ${JSON.stringify(schemes)}`,
    );
  }

  return { keyPath, realm, init, watch, pollIntervalMs, graceMs, schemes };
}

function checkDuration(name: string, value: unknown): void {
  // setTimeout and setInterval treat delays above 2^31 - 1 ms as 1 ms.
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    value < 0 ||
    value > 2 ** 31 - 1
  ) {
    throw new RangeError(
      `${name} must be an integer number of milliseconds from 0 to 2147483647: ${String(value)}`,
    );
  }
}
