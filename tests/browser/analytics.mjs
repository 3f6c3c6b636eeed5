// A supervisor reads the day's numbers on the admin page, in headless
// Chromium: the tables, the chart of sessions per day, a CSV download, and
// a bad time zone explained. Run by tests/agents.rs after a scripted day
// (three customers served in sales, three who left support unanswered).
//
// Environment: FLOWHOST (base URL), TOKEN (admin), SHOTS (a folder for
// screenshots on failure).

import { readFile } from "node:fs/promises";
import { env, launch, openPage, run, step } from "./harness.mjs";

const base = env("FLOWHOST");
const browser = await launch();
const page = await openPage(browser, { acceptDownloads: true });
const cells = (selector) => page.$$eval(`${selector} td`, (tds) => tds.map((td) => td.textContent));
await run(browser, "analytics", () => [page], async () => {
  step("the admin signs in; the week's report shows at once");
  await page.goto(`${base}/admin/ui`);
  await page.fill("#token", env("TOKEN"));
  await page.click("#sign-in-form button");
  await page.waitForSelector('#analytics-queues tr[data-key="sales"]');

  step("the report is read in UTC");
  await page.fill("#analytics-tz", "UTC");
  await page.click("#analytics-form button");
  await page.waitForFunction(() => document.getElementById("analytics-period").textContent.includes("days in UTC"));
  const connector = await cells('#analytics-connectors tr[data-key="dm"]');
  // connector, day, started, answered, unanswered, ended by bot, to a queue, missed
  const counts = connector.slice(2).join(" ");
  if (counts !== "6 3 3 0 6 3") throw new Error(`the connector row says ${connector}`);
  const sales = await cells('#analytics-queues tr[data-key="sales"]');
  if (sales.slice(1, 4).join(" ") !== "3 0 0") throw new Error(`the sales row says ${sales}`);
  const ana = await cells('#analytics-agents tr[data-key="ana"]');
  if (ana[1] !== "3") throw new Error(`ana's row says ${ana}`);
  const decision = await cells('#analytics-decisions tr[data-key="menu.ask"]');
  if (!decision[2].includes("target-0: 3")) throw new Error(`the decision row says ${decision}`);

  step("the chart has a day's three bars, the tallest for the six started");
  const bars = await page.$$eval("#days-chart rect", (rects) => rects.map((r) => [r.getAttribute("class"), Number(r.getAttribute("height"))]));
  if (bars.length !== 3) throw new Error(`the chart has ${bars.length} bars`);
  const [started, answered, missed] = bars;
  if (!(started[1] > answered[1] && answered[1] === missed[1] && missed[1] > 0)) throw new Error(`bars ${JSON.stringify(bars)}`);

  step("the queues section downloads as CSV");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('#analytics-csv button[data-csv="queues"]')]);
  const csv = await readFile(await download.path(), "utf8");
  if (!csv.startsWith("queue,taken,") || !csv.includes("\r\nsales,3,0,0,")) throw new Error(`the CSV is ${csv}`);

  step("a time zone that does not exist is explained");
  await page.fill("#analytics-tz", "Nowhere/Town");
  await page.click("#analytics-form button");
  await page.waitForSelector("#analytics-error:not([hidden])");
  const error = await page.textContent("#analytics-error");
  if (!error.includes("Nowhere/Town")) throw new Error(`the error says ${error}`);
  step("done");
});
