// What every browser script shares: its environment, its step lines (the
// Rust side checks that `step: done` was reached), Debian's Chromium, and
// a page that reports the page's own errors.

import { chromium } from "playwright-core";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const step = (text) => console.log(`step: ${text}`);

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

// A fresh page (in its own context, so its session storage is its own).
export async function openPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.on("pageerror", (error) => console.log(`page error: ${error.message}`));
  page.on("console", (message) => { if (message.type() === "error") console.log(`console: ${message.text()}`); });
  return page;
}

// Runs `steps`; on failure saves a screenshot of each page in `pages()` to
// SHOTS and exits non-zero; always closes the browser.
export async function run(browser, name, pages, steps) {
  try {
    await steps();
  } catch (error) {
    const shots = process.env.SHOTS;
    if (shots) {
      for (const [i, page] of pages().entries()) {
        await page.screenshot({ path: `${shots}/${name}-${i}.png`, fullPage: true }).catch(() => {});
      }
    }
    console.error(`FAILED: ${error.stack || error}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
