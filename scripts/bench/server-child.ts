// A server for the overhead benchmark, run in its own process so that the
// load generator does not share its event loop. Usage:
//   node server-child.js bare-ok|bare-unauthorized|guarded KEY_PATH
// It listens on 127.0.0.1 and a random port, sends `{ port }` to the parent
// over IPC, and exits when the parent disconnects.
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { createKeyAuth } from "../../src/index.js";
import { basicChallenge, sendUnauthorized } from "../../src/response.js";

/** Servers the overhead benchmark compares. */
export type ServerMode = "bare-ok" | "bare-unauthorized" | "guarded";

const [mode, keyPath] = process.argv.slice(2);
if (process.send === undefined || keyPath === undefined) {
  throw new Error(
    "run this file through child_process.fork with a mode and a key path",
  );
}

const auth = await createKeyAuth({ keyPath, init: "load" });
auth.on("warning", (warning) => {
  console.error(`server warning ${warning.code}: ${warning.message}`);
});
const challenge = basicChallenge("API");
const body = `You must pass the API key from "${keyPath}" as the username\n`;

let handler: http.RequestListener;
switch (mode as ServerMode) {
  case "bare-ok":
    handler = (_req, res) => {
      res.end("ok\n");
    };
    break;
  case "bare-unauthorized":
    // The guard's 401 response, sent without looking at the request.
    handler = (req, res) => {
      sendUnauthorized(req, res, challenge, body);
    };
    break;
  case "guarded":
    handler = (req, res) => {
      if (!auth.check(req, res)) return;
      res.end("ok\n");
    };
    break;
  default:
    throw new Error(`unknown server mode: ${String(mode)}`);
}

const server = http.createServer(handler);
server.listen(0, "127.0.0.1");
await once(server, "listening");
process.send({ port: (server.address() as AddressInfo).port });

process.once("disconnect", () => {
  server.closeAllConnections();
  server.close();
  void auth.close();
});
