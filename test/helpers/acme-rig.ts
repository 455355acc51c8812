// The set-up every ACME integration test shares: a temporary directory, a
// named backend, pebble (pebble.ts) and the real CLI on a config whose
// listeners the test writes around pebble's directory. Whatever started is
// stopped again if a later step fails, so a broken start leaks no process.
import { startNamedBackend, type Backend } from './backend.js';
import { startPebble, type Pebble, type PebbleOptions } from './pebble.js';
import { tempDir, type TempDir } from './process.js';
import { baseConfig, freePort, startCli, type RunningCli } from './switchyard.js';

export interface AcmeRig {
  tmp: TempDir;
  backend: Backend;
  pebble: Pebble;
  adminPort: number;
  /** The config as written (snake_case); change it, `tmp.writeConfig` it, and reload. */
  config: Record<string, unknown>;
  configFile: string;
  /** The CLI running now (replaced by `restart`). */
  cli: RunningCli;
  /** Stops the CLI and starts it again on the same config file. */
  restart(): Promise<RunningCli>;
  stop(): Promise<void>;
}

export interface AcmeRigOptions {
  pebble: PebbleOptions;
  /** The listeners (the first one is the proxy port of baseConfig), written with pebble's directory and the temporary directory. */
  listen(pebble: Pebble, dir: string): Array<{ port: number } & Record<string, unknown>>;
  /** Ports that must answer HTTP, before the admin port, for the start to count as done. */
  waitFor?: number[];
}

export async function startAcmeRig(o: AcmeRigOptions): Promise<AcmeRig> {
  const tmp = await tempDir();
  let backend: Backend | undefined;
  let pebble: Pebble | undefined;
  try {
    backend = await startNamedBackend();
    pebble = await startPebble(o.pebble);
    const listen = o.listen(pebble, tmp.dir);
    const adminPort = await freePort(new Set([...listen.map((l) => l.port), o.pebble.httpPort, o.pebble.tlsPort ?? 0]));
    const config = baseConfig({ proxyPort: listen[0]!.port, adminPort, servers: [backend.address], workers: 2 });
    config.listen = listen;
    const configFile = await tmp.writeConfig(config);
    const waitFor = [...(o.waitFor ?? []), adminPort];
    const rig: AcmeRig = {
      tmp,
      backend,
      pebble,
      adminPort,
      config,
      configFile,
      cli: await startCli(configFile, { waitFor }),
      async restart() {
        await rig.cli.stop();
        rig.cli = await startCli(configFile, { waitFor });
        return rig.cli;
      },
      async stop() {
        await rig.cli.stop();
        await pebble!.stop();
        await backend!.close();
        await tmp.remove();
      },
    };
    return rig;
  } catch (err) {
    await pebble?.stop();
    await backend?.close();
    await tmp.remove();
    throw err;
  }
}
