import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** Debian's Chromium; CI installs the `chromium` package. Override with CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A launched headless Chromium and the profile directory it owns. */
export interface LaunchedBrowser {
  /** The browser's (persistent) context: `context.newPage()` opens a tab. */
  context: BrowserContext;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/**
 * Launches Debian's Chromium through playwright-core with the flags from the project's rules
 * (headless, no sandbox as root, no background traffic) and a fresh user data dir (mkdtemp).
 * playwright refuses `--user-data-dir` in `args`; a persistent context is how it takes one.
 * `extraArgs` are appended (e.g. `--ignore-certificate-errors-spki-list=<hash>` to trust one test
 * certificate); `ignoreHTTPSErrors` accepts any certificate (default false).
 */
export async function launchChromium({ extraArgs = [] as string[], ignoreHTTPSErrors = false } = {}): Promise<LaunchedBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'herald-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    // For pages served by a test's own CA (nginx's TLS server): the certificate is not in the profile's store.
    ignoreHTTPSErrors,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}
