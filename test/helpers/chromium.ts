/**
 * Headless Chromium for page tests: the Debian package at /usr/bin/chromium
 * (or CHROMIUM_PATH), driven by playwright-core. Never downloads a browser.
 */
import { existsSync } from 'node:fs';
import { after } from 'node:test';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags for a quiet, offline, headless Chromium in a container. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Why page tests cannot run here, or undefined when Chromium is present.
 * Under CI a missing Chromium is a failure, not a skip: it throws.
 */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  const why = `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
  if (process.env.CI) throw new Error(`${why}: CI must run the page tests`);
  return why;
}

/** Launches one Chromium for the whole test file; it is closed when the file ends. */
export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS], headless: true, timeout: 60_000 });
  after(() => browser.close());
  return browser;
}
