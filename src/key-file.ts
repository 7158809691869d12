import {
  closeSync,
  fstatSync,
  constants,
  openSync,
  readSync,
  statSync,
  type Stats,
} from "node:fs";
import {
  chmod,
  link,
  mkdir,
  open,
  rename,
  stat,
  unlink,
} from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { errnoCode } from "./errors.js";
import { MAX_KEY_FILE_SIZE, validateKey } from "./key.js";

/** Mode of every key file written here: owner read-write, group read. */
export const KEY_FILE_MODE = 0o640;

/** Mode of a key file directory created here: owner all, group read-search. */
export const KEY_DIRECTORY_MODE = 0o750;

export { MAX_KEY_FILE_SIZE };

/**
 * Identity of one version of a file: the `stat` fields that change when its
 * content is replaced or rewritten.
 */
export type FileSignature = string;

/** Computes the signature of a file from its `stat` result. */
export function signatureOf(stats: Stats): FileSignature {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

/**
 * Returns the signature of the file at `path` (following symlinks), or
 * `undefined` when it cannot be read by `stat`.
 */
export function statSignature(path: string): FileSignature | undefined {
  try {
    const stats = statSync(path, { throwIfNoEntry: false });
    return stats === undefined ? undefined : signatureOf(stats);
  } catch {
    return undefined;
  }
}

// O_NONBLOCK keeps the open from waiting for a writer when the path is a
// FIFO, which `checkRegularFile` then rejects. It has no effect on files.
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** Throws an `EISDIR` or `EINVAL` error unless `stats` is a regular file. */
function checkRegularFile(path: string, stats: Stats): void {
  if (stats.isFile()) {
    return;
  }
  const error: NodeJS.ErrnoException = stats.isDirectory()
    ? new Error(`EISDIR: "${path}" is a directory`)
    : new Error(`EINVAL: "${path}" is not a regular file`);
  error.code = stats.isDirectory() ? "EISDIR" : "EINVAL";
  throw error;
}

/**
 * Reads at most `MAX_KEY_FILE_SIZE + 1` bytes of a file synchronously, so a
 * too-large file is seen as such without reading it all.
 */
export function readKeyFileSync(path: string): Buffer {
  const fd = openSync(path, READ_FLAGS);
  try {
    checkRegularFile(path, fstatSync(fd));
    const buffer = Buffer.alloc(MAX_KEY_FILE_SIZE + 1);
    let length = 0;
    while (length < buffer.length) {
      const count = readSync(fd, buffer, length, buffer.length - length, null);
      if (count === 0) {
        break;
      }
      length += count;
    }
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/** Reads a key file like `readKeyFileSync`, without blocking. */
export async function readKeyFile(path: string): Promise<Buffer> {
  return (await readKeyFileVersion(path)).content;
}

/** Content of a key file and the signature of the file it was read from. */
export interface KeyFileVersion {
  content: Buffer;
  signature: FileSignature;
}

/**
 * Reads a key file like `readKeyFile`, with the signature of the opened file
 * taken before its content is read.
 */
export async function readKeyFileVersion(
  path: string,
): Promise<KeyFileVersion> {
  const handle = await open(path, READ_FLAGS);
  try {
    const stats = await handle.stat();
    checkRegularFile(path, stats);
    const buffer = Buffer.alloc(MAX_KEY_FILE_SIZE + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(
        buffer,
        length,
        buffer.length - length,
        null,
      );
      if (bytesRead === 0) {
        break;
      }
      length += bytesRead;
    }
    return {
      content: buffer.subarray(0, length),
      signature: signatureOf(stats),
    };
  } finally {
    await handle.close();
  }
}

/**
 * Describes what is wrong with the mode of a key file that other users can
 * read or write, or returns `undefined` when they can do neither.
 */
export function describeLoosePermissions(
  path: string,
  mode: number,
): string | undefined {
  if (process.platform === "win32" || (mode & 0o006) === 0) {
    return undefined;
  }
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  return (
    `key file "${path}" has mode ${octal}, so other users can ` +
    `${mode & 0o002 ? "write" : "read"} it; run chmod 640 "${path}"`
  );
}

/** Options of `writeKeyFile`. */
export interface WriteKeyFileOptions {
  /**
   * Whether an existing file is replaced. When false the write fails with
   * an `EEXIST` error instead, even against a writer in another process.
   * Default: true.
   */
  replace?: boolean;
}

/**
 * Writes `key` and one `\n` to the key file at `path` atomically.
 *
 * The content goes to a new temporary file with a random name in the same
 * directory, created exclusively so that a planted file or symlink is never
 * followed. That file gets mode 0640 (whatever the umask) and the group of
 * the existing key file before any key byte is written, then it is synced
 * and renamed over `path`, and the directory is synced. A missing parent
 * directory is created with mode 0750.
 *
 * Throws a `TypeError` for an invalid key and the file system error when a
 * step fails, leaving the existing key file as it was.
 */
export async function writeKeyFile(
  path: string,
  key: string,
  options: WriteKeyFileOptions = {},
): Promise<void> {
  if (typeof path !== "string" || path.length === 0) {
    throw new TypeError("key file path must be a non-empty string");
  }
  const problem =
    typeof key === "string" ? validateKey(key) : "is not a string";
  if (problem !== undefined) {
    throw new TypeError(`invalid key for "${path}": the key ${problem}`);
  }

  const directory = dirname(path);
  await createDirectory(directory);
  const group = await groupOf(path);

  const temporaryPath = await writeTemporaryFile(directory, path, key, group);
  try {
    if (options.replace === false) {
      // link() fails with EEXIST when the target exists, where rename() would
      // silently replace a key that another process has just created.
      await link(temporaryPath, path);
      await unlink(temporaryPath);
    } else {
      await rename(temporaryPath, path);
    }
  } catch (error) {
    await unlink(temporaryPath).catch(() => undefined);
    throw error;
  }

  await syncDirectory(directory);
}

async function createDirectory(directory: string): Promise<void> {
  // The missing directories are found and created one at a time, because
  // mkdir with `recursive` spins forever on some paths, such as under /proc
  // on Node.js 20.
  const missing: string[] = [];
  for (let current = directory; ; current = dirname(current)) {
    try {
      await stat(current);
      break;
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") {
        throw error;
      }
    }
    missing.push(current);
    if (dirname(current) === current) {
      break;
    }
  }

  for (const created of missing.reverse()) {
    try {
      await mkdir(created, { mode: 0o700 });
    } catch (error) {
      // Another process created it meanwhile, so its mode is not ours to set.
      if (errnoCode(error) === "EEXIST") {
        continue;
      }
      throw error;
    }
    // mkdir applies the umask, so the mode is set again.
    await chmod(created, KEY_DIRECTORY_MODE);
  }
}

async function groupOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).gid;
  } catch (error) {
    if (errnoCode(error) === "ENOENT") {
      return undefined;
    }
    throw error;
  }
}

