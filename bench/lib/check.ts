// One request before a cell's warm-up: the system must answer the scenario
// with 200 and the full body, so a proxy that fails fast cannot post big numbers.
import http from 'node:http';

export function checkOnce(url: string, method: string, body: Buffer | undefined, expectBytes: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, agent: false, timeout: 5000 }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      res.on('end', () => {
        if (res.statusCode !== 200) resolve(`status ${res.statusCode}`);
        else if (bytes !== expectBytes) resolve(`body ${bytes} bytes, expected ${expectBytes}`);
        else resolve(undefined);
      });
      res.on('error', (err) => resolve(err.message));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve(err.message));
    req.end(body);
  });
}
