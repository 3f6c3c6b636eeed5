// The admin page: works only through the admin API, with the token the
// admin typed (kept for this tab only).
"use strict";

const $ = (selector) => document.querySelector(selector);
const SECTIONS = ["connectors", "time_conditions", "automessages", "decision_trees", "chatbots", "queues", "terminates"];
let token = sessionStorage.getItem("flowhost-admin-token") || "";

async function api(method, path, body, type) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = type || "application/json";
  const response = await fetch(`/admin${path}`, { method, headers, body });
  const text = await response.text();
  let value = text;
  try { value = JSON.parse(text); } catch (_) { /* YAML or SVG */ }
  if (!response.ok) {
    const error = new Error(value.error ? value.error.message : `${response.status} ${text}`);
    error.issues = (value.error && value.error.issues) || [];
    throw error;
  }
  return value;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function showIssues(errors, warnings) {
  const box = $("#validation");
  box.replaceChildren();
  if (!errors.length && !warnings.length) {
    box.append(element("p", "The sandbox is valid.", "ok"));
    return;
  }
  const list = element("ul");
  for (const issue of errors) list.append(element("li", `error: ${describeIssue(issue)}`, "error"));
  for (const issue of warnings) list.append(element("li", `warning: ${describeIssue(issue)}`));
  box.append(list);
}

// As `flowhost validate` prints it: the path, where it stands in the text
// sent (when it came as text), and what is wrong.
function describeIssue(issue) {
  const at = issue.at ? ` (line ${issue.at.line}, column ${issue.at.column})` : "";
  return `${issue.path}${at}: ${issue.message}`;
}

async function showDiagram(which, section, name) {
  const svg = await api("GET", `/diagram/${which}/${section}/${encodeURIComponent(name)}`);
  const image = $("#diagram-img");
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  $("#diagram-caption").textContent = `${section}.${name} in ${which}`;
  $("#diagram").hidden = false;
}

function entitiesTable(production, sandbox, changes) {
  const status = new Map(changes.map((c) => [`${c.section}.${c.name}`, c.change]));
  const body = $("#entities tbody");
  body.replaceChildren();
  for (const section of SECTIONS) {
    const names = new Set([...Object.keys(production[section] || {}), ...Object.keys(sandbox[section] || {})]);
    for (const name of [...names].sort()) {
      const key = `${section}.${name}`;
      const change = status.get(key) || "same";
      const row = element("tr");
      row.dataset.entity = key;
      row.append(element("td", key));
      row.append(element("td", name in (production[section] || {}) ? "yes" : "-"));
      row.append(element("td", name in (sandbox[section] || {}) ? change : "removed", change));
      const cell = element("td");
      for (const which of ["production", "sandbox"]) {
        if (!(name in ((which === "production" ? production : sandbox)[section] || {}))) continue;
        const button = element("button", which);
        button.type = "button";
        button.dataset.diagram = which;
        button.addEventListener("click", () => showDiagram(which, section, name).catch(report));
        cell.append(button);
      }
      row.append(cell);
      body.append(row);
    }
  }
}

function diffList(changes) {
  const list = $("#diff");
  list.replaceChildren();
  if (!changes.length) list.append(element("li", "No changes: the sandbox is production."));
  for (const change of changes) {
    const sign = { added: "+", removed: "-" }[change.change] || "~";
    const item = element("li", `${sign} ${change.section}.${change.name}`);
    const fields = element("ul");
    for (const field of change.fields || []) {
      const old = field.old === undefined ? "(none)" : JSON.stringify(field.old);
      const now = field.new === undefined ? "(none)" : JSON.stringify(field.new);
      fields.append(element("li", `${field.path}: ${old} → ${now}`));
    }
    item.append(fields);
    list.append(item);
  }
}

// The uploads production and the sandbox pin (name -> SHA-256), side by side.
function pluginsTable(productionPins, sandboxPins) {
  const body = $("#plugins tbody");
  body.replaceChildren();
  const short = (hash) => (hash ? hash.slice(0, 12) : "-");
  const names = new Set([...Object.keys(productionPins), ...Object.keys(sandboxPins)]);
  for (const name of [...names].sort()) {
    const row = element("tr");
    row.dataset.plugin = name;
    row.append(element("td", name));
    row.append(element("td", short(productionPins[name])));
    row.append(element("td", short(sandboxPins[name])));
    const cell = element("td");
    if (sandboxPins[name]) {
      const button = element("button", "Remove from the sandbox");
      button.type = "button";
      button.addEventListener("click", () => unpin(name).catch(report));
      cell.append(button);
    }
    row.append(cell);
    body.append(row);
  }
}