async function writeTemporaryFile(
  directory: string,
  path: string,
  key: string,
  group: number | undefined,
): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const suffix = randomBytes(8).toString("hex");
    const temporaryPath = join(directory, `.${basename(path)}.${suffix}.tmp`);

    let handle;
    try {
      // O_EXCL with O_CREAT fails on any existing entry, symlinks included.
      handle = await open(
        temporaryPath,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
        KEY_FILE_MODE,
      );
    } catch (error) {
      if (errnoCode(error) === "EEXIST" && attempt < 5) {
        continue;
      }
      throw error;
    }

    try {
      if (group !== undefined) {
        await handle.chown(-1, group);
      }
      await handle.chmod(KEY_FILE_MODE);
      await handle.writeFile(`${key}\n`, "latin1");
      await handle.sync();
      await handle.close();
      return temporaryPath;
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(temporaryPath).catch(() => undefined);
      throw error;
    }
  }
}

async function syncDirectory(directory: string): Promise<void> {
  let handle;
  try {
    handle = await open(directory, constants.O_RDONLY);
    await handle.sync();
  } catch (error) {
    // Some platforms and file systems cannot open or sync a directory.
    const code = errnoCode(error);
    if (code !== "EISDIR" && code !== "EINVAL" && code !== "EPERM") {
      throw error;
    }
  } finally {
    await handle?.close();
  }
}
