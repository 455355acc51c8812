import { startTarget, runCase } from './driver.js';
import { generateCase, connBytes } from './generate.js';
const t = await startTarget();
let next = 0;
await Promise.all([0, 1, 2, 3].map(async () => {
  while (next < 2000) {
    const fc = generateCase(5, next++);
    const obs = await runCase(t.sy.port, fc);
    obs.forEach((o, c) => o.responses.forEach((r, p) => {
      if (r.status === 504 || r.status === 408) console.log(fc.index, c, p, r.status, fc.conns[c]!.messages[p]?.cls, fc.conns[c]!.messages[p]?.what.join(';'), JSON.stringify(connBytes(fc.conns[c]!).toString('latin1')).slice(0, 1500));
    }));
  }
}));
await t.stop();
