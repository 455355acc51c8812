// The DSR forwarder process: the primary forks it (child_process, not a
// cluster worker: it serves no socket of the cluster, loads none of the
// proxy, and must not be counted or asked for metrics as a worker). It runs
// one native DsrForwarder per `dsr:` entry (packet threads off this event
// loop), applies the plans the primary sends on start and reload, and
// answers counter requests. It exits when the primary tells it to, or when
// the primary is gone (the IPC channel closes): a forwarder must not keep
// answering ARP for a VIP nobody supervises.
import { DsrForwarder } from '../native.js';
import { isToForwarder, type DsrEntryErrors, type FromForwarder } from './messages.js';
import type { DsrPlanEntry } from './plan.js';

const running = new Map<string, DsrForwarder>();
/** Keys of the last plan, in its order (counters answer in this order). */
let order: string[] = [];

function apply(entries: DsrPlanEntry[]): DsrEntryErrors {
  const keep = new Set(entries.map((e) => e.key));
  for (const [key, forwarder] of running) {
    if (!keep.has(key)) {
      forwarder.close();
      running.delete(key);
    }
  }
  order = entries.map((e) => e.key);
  return entries.map((e) => {
    try {
      const forwarder = running.get(e.key);
      // Same interface, VIP, ports and method: a new server set, live flows keep their servers.
      if (forwarder) forwarder.setServers(e.servers, e.options.region);
      else running.set(e.key, DsrForwarder.open(e.options, e.servers));
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  });
}

function stop(code: number): never {
  for (const forwarder of running.values()) forwarder.close();
  running.clear();
  process.exit(code);
}

function send(message: FromForwarder): void {
  if (process.connected) process.send!(message);
}

if (process.send === undefined) {
  process.stderr.write('the DSR forwarder process is started by the switchyard primary, not by hand\n');
  process.exit(2);
}
process.on('message', (m: unknown) => {
  if (!isToForwarder(m)) return;
  switch (m.type) {
    case 'dsr-apply':
      send({ type: 'dsr-applied', id: m.id, errors: apply(m.entries) });
      break;
    case 'dsr-counters-request':
      send({ type: 'dsr-counters', id: m.id, counters: order.map((key) => running.get(key)?.counters() ?? null) });
      break;
    case 'dsr-stop':
      stop(0);
  }
});
process.on('disconnect', () => stop(0));
process.on('SIGTERM', () => stop(0));
// A terminal's Ctrl-C reaches the whole process group: the primary decides when this process stops.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
