import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** A request from `node:http` or the `node:http2` compatibility API. */
export type Request = IncomingMessage | Http2ServerRequest;

/** A response from `node:http` or the `node:http2` compatibility API. */
export type Response = ServerResponse | Http2ServerResponse;

/** The members of `Response` used here, which both kinds share. */
interface WritableResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  setHeader(name: string, value: string | number): unknown;
  end(chunk?: string): unknown;
}

const DUPLICATE_BODY = "The request has more than one Authorization header\n";

/**
 * Builds the Basic challenge (RFC 7617, section 2). The realm is a
 * quoted-string, in which `"` and `\` are escaped (RFC 9110, section 5.6.4).
 */
export function basicChallenge(realm: string): string {
  const quoted = realm.replace(/["\\]/g, "\\$&");
  return `Basic realm="${quoted}", charset="UTF-8"`;
}

/** Sends 401 with the challenge, and the body unless the method is HEAD. */
export function sendUnauthorized(
  req: Request,
  res: Response,
  challenge: string,
  body: string,
): void {
  const response = res as WritableResponse;
  if (response.headersSent || response.writableEnded) {
    return;
  }
  response.statusCode = 401;
  response.setHeader("WWW-Authenticate", challenge);
  sendText(req, response, body);
}

/** Sends 400 for a request with more than one `Authorization` field. */
export function sendDuplicateAuthorization(req: Request, res: Response): void {
  const response = res as WritableResponse;
  if (response.headersSent || response.writableEnded) {
    return;
  }
  response.statusCode = 400;
  sendText(req, response, DUPLICATE_BODY);
}

function sendText(req: Request, res: WritableResponse, body: string): void {
  const isHead = req.method === "HEAD";
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  if (isHead) {
    res.end();
  } else {
    res.end(body);
  }
}
