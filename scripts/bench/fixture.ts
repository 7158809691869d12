import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createKeyAuth,
  writeKeyFile,
  type KeyAuth,
  type KeyAuthOptions,
} from "../../src/index.js";

/** A key file in a temporary folder and a guard that loads it. */
export interface KeyFixture {
  directory: string;
  keyPath: string;
  key: string;
  auth: KeyAuth;
  /** Closes the guard and removes the folder. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Writes `key` to a key file in a new temporary folder and creates a guard
 * for it with `options`. Warnings are collected instead of printed.
 */
export async function createKeyFixture(
  key: string,
  options: Omit<KeyAuthOptions, "keyPath"> = {},
): Promise<KeyFixture> {
  const directory = await mkdtemp(join(tmpdir(), "keyfile-auth-bench-"));
  const keyPath = join(directory, "api.key");
  await writeKeyFile(keyPath, key);
  const auth = await createKeyAuth({ keyPath, init: "load", ...options });
  auth.on("warning", () => undefined);

  return {
    directory,
    keyPath,
    key,
    auth,
    async [Symbol.asyncDispose]() {
      await auth.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Creates a temporary folder for a benchmark that lays out its own files. */
export async function makeBenchDirectory(): Promise<string> {
  return mkdtemp(join(tmpdir(), "keyfile-auth-bench-"));
}
