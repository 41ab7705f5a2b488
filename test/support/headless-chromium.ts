/**
 * Debian's Chromium driven by playwright-core for the dashboard's browser tests: where it is, whether
 * it is installed (a suite skips, saying so, where it is not), how it is launched, and where
 * screenshots go (test-output/, kept for a person to look at).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { REPO_ROOT } from '../../scripts/local-node.ts';

const CHROMIUM = '/usr/bin/chromium';

export const SCREENSHOT_DIR = join(REPO_ROOT, 'test-output');

/** Whether Chromium is installed; when not, logs that `suite` is skipped and how to install it. */
export function chromiumAvailable(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  console.log(`[${suite}] skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);
  return false;
}

/** Headless, offline (no background fetches, no updates), and with the screenshot folder ready. */
export async function launchChromium(): Promise<Browser> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
