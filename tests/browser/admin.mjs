// An admin publishes from the admin page, in headless Chromium: sign in,
// see production and the sandbox side by side, view a diagram, upload a
// flow, see the diff, apply, upload a plugin and take it out, roll back.
// Run by tests/publishing.rs, which checks the versions and what customers
// get.
//
// Environment: FLOWHOST (base URL), TOKEN (admin), FLOW (the YAML to
// upload), PLUGIN (a component file to upload), SHOTS (a folder for
// screenshots on failure).

import { env, launch, openPage, run, step } from "./harness.mjs";

const base = env("FLOWHOST");
const browser = await launch();
const page = await openPage(browser);
await run(browser, "admin", () => [page], async () => {
  step("a wrong token is refused");
  await page.goto(`${base}/admin/ui`);
  await page.fill("#token", "not-the-admin-token-but-long-enough-000");
  await page.click("#sign-in-form button");
  await page.waitForSelector("#sign-in-error:not([hidden])");

  step("the admin signs in and sees production and the sandbox");
  await page.fill("#token", env("TOKEN"));
  await page.click("#sign-in-form button");
  await page.waitForSelector("#workspace:not([hidden])");
  await page.waitForFunction(() => document.getElementById("summary").textContent.includes("production: version 1"));
  await page.waitForSelector('#entities tr[data-entity="connectors.dm"]');

  step("the connector's diagram tree is an image");
  await page.click('#entities tr[data-entity="connectors.dm"] button[data-diagram="production"]');
  await page.waitForFunction(() => {
    const image = document.getElementById("diagram-img");
    return image.complete && image.naturalWidth > 200 && image.src.startsWith("blob:");
  });

  step("a flow is uploaded into the sandbox; the diff shows it");
  await page.fill("#document", env("FLOW"));
  await page.click("#upload-form button");
  await page.waitForFunction(() => document.getElementById("diff").textContent.includes("~ decision_trees.menu"));
  await page.waitForFunction(() => document.getElementById("diff").textContent.includes("Welcome v2"));
  const sandboxCell = await page.textContent('#entities tr[data-entity="decision_trees.menu"] td:nth-child(3)');
  if (sandboxCell.trim() !== "changed") throw new Error(`the sandbox column says ${sandboxCell}`);

  step("an invalid sandbox: apply shows every error in place and changes nothing");
  const broken = env("FLOW").replace("go: { automessage: later }", "go: { automessage: nowhere }");
  await page.fill("#document", broken);
  await page.click("#upload-form button");
  await page.waitForFunction(() => document.getElementById("validation").textContent.includes("automessages.nowhere") ||
    document.getElementById("validation").textContent.includes("nowhere"));
  // The error names the line of the YAML just sent.
  const line = broken.split("\n").findIndex((l) => l.includes("automessage: nowhere")) + 1;
  await page.waitForFunction((line) => document.getElementById("validation").textContent.includes(`(line ${line}, column`), line);
  await page.click("#apply-form button");
  await page.waitForFunction(() => document.getElementById("apply-result").className === "error");
  await page.waitForFunction(() => document.getElementById("summary").textContent.includes("production: version 1"));

  step("the valid flow is applied");
  await page.fill("#document", env("FLOW"));
  await page.click("#upload-form button");
  await page.waitForFunction(() => document.getElementById("validation").textContent.includes("The sandbox is valid."));
  await page.fill("#comment", "from the browser");
  await page.click("#apply-form button");
  await page.waitForFunction(() => document.getElementById("apply-result").textContent.includes("version 2 is production"));
  await page.waitForSelector('#history tr[data-version="2"]');
  await page.waitForFunction(() => document.getElementById("diff").textContent.includes("No changes"));

  if (process.env.SHOTS) await page.screenshot({ path: `${process.env.SHOTS}/admin-applied.png`, fullPage: true });

  step("a plugin component is uploaded into the sandbox, then taken out");
  await page.setInputFiles("#plugin-file", env("PLUGIN"));
  await page.click("#plugin-form button");
  await page.waitForFunction(() => document.getElementById("apply-result").textContent.includes("Uploaded greet"));
  await page.waitForSelector('#plugins tr[data-plugin="greet"]');
  const pinned = await page.textContent('#plugins tr[data-plugin="greet"] td:nth-child(3)');
  if (!/^[0-9a-f]{12}$/.test(pinned.trim())) throw new Error(`the sandbox pin reads ${pinned}`);
  await page.waitForFunction(() => document.getElementById("diff").textContent.includes("+ plugins.greet"));
  await page.click('#plugins tr[data-plugin="greet"] button');
  await page.waitForFunction(() => !document.querySelector('#plugins tr[data-plugin="greet"]'));

  step("the admin rolls back to version 1");
  await page.click('#history tr[data-version="1"] button');
  await page.waitForFunction(() => document.getElementById("apply-result").textContent.includes("version 3 is production"));
  await page.waitForFunction(() => document.getElementById("summary").textContent.includes("production: version 3"));
  step("done");
});
