#!/usr/bin/env node
import { stat } from "node:fs/promises";
import { parseArgs } from "node:util";
import { describeReadError, errnoCode } from "./errors.js";
import { fingerprintKey, generateKey } from "./key.js";
import { writeKeyFile } from "./key-file.js";

const USAGE = `Usage:
  keyfile-auth generate [--force] PATH   Create a key file with a new random key.
                                         --force replaces an existing file.
  keyfile-auth rotate PATH               Replace the key in an existing key file.
  keyfile-auth --help                    Show this help.

Both commands write the file atomically with mode 0640, keep the group of an
existing file, and print the new key's fingerprint, never the key.
`;

/** Error in the command line itself, reported with exit code 2. */
class UsageError extends Error {}

/** Runs the command line and returns its exit code. */
export async function main(args: readonly string[]): Promise<number> {
  try {
    return await run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`keyfile-auth: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`keyfile-auth: ${message}\n`);
    return 1;
  }
}

async function run(args: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError(
      error instanceof Error ? error.message : String(error),
    );
  }

  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  const [command, path, ...extra] = positionals;
  if (command === undefined) {
    throw new UsageError("missing command");
  }
  if (command !== "generate" && command !== "rotate") {
    throw new UsageError(`unknown command "${command}"`);
  }
  if (path === undefined || path.length === 0) {
    throw new UsageError(`missing key file path after "${command}"`);
  }
  if (extra.length > 0) {
    throw new UsageError(`unexpected argument "${extra[0]}"`);
  }
  if (command === "rotate" && values.force) {
    throw new UsageError("--force applies only to generate");
  }

  if (command === "generate") {
    return generate(path, values.force);
  }
  return rotate(path);
}

async function generate(path: string, force: boolean): Promise<number> {
  const key = generateKey();
  try {
    await writeKeyFile(path, key, { replace: force });
  } catch (error) {
    // Only an EEXIST from link() means that the key file exists, because
    // mkdir() also fails with EEXIST when a parent in the path is a file.
    const syscall = (error as NodeJS.ErrnoException | undefined)?.syscall;
    if (errnoCode(error) === "EEXIST" && syscall === "link") {
      throw new Error(
        `key file "${path}" already exists; use "keyfile-auth rotate ${path}" ` +
          "or add --force to replace it",
      );
    }
    throw failedWrite(path, error);
  }
  process.stdout.write(
    `Wrote a new key to ${path} (fingerprint ${fingerprintKey(key)})\n`,
  );
  return 0;
}

async function rotate(path: string): Promise<number> {
  try {
    const stats = await stat(path);
    if (!stats.isFile()) {
      throw new Error(`key file "${path}" is not a regular file`);
    }
  } catch (error) {
    if (errnoCode(error) === "ENOENT") {
      throw new Error(
        `key file "${path}" not found; create it with "keyfile-auth generate ${path}"`,
      );
    }
    if (errnoCode(error) !== undefined) {
      throw new Error(describeReadError(path, error));
    }
    throw error;
  }

  const key = generateKey();
  try {
    await writeKeyFile(path, key);
  } catch (error) {
    throw failedWrite(path, error);
  }
  process.stdout.write(
    `Rotated the key in ${path} (fingerprint ${fingerprintKey(key)})\n`,
  );
  return 0;
}

function failedWrite(path: string, error: unknown): Error {
  const reason = error instanceof Error ? error.message : String(error);
  return new Error(`failed to write key file "${path}": ${reason}`, {
    cause: error,
  });
}

process.exitCode = await main(process.argv.slice(2));
