import { setTimeout as sleep } from "node:timers/promises";
import { KeyAuthError, describeReadError, errnoCode } from "./errors.js";
import { generateKey, parseKeyFileContent } from "./key.js";
import {
  readKeyFileVersion,
  writeKeyFile,
  type FileSignature,
  type KeyFileVersion,
} from "./key-file.js";
import type { InitMode } from "./options.js";

/** Delay between two reads of the key file that must agree, in ms. */
export const STABLE_READ_DELAY_MS = 15;

/** Reads that may disagree before a read is given up as unstable. */
export const STABLE_READ_ATTEMPTS = 8;

/**
 * Reads the key file, following symlinks, until two reads
 * `STABLE_READ_DELAY_MS` apart return the same bytes, so that a file still
 * being written is not taken for a key. Returns `undefined` when the content
 * keeps changing, and throws the file system error when it cannot be read.
 */
export async function readStableKeyFile(
  path: string,
): Promise<KeyFileVersion | undefined> {
  let read = await readKeyFileVersion(path);

  for (let attempt = 1; attempt < STABLE_READ_ATTEMPTS; attempt++) {
    await sleep(STABLE_READ_DELAY_MS);
    const next = await readKeyFileVersion(path);
    if (next.content.equals(read.content)) {
      return read;
    }
    read = next;
  }
  return undefined;
}

/** The first key of a guard, and the signature of the file it came from. */
export interface InitialKey {
  key: string;
  signature: FileSignature | undefined;
}

/**
 * Obtains the first key as `init` specifies. Throws a `KeyAuthError` that names
 * the file and the fix when the file cannot be read or contains no valid key,
 * and never replaces such a file unless `init` is `'generate'`.
 */
export async function obtainInitialKey(
  path: string,
  init: InitMode,
): Promise<InitialKey> {
  if (init === "generate") {
    return writeNewKey(path, true);
  }

  try {
    return await loadKey(path);
  } catch (error) {
    if (init === "load" || !(error instanceof KeyAuthError)) {
      throw error;
    }
    if (errnoCode(error.cause) !== "ENOENT") {
      throw error;
    }
  }

  try {
    return await writeNewKey(path, false);
  } catch (error) {
    // Another process created the file first, so its key is the one to share.
    if (errnoCode(error) === "EEXIST") {
      return loadKey(path);
    }
    throw error;
  }
}

async function writeNewKey(
  path: string,
  replace: boolean,
): Promise<InitialKey> {
  const key = generateKey();
  await writeKeyFile(path, key, { replace });
  return { key, signature: undefined };
}

async function loadKey(path: string): Promise<InitialKey> {
  let read: KeyFileVersion | undefined;
  try {
    read = await readStableKeyFile(path);
  } catch (error) {
    const hint =
      errnoCode(error) === "ENOENT"
        ? `create it with "keyfile-auth generate ${path}" or use init 'load-or-generate'`
        : "check that the process can read the file";
    throw new KeyAuthError(
      "KEY_FILE_UNREADABLE",
      `${describeReadError(path, error)}; ${hint}`,
      { cause: error },
    );
  }

  if (read === undefined) {
    throw new KeyAuthError(
      "KEY_FILE_INVALID",
      `key file "${path}" kept changing while it was read; retry once the writer is done`,
    );
  }

  const parsed = parseKeyFileContent(read.content);
  if (!parsed.ok) {
    throw new KeyAuthError(
      "KEY_FILE_INVALID",
      `key file "${path}" does not contain a valid key: the key ${parsed.problem}. ` +
        'Write 16 to 4096 printable ASCII characters without ":" on one line, ' +
        `for example with "keyfile-auth generate --force ${path}"`,
    );
  }
  return { key: parsed.key, signature: read.signature };
}
