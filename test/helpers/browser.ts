// A real headless Chromium (Debian's /usr/bin/chromium, installed by
// test/setup/system-deps.sh) driven by playwright-core, with a fresh profile
// in a temporary directory that is removed on close. Tests that need it call
// requireBrowser(t) first: without Chromium they fail under CI=true and skip
// visibly elsewhere.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** False (and the test skipped) when Chromium is missing outside CI; throws under CI=true. */
export function requireBrowser(t: TestContext): boolean {
  if (existsSync(CHROMIUM)) return true;
  const why = `${CHROMIUM} is missing (Debian package chromium; npm test installs it through test/setup/system-deps.sh)`;
  if (process.env.CI === 'true') throw new Error(why);
  t.skip(why);
  return false;
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** `extra.args`: more command-line flags; `ignoreHTTPSErrors`: accept a test CA's certificates. */
export async function launchBrowser(viewport = { width: 1200, height: 760 }, extra: { args?: string[]; ignoreHTTPSErrors?: boolean } = {}): Promise<Browser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'switchyard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...(extra.args ?? [])],
    viewport,
    ignoreHTTPSErrors: extra.ignoreHTTPSErrors ?? false,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
