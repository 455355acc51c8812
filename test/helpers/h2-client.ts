// Node's own HTTP/2 client, wrapped for tests: a session (h2c or TLS), one
// request on a session, resolved with the status, headers, body and (when
// the server reset the stream) the RST_STREAM code.
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

export interface H2Response {
  status: number | undefined;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The stream's RST_STREAM code when it did not end normally (0 otherwise). */
  rstCode: number;
}

export interface H2ConnectOptions {
  /** HTTP/2 over TLS (ALPN h2) with this SNI name, verified against `ca` (PEM); absent: h2c with prior knowledge. */
  tls?: { servername: string; ca: string | Buffer };
  /**
   * Resolve once the server's SETTINGS have arrived instead of at connect: Node
   * sends `:protocol` (extended CONNECT, RFC 8441) only after SETTINGS_ENABLE_CONNECT_PROTOCOL.
   */
  remoteSettings?: boolean;
}

/** A session to 127.0.0.1:`port`; rejects if it fails before it is ready. */
export function h2Connect(port: number, o: H2ConnectOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = o.tls ? http2.connect(`https://127.0.0.1:${port}`, o.tls) : http2.connect(`http://127.0.0.1:${port}`);
    session.once(o.remoteSettings ? 'remoteSettings' : 'connect', () => resolve(session));
    session.once('error', reject);
  });
}

export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Response> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ...headers }, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let status: number | undefined;
    let responseHeaders: IncomingHttpHeaders = {};
    stream.on('response', (h) => {
      responseHeaders = h;
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('close', () => resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0 }));
    if (body !== undefined) stream.end(body);
  });
}

/** One request on a fresh session, closed afterwards. */
export async function h2Get(port: number, path: string, headers: OutgoingHttpHeaders = {}): Promise<H2Response> {
  const session = await h2Connect(port);
  try {
    return await h2Request(session, { ':path': path, ...headers });
  } finally {
    session.close();
  }
}
