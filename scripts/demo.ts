// Demo server guarded by keyfile-auth. Run it with `npm start`.
// PORT (default 8080) and KEY_PATH (default ./api.key) override the defaults.
import http from "node:http";
import { createKeyAuth } from "../src/index.js";

const port = Number(process.env.PORT ?? 8080);
const keyPath = process.env.KEY_PATH ?? "./api.key";
const host = "127.0.0.1";

const auth = await createKeyAuth({ keyPath });
auth.on("rotate", ({ fingerprint, reason }) => {
  console.log(`key rotated: fingerprint ${fingerprint} (${reason})`);
});
auth.on("warning", (warning) => {
  console.warn(`warning ${warning.code}: ${warning.message}`);
});

const server = http.createServer((req, res) => {
  if (!auth.check(req, res)) {
    console.log(`${req.method} ${req.url} rejected with ${res.statusCode}`);
    return;
  }
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello, you passed the key with fingerprint ${auth.fingerprint}\n`);
});

server.on("error", (error) => {
  console.error(`demo server failed: ${error.message}`);
  process.exitCode = 1;
  void auth.close();
});

server.listen(port, host, () => {
  const address = server.address();
  const actualPort =
    typeof address === "object" && address ? address.port : port;
  console.log(
    `listening on http://${host}:${actualPort}/ with key fingerprint ${auth.fingerprint}`,
  );
  console.log(
    `try: curl --user "$(cat ${keyPath}):" http://${host}:${actualPort}/`,
  );
  console.log(`rotate the key with: npx keyfile-auth rotate ${keyPath}`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.log(`received ${signal}, stopping`);
    server.close();
    void auth.close();
  });
}
