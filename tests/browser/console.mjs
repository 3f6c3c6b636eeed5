// Two agents work one conversation in the agent console, in headless
// Chromium: sign in, go online, see the offer ring, accept, reply, transfer,
// close. The customer writes through signed webhooks. Run by
// tests/agents.rs, which checks what reached the Graph API stand-in.
//
// Environment: FLOWHOST (base URL), TOKEN_A, TOKEN_B, AGENT_B (id),
// APP_SECRET, IG_ID, CUSTOMER, REPLY, CAUSE, SHOTS (a folder for
// screenshots on failure).

import { createHmac } from "node:crypto";
import { env, launch, openPage, run, step } from "./harness.mjs";

const base = env("FLOWHOST");
const customer = env("CUSTOMER");

async function customerWrites(text, n) {
  const now = Date.now() + n;
  const body = JSON.stringify({
    object: "instagram",
    entry: [{
      id: env("IG_ID"),
      time: now,
      messaging: [{
        sender: { id: customer },
        recipient: { id: env("IG_ID") },
        timestamp: now,
        message: { mid: `browser-${customer}-${n}`, text },
      }],
    }],
  });
  const signature = "sha256=" + createHmac("sha256", env("APP_SECRET")).update(body).digest("hex");
  const response = await fetch(`${base}/webhooks/instagram`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Hub-Signature-256": signature },
    body,
  });
  if (response.status !== 200) throw new Error(`webhook answered ${response.status}`);
}

async function signIn(browser, token) {
  const page = await openPage(browser);
  await page.goto(`${base}/console`);
  await page.fill("#token", token);
  await page.click("#sign-in-form button");
  await page.waitForSelector("#desk:not([hidden])");
  await page.selectOption("#status", "online");
  await page.waitForFunction(() => document.getElementById("live").textContent === "live");
  return page;
}

const browser = await launch();
const pages = [];
await run(browser, "agent", () => pages, async () => {
  step("two agents sign in and go online");
  const ana = await signIn(browser, env("TOKEN_A"));
  const bo = await signIn(browser, env("TOKEN_B"));
  pages.push(ana, bo);

  step("the customer writes; the offer rings for both");
  await customerWrites("hello", 0);
  await customerWrites("I need a person", 1);
  for (const page of [ana, bo]) {
    await page.waitForSelector(`#offers li.ringing[data-customer="${customer}"]`, { timeout: 20000 });
  }
  if (!(await ana.title()).startsWith("(1) offer")) throw new Error("the tab title does not show the offer");

  step("ana accepts; the offer stops ringing for bo");
  await ana.click(`#offers li[data-customer="${customer}"] button`);
  await ana.waitForSelector(`#mine li[data-customer="${customer}"]`);
  await bo.waitForSelector(`#offers li[data-customer="${customer}"]`, { state: "detached" });

  step("ana opens it, reads the history and replies");
  await ana.click(`#mine li[data-customer="${customer}"]`);
  await ana.waitForSelector("#conversation:not([hidden])");
  await ana.waitForFunction(() => document.getElementById("c-history").textContent.includes("I need a person"));
  const windowText = await ana.textContent("#c-window");
  if (!/window: 6d 23h/.test(windowText)) throw new Error(`the window shows "${windowText}"`);
  await ana.fill("#reply-text", env("REPLY"));
  await ana.click("#reply-form button");
  await ana.waitForFunction((text) => document.getElementById("c-history").textContent.includes(text), env("REPLY"));

  if (process.env.SHOTS) await ana.screenshot({ path: `${process.env.SHOTS}/conversation.png` });

  step("the customer answers; the conversation updates live");
  await customerWrites("thanks, one more question", 2);
  await ana.waitForFunction(() => document.getElementById("c-history").textContent.includes("one more question"), null, { timeout: 20000 });

  step("ana transfers it to bo");
  await ana.selectOption("#transfer-kind", "agent");
  await ana.fill("#transfer-target", env("AGENT_B"));
  await ana.click("#transfer-form button");
  await ana.waitForSelector(`#mine li[data-customer="${customer}"]`, { state: "detached" });
  await bo.waitForSelector(`#mine li[data-customer="${customer}"]`, { timeout: 20000 });

  step("bo closes it");
  await bo.click(`#mine li[data-customer="${customer}"]`);
  await bo.waitForSelector("#conversation:not([hidden])");
  await bo.fill("#close-cause", env("CAUSE"));
  await bo.click("#close-form button");
  await bo.waitForSelector(`#mine li[data-customer="${customer}"]`, { state: "detached" });
  await bo.waitForSelector("#conversation[hidden]", { state: "attached" });
  step("done");
});