function historyTable(versions) {
  const body = $("#history tbody");
  body.replaceChildren();
  for (const version of versions) {
    const row = element("tr");
    row.dataset.version = version.number;
    row.append(element("td", `${version.number}${version.production ? " (production)" : ""}`));
    row.append(element("td", new Date(version.applied_at_ms).toISOString()));
    row.append(element("td", version.applied_by));
    row.append(element("td", version.comment));
    const cell = element("td");
    if (!version.production) {
      const button = element("button", "Roll back to this");
      button.type = "button";
      button.addEventListener("click", () => rollback(version.number).catch(report));
      cell.append(button);
    }
    row.append(cell);
    body.append(row);
  }
}

async function refresh() {
  const [sandbox, diff, versions, yaml] = await Promise.all([
    api("GET", "/sandbox"),
    api("GET", "/diff"),
    api("GET", "/versions"),
    api("GET", "/sandbox?format=yaml"),
  ]);
  const live = versions.versions.length ? await api("GET", "/versions/production") : { document: {}, plugins: {} };
  const production = live.document;
  pluginsTable(live.plugins || {}, sandbox.plugins || {});
  const current = versions.versions.find((v) => v.production);
  $("#summary").textContent = `production: version ${current ? current.number : "none"} · sandbox based on ${sandbox.based_on}` +
    (sandbox.validation.valid ? "" : " · the sandbox does not validate");
  entitiesTable(production, sandbox.document, diff.changes);
  diffList(diff.changes);
  historyTable(versions.versions);
  $("#document").value = yaml;
  showIssues(sandbox.validation.errors, sandbox.validation.warnings);
}

function signedIn() {
  $("#sign-in-form").hidden = true;
  $("#workspace").hidden = false;
  document.dispatchEvent(new Event("flowhost:signed-in"));
}

function report(error) {
  $("#apply-result").textContent = error.message;
  $("#apply-result").className = "error";
  if (error.issues && error.issues.length) showIssues(error.issues, []);
}

async function rollback(number) {
  const answer = await api("POST", `/versions/${number}/rollback`, JSON.stringify({}));
  await refresh();
  $("#apply-result").textContent = `Rolled back: version ${answer.version.number} is production.`;
  $("#apply-result").className = "ok";
}

$("#sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("#token").value;
  try {
    await refresh();
    sessionStorage.setItem("flowhost-admin-token", token);
    signedIn();
  } catch (error) {
    $("#sign-in-error").textContent = `Sign-in failed: ${error.message}`;
    $("#sign-in-error").hidden = false;
  }
});

$("#file").addEventListener("change", async () => {
  const file = $("#file").files[0];
  if (file) $("#document").value = await file.text();
});

$("#upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const saved = await api("PUT", "/sandbox", $("#document").value, "application/yaml");
    await refresh();
    // The answer to the upload locates each problem in the text just sent
    // (the stored sandbox, which refresh shows, has no text to point into).
    showIssues(saved.validation.errors, saved.validation.warnings);
    $("#apply-result").textContent = "";
  } catch (error) {
    report(error);
  }
});

async function unpin(name) {
  await api("DELETE", `/sandbox/plugins/${encodeURIComponent(name)}`);
  await refresh();
}

$("#plugin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("#plugin-file").files[0];
  if (!file) return;
  try {
    const answer = await api("POST", "/plugins", file, "application/wasm");
    await refresh();
    $("#apply-result").textContent =
      `Uploaded ${answer.plugin.name} ${answer.plugin.version} (${answer.plugin.sha256.slice(0, 12)}) into the sandbox.`;
    $("#apply-result").className = "ok";
  } catch (error) {
    report(error);
  }
});

$("#apply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const answer = await api("POST", "/apply", JSON.stringify({ comment: $("#comment").value }));
    await refresh();
    $("#apply-result").textContent = `Applied: version ${answer.version.number} is production.`;
    $("#apply-result").className = "ok";
  } catch (error) {
    report(error);
  }
});

if (token) {
  $("#token").value = token;
  refresh().then(signedIn).catch(() => sessionStorage.removeItem("flowhost-admin-token"));
}
