// Heap growth measurement, run in its own process with --expose-gc so that
// nothing else lives in its heap. Usage:
//   node --expose-gc heap-child.js guarded|bare REQUESTS
// It sends `{ before, after }` (heap bytes in use after a full collection)
// to the parent over IPC and exits.
import { ServerResponse } from "node:http";
import { generateKey } from "../../src/index.js";
import { basicChallenge, sendUnauthorized } from "../../src/response.js";
import {
  basicAuthorization,
  captureRequests,
  malformedAuthorization,
} from "./capture.js";
import { createKeyFixture } from "./fixture.js";

/** Request handling the heap child measures: the guard, or the same 401 sent by hand. */
export type HeapMode = "guarded" | "bare";

/** Message the heap child sends to its parent. */
export interface HeapResult {
  /** Bytes of heap in use before the measured requests. */
  before: number;
  /** Bytes of heap in use after them. */
  after: number;
}

const WARMUP_REQUESTS = 20_000;
const POOL_SIZE = 64;

const [mode, countText] = process.argv.slice(2);
const gc = globalThis.gc;
if (process.send === undefined || gc === undefined) {
  throw new Error("run this file through child_process.fork with --expose-gc");
}
const count = Number(countText);

const key = generateKey();
await using fixture = await createKeyFixture(key);
const pool = await captureRequests(
  Array.from({ length: POOL_SIZE }, () =>
    malformedAuthorization(basicAuthorization(key)),
  ),
);

const challenge = basicChallenge("API");
const body = `You must pass the API key from "${fixture.keyPath}" as the username\n`;
const handle =
  (mode as HeapMode) === "guarded"
    ? (index: number) => {
        const req = pool[index % POOL_SIZE]!;
        fixture.auth.check(req, new ServerResponse(req));
      }
    : (index: number) => {
        const req = pool[index % POOL_SIZE]!;
        sendUnauthorized(req, new ServerResponse(req), challenge, body);
      };

for (let index = 0; index < WARMUP_REQUESTS; index++) {
  handle(index);
}
const before = heapAfterCollection(gc);
for (let index = 0; index < count; index++) {
  handle(index);
}
const after = heapAfterCollection(gc);

const result: HeapResult = { before, after };
process.send(result, () => process.disconnect());

function heapAfterCollection(collect: () => void): number {
  // Two passes, because objects with finalizers survive the first one.
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}
