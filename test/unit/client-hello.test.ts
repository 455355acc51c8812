// The ClientHello scan that picks a TLS listener's certificate: real
// ClientHellos from node:tls, cut at every byte (TCP may deliver them so),
// split over two TLS records (a client may), and garbage.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { before, test } from 'node:test';
import { helloBytesNeeded, scanClientHello } from '../../src/tls/client-hello.js';

/** The first bytes node:tls sends for `servername`. */
async function clientHello(servername: string | undefined, alpn?: string[]): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); })));
  const client = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', ...(servername ? { servername } : {}), ...(alpn ? { ALPNProtocols: alpn } : {}), rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

let hello: Buffer;
before(async () => {
  hello = await clientHello('Sub.Example.TEST');
});

test('the server name of a whole ClientHello, lower-cased', () => {
  assert.deepEqual(scanClientHello(hello), { kind: 'hello', servername: 'sub.example.test', acmeTls: false });
});

test('every prefix is partial: the scan waits for the rest', () => {
  for (let n = 0; n < hello.length; n++) assert.equal(scanClientHello(hello.subarray(0, n)).kind, 'partial', `prefix of ${n} bytes`);
});

test('a ClientHello split over two records is joined', () => {
  const body = hello.subarray(5);
  const cut = 40;
  const record = (payload: Buffer) => Buffer.concat([Buffer.from([22, 3, 1, payload.length >> 8, payload.length & 0xff]), payload]);
  const split = Buffer.concat([record(body.subarray(0, cut)), record(body.subarray(cut))]);
  assert.deepEqual(scanClientHello(split), { kind: 'hello', servername: 'sub.example.test', acmeTls: false });
});

test('no SNI: a hello without a name', async () => {
  const bare = await clientHello(undefined);
  assert.deepEqual(scanClientHello(bare), { kind: 'hello', servername: undefined, acmeTls: false });
});

test('attack: plain HTTP, other record types and an oversized hello are not ClientHellos', () => {
  assert.equal(scanClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).kind, 'not-hello');
  assert.equal(scanClientHello(Buffer.from([23, 3, 3, 0, 5, 1, 2, 3, 4, 5])).kind, 'not-hello');
  // A handshake message claiming 1 MB.
  assert.equal(scanClientHello(Buffer.from([22, 3, 1, 0, 4, 1, 0x10, 0, 0])).kind, 'not-hello');
  // Truncated extension lengths inside a complete message: no name, no throw.
  const mangled = Buffer.from(hello);
  mangled.writeUInt16BE(0xffff, mangled.length - 4);
  assert.doesNotThrow(() => scanClientHello(mangled));
});

test('a hello in one record is scanned once, when all of it is there', () => {
  for (let n = 9; n < hello.length; n++) assert.equal(helloBytesNeeded(hello.subarray(0, n)), hello.length);
  assert.ok(helloBytesNeeded(hello.subarray(0, 3)) <= 9);
});

test('ALPN offering "acme-tls/1" (RFC 8737) is seen, alone or among others; look-alikes are not', async () => {
  const cases: Array<[string[] | undefined, boolean]> = [
    [['acme-tls/1'], true],
    [['h2', 'acme-tls/1'], true],
    [['h2', 'http/1.1'], false],
    [['acme-tls/10', 'acme-tls/'], false],
    [undefined, false],
  ];
  for (const [alpn, expected] of cases) {
    const scan = scanClientHello(await clientHello('a.example', alpn));
    assert.deepEqual(scan, { kind: 'hello', servername: 'a.example', acmeTls: expected }, JSON.stringify(alpn));
  }
});
