// The admin page's analytics: a period's report as tables, a chart of
// sessions per day, and each section as a CSV download. Uses `api`,
// `element` and `$` from app.js (loaded first).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const CSV_SECTIONS = ["connectors", "decisions", "chatbots", "queues", "agents"];

function periodQuery() {
  const params = new URLSearchParams();
  for (const [name, id] of [["from", "#analytics-from"], ["to", "#analytics-to"], ["tz", "#analytics-tz"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params.toString();
}

function seconds(ms) {
  return ms === null || ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`;
}

function fillTable(selector, rows) {
  const body = $(`${selector} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const row = element("tr");
    const cell = element("td", "Nothing in this period.");
    cell.colSpan = $(`${selector} thead tr`).children.length;
    row.append(cell);
    body.append(row);
  }
  for (const values of rows) {
    const row = element("tr");
    row.dataset.key = values[0];
    for (const value of values) row.append(element("td", String(value)));
    body.append(row);
  }
}

function svgNode(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Started, answered and missed sessions per day (all connectors), as
// groups of three bars.
function drawDays(connectors) {
  const chart = $("#days-chart");
  chart.replaceChildren();
  const days = new Map();
  for (const c of connectors) {
    const day = days.get(c.day) || { started: 0, answered: 0, missed: 0 };
    day.started += c.started;
    day.answered += c.answered;
    day.missed += c.missed;
    days.set(c.day, day);
  }
  const entries = [...days.entries()].sort();
  const height = 150;
  const most = Math.max(1, ...entries.map(([, d]) => d.started));
  const group = Math.max(24, Math.min(80, 600 / Math.max(1, entries.length)));
  chart.setAttribute("width", String(Math.max(640, 40 + group * entries.length)));
  entries.forEach(([day, counts], index) => {
    const x = 20 + index * group;
    ["started", "answered", "missed"].forEach((kind, k) => {
      const barHeight = Math.round((counts[kind] / most) * (height - 20));
      const bar = svgNode("rect", {
        x: x + k * (group / 4), y: height - barHeight, width: group / 4 - 2, height: barHeight, class: kind,
      });
      bar.append(svgNode("title", {}, `${day}: ${counts[kind]} ${kind}`));
      chart.append(bar);
    });
    chart.append(svgNode("text", { x, y: height + 20, "font-size": 10 }, day.slice(5)));
  });
}

function showReport(report) {
  $("#analytics-period").textContent = `${report.from} to ${report.to}, days in ${report.time_zone}`;
  drawDays(report.connectors);
  fillTable("#analytics-connectors", report.connectors.map((c) =>
    [c.connector, c.day, c.started, c.answered, c.unanswered, c.ended_by_bot, c.handed_to_queue, c.missed]));
  fillTable("#analytics-queues", report.queues.map((q) =>
    [q.queue, q.taken, q.moved, q.abandoned, seconds(q.wait_ms.p50), seconds(q.wait_ms.p90), seconds(q.handle_ms.p50)]));
  fillTable("#analytics-agents", report.agents.map((a) =>
    [a.agent, a.handled, seconds(a.first_response_ms.p50), seconds(a.first_response_ms.p90), seconds(a.handle_ms.p50)]));
  fillTable("#analytics-decisions", report.decisions.map((d) => [
    `${d.tree}.${d.decision}`, d.entered,
    Object.entries(d.left_by).map(([target, n]) => `${target}: ${n}`).join(", "), d.dropped,
  ]));
  fillTable("#analytics-chatbots", report.chatbots.map((c) => [
    c.chatbot, c.handoffs, c.fallbacks,
    Object.entries(c.fallback_reasons).map(([reason, n]) => `${reason}: ${n}`).join(", "),
  ]));
}

async function showAnalytics() {
  $("#analytics-error").hidden = true;
  try {
    showReport(await api("GET", `/analytics?${periodQuery()}`));
  } catch (error) {
    $("#analytics-error").textContent = error.message;
    $("#analytics-error").hidden = false;
  }
}

// The CSV is fetched with the token, then saved from a blob: URL.
async function downloadCsv(section) {
  const response = await fetch(`/admin/analytics/${section}?${periodQuery()}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new Error(`${section}.csv: ${response.status}`);
  const link = element("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${section}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

for (const section of CSV_SECTIONS) {
  const button = element("button", section);
  button.type = "button";
  button.dataset.csv = section;
  button.addEventListener("click", () => downloadCsv(section).catch((error) => {
    $("#analytics-error").textContent = error.message;
    $("#analytics-error").hidden = false;
  }));
  $("#analytics-csv").append(button);
}

$("#analytics-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showAnalytics();
});

document.addEventListener("flowhost:signed-in", showAnalytics);
