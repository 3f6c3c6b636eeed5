// An admin connects an Instagram account from the admin page, in headless
// Chromium: "Authorise your Instagram Business Account" goes to Meta's
// authorization window (the stand-in approves at once) and back to
// flowhost's callback page; the account then shows as connected, its token
// is refreshed from the page, and after Meta revoked it the page says
// "reconnect needed" and reconnects it. Run by tests/publishing.rs, which
// checks what Meta's stand-in saw.
//
// Environment: FLOWHOST (base URL), TOKEN (admin), ACCOUNT (the
// professional account's id), SHOTS (a folder for screenshots on failure).

import { env, launch, openPage, run, step } from "./harness.mjs";

const base = env("FLOWHOST");
const account = env("ACCOUNT");
const row = `#instagram-accounts tr[data-account="${account}"]`;
const browser = await launch();
const page = await openPage(browser);

async function connect() {
  await page.waitForSelector("#instagram-connect:not([hidden])");
  await page.click("#instagram-connect");
  await page.waitForURL(/\/admin\/ui\/instagram\/callback/);
  await page.waitForSelector('#instagram-callback[data-outcome="connected"]');
  const text = await page.textContent("#instagram-callback");
  if (!text.includes("@shop.ig") || !text.includes(account)) throw new Error(`the callback page says: ${text}`);
  await page.click('a[href="/admin/ui"]');
  await page.waitForSelector("#workspace:not([hidden])");
}

await run(browser, "instagram", () => [page], async () => {
  step("the admin signs in; no account is connected yet");
  await page.goto(`${base}/admin/ui`);
  await page.fill("#token", env("TOKEN"));
  await page.click("#sign-in-form button");
  await page.waitForSelector("#workspace:not([hidden])");
  await page.waitForSelector("#instagram-connect:not([hidden])");
  if (await page.$(row)) throw new Error("an account is connected before any login");

  step("authorise the Instagram Business Account: Meta's window, then flowhost's callback page");
  await connect();

  step("back on the admin page, still signed in, the account is connected");
  await page.waitForSelector(`${row}[data-state="connected"]`);

  step("the token is refreshed from the page");
  const before = await page.textContent(`${row} td:nth-child(3)`);
  await page.click(`${row} button:has-text("Refresh the token")`);
  await page.waitForFunction(([cell, before]) => document.querySelector(cell).textContent !== before,
    [`${row} td:nth-child(3)`, before]);
  if (await page.getAttribute(row, "data-state") !== "connected") throw new Error("not connected after the refresh");

  step("waiting for the test to revoke the token at Meta and send: the page shows reconnect needed");
  const deadline = Date.now() + 60000;
  for (;;) {
    await page.reload();
    await page.waitForSelector(row);
    if (await page.getAttribute(row, "data-state") === "reconnect_needed") break;
    if (Date.now() > deadline) throw new Error("the account never showed reconnect needed");
    await page.waitForTimeout(250);
  }
  const state = await page.textContent(`${row} td:nth-child(2)`);
  if (!state.includes("reconnect needed")) throw new Error(`the state cell says: ${state}`);

  step("reconnect from the page");
  await page.click(`${row} button:has-text("Reconnect")`);
  await page.waitForURL(/\/admin\/ui\/instagram\/callback/);
  await page.waitForSelector('#instagram-callback[data-outcome="connected"]');
  await page.click('a[href="/admin/ui"]');
  await page.waitForSelector(`${row}[data-state="connected"]`);
  step("done");
});
