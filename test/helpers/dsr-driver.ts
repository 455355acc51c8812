// Runs a DsrForwarder inside a lab namespace (test/helpers/netns.ts starts it
// with `lab.node(lab.balancer, DSR_DRIVER)`) and does what the parent asks
// over IPC: { id, op: 'open' | 'setServers' | 'counters' | 'close' | 'region', ... }
// answered with { id, ok, result } or { id, ok: false, error, code }. Also
// creates a shared region on request ('region') so tests can flip health bits.
import { DsrForwarder } from '../../src/native/dsr.ts';
import { addon, type NativeRegion } from '../../src/native/addon.ts';
import { regionName } from '../../src/native/region.ts';

type Request = { id: number; op: string; [key: string]: unknown };

let forwarder: DsrForwarder | undefined;
let region: NativeRegion | undefined;

process.on('message', (msg: Request) => {
  const reply = (body: object) => process.send!({ id: msg.id, ...body });
  try {
    let result: unknown;
    switch (msg.op) {
      case 'open':
        forwarder = DsrForwarder.open(msg.options as never, msg.servers as never);
        break;
      case 'setServers':
        forwarder!.setServers(msg.servers as never, msg.region as string | null);
        break;
      case 'counters':
        result = forwarder!.counters();
        break;
      case 'close':
        forwarder?.close();
        forwarder = undefined;
        break;
      case 'region':
        region = addon().Region.create(regionName(), msg.identities as string[], 1, 0);
        result = region.info().name;
        break;
      case 'setState':
        region!.setState(msg.server as number, msg.bits as number);
        break;
      default:
        throw new Error(`unknown op ${msg.op}`);
    }
    reply({ ok: true, result });
  } catch (err) {
    reply({ ok: false, error: (err as Error).message, code: (err as { code?: string }).code });
  }
});
process.on('disconnect', () => {
  forwarder?.close();
  if (region) addon().Region.unlink(region.info().name);
  process.exit(0);
});
process.send!({ ready: true });
