// Holds N long-lived HTTP streams open (GET URL on fresh connections; the
// lab's servers answer /stream with their name every 100 ms) and reports on
// each over IPC: { op: 'status' } -> [{ names, lines, error, ended }]. Runs in
// a lab namespace (DsrLab.node), so the connections start from the client.
import http from 'node:http';

const [url, count] = [process.argv[2]!, Number(process.argv[3])];

interface Stream {
  names: Set<string>;
  lines: number;
  error: string | null;
  ended: boolean;
}

const streams: Stream[] = [];
let opened = 0;
for (let i = 0; i < count; i++) {
  const s: Stream = { names: new Set(), lines: 0, error: null, ended: false };
  streams.push(s);
  const req = http.get(url, { agent: false }, (res) => {
    opened++;
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const p of parts) {
        s.names.add(p);
        s.lines++;
      }
    });
    res.on('error', (e) => (s.error = e.message));
    res.on('end', () => (s.ended = true));
    res.on('close', () => {
      if (!res.complete && s.error === null) s.error = 'closed before the end';
    });
  });
  req.on('error', (e) => (s.error = e.message));
}

process.on('message', (m: { id: number; op: string }) => {
  if (m.op === 'status') {
    process.send!({ id: m.id, opened, streams: streams.map((s) => ({ names: [...s.names], lines: s.lines, error: s.error, ended: s.ended })) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
