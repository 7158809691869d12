import {
  mkdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

/** A way to replace the key file, as rotation tools do it. */
export interface KeyFileLayout {
  /** Name of the way in the result table. */
  name: string;
  /** Path the guard reads. */
  keyPath: string;
  /**
   * Replaces the key, synchronously, so that the new file is complete when
   * this returns and no event of the watcher can run in between.
   */
  replace(key: string): void;
  /** Removes what the last `replace` left behind; called after pickup. */
  cleanUp(): void;
}

/** The ways of replacing a key file that the rotation benchmark measures. */
export type LayoutKind = "in-place" | "rename" | "kubernetes";

const FILE_NAME = "api.key";

/**
 * Lays out a key file holding `key` in `directory` as `kind` needs it, and
 * returns the way to replace it:
 * - `in-place`: the file is truncated and written again (`printf KEY > key`);
 * - `rename`: a new file is written beside it and renamed over it (`mv`);
 * - `kubernetes`: the layout of a Secret volume, `key -> ..data/key` and
 *   `..data -> ..TIMESTAMP`, updated by writing a new `..TIMESTAMP` folder
 *   and renaming a new `..data_tmp` symlink over `..data`.
 */
export function createLayout(
  kind: LayoutKind,
  directory: string,
  key: string,
): KeyFileLayout {
  const keyPath = join(directory, FILE_NAME);

  switch (kind) {
    case "in-place":
      writeFileSync(keyPath, keyFileContent(key), { mode: 0o640 });
      return {
        name: "in-place write",
        keyPath,
        replace: (next) => writeFileSync(keyPath, keyFileContent(next)),
        cleanUp: () => undefined,
      };
    case "rename": {
      writeFileSync(keyPath, keyFileContent(key), { mode: 0o640 });
      const temporaryPath = join(directory, `.${FILE_NAME}.tmp`);
      return {
        name: "rename over",
        keyPath,
        replace: (next) => {
          writeFileSync(temporaryPath, keyFileContent(next), { mode: 0o640 });
          renameSync(temporaryPath, keyPath);
        },
        cleanUp: () => undefined,
      };
    }
    case "kubernetes":
      return kubernetesLayout(directory, keyPath, keyFileContent(key));
  }
}

function keyFileContent(key: string): string {
  return `${key}\n`;
}

function kubernetesLayout(
  directory: string,
  keyPath: string,
  firstContent: string,
): KeyFileLayout {
  let version = 0;
  let previous: string | undefined;
  const dataLink = join(directory, "..data");
  const temporaryLink = join(directory, "..data_tmp");

  const writeVersion = (content: string): string => {
    version++;
    const name = `..version_${version}`;
    mkdirSync(join(directory, name), { mode: 0o755 });
    writeFileSync(join(directory, name, FILE_NAME), content, { mode: 0o640 });
    return name;
  };

  let current = writeVersion(firstContent);
  symlinkSync(current, dataLink);
  symlinkSync(join("..data", FILE_NAME), keyPath);

  return {
    name: "Kubernetes ..data swap",
    keyPath,
    replace: (next) => {
      previous = current;
      current = writeVersion(keyFileContent(next));
      symlinkSync(current, temporaryLink);
      renameSync(temporaryLink, dataLink);
    },
    cleanUp: () => {
      if (previous !== undefined) {
        rmSync(join(directory, previous), { recursive: true, force: true });
        previous = undefined;
      }
    },
  };
}
