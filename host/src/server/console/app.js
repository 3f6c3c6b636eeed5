// The agent console: signs in with an agent token (kept in this tab's
// sessionStorage), shows offers and conversations from the agent API, and
// stays current through the agent's event stream. Customer text is only
// ever set as textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "flowhost-agent-token";
const state = { token: sessionStorage.getItem(TOKEN_KEY), me: null, open: null, lastId: null, list: null };
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (_) { data = { error: { message: text } }; }
  if (!response.ok) throw new Error((data.error && data.error.message) || text || String(response.status));
  return data;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function conversationPath(item, action) {
  const base = "/agent/conversations/" + encodeURIComponent(item.account) + "/" + encodeURIComponent(item.customer);
  return action ? base + "/" + action : base;
}

// ---- signing in -----------------------------------------------------------

async function signIn() {
  try {
    state.me = await api("GET", "/agent/me");
  } catch (error) {
    $("sign-in-error").textContent = "Sign-in failed: " + error.message;
    sessionStorage.removeItem(TOKEN_KEY);
    return;
  }
  $("sign-in").hidden = true;
  $("desk").hidden = false;
  $("sign-out").hidden = false;
  $("status-box").hidden = false;
  showMe();
  await refresh();
  follow();
}

function showMe() {
  $("me").textContent = state.me.name + " (" + state.me.id + ")";
  $("status").value = state.me.status;
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  signIn();
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

$("status").addEventListener("change", async () => {
  try {
    state.me = await api("PUT", "/agent/status", { status: $("status").value });
    showMe();
  } catch (error) {
    $("c-error").textContent = error.message;
  }
});

// ---- the lists --------------------------------------------------------------

async function refresh() {
  state.list = await api("GET", "/agent/conversations");
  renderList("offers", state.list.offers, "Accept", "accept");
  renderList("mine", state.list.conversations, null, null);
  renderList("waiting", state.list.waiting, "Pick up", "pickup");
  renderList("closed", state.list.closed, null, null);
  const ringing = state.list.offers.length;
  document.title = (ringing ? "(" + ringing + ") offer · " : "") + "flowhost · agent console";
  if (state.open) {
    const shown = state.list.conversations.concat(state.list.closed);
    const still = shown.find((c) => c.key === state.open.key);
    if (still) await openConversation(still); else closeView();
  }
}

function renderList(id, items, buttonLabel, action) {
  const list = $(id);
  list.replaceChildren();
  for (const item of items) {
    const row = element("li", action === "accept" ? "ringing" : "");
    row.dataset.customer = item.customer;
    if (state.open && state.open.key === item.key) row.classList.add("open");
    row.append(element("span", "who", (item.name || item.customer) + " · " + (item.queue || "")));
    if (item.unread > 0) row.append(element("span", "badge", String(item.unread)));
    if (action) {
      const button = element("button", "", buttonLabel);
      button.type = "button";
      button.addEventListener("click", async (event) => {
        event.stopPropagation();
        try {
          await api("POST", conversationPath(item, action));
          state.open = { key: item.key };
          await refresh();
        } catch (error) {
          $("c-error").textContent = error.message;
          await refresh();
        }
      });
      row.append(button);
    } else {
      row.addEventListener("click", () => openConversation(item));
    }
    list.append(row);
  }
}

// ---- one conversation -----------------------------------------------------------

async function openConversation(item) {
  const conversation = await api("GET", conversationPath(item));
  state.open = conversation;
  $("conversation").hidden = false;
  $("c-title").textContent = conversation.name || conversation.customer;
  $("c-queue").textContent = "queue " + (conversation.queue || "-");
  showWindow(conversation.window_left_ms);
  showQueueInfo(conversation.queue_info);
  const history = $("c-history");
  history.replaceChildren();
  for (const line of conversation.history) {
    const entry = element("li", line.kind);
    entry.append(element("time", "", new Date(line.at_ms).toLocaleString()));
    entry.append(document.createTextNode((line.language ? "[" + line.language + "] " : "") + line.text));
    for (const attachment of line.attachments || []) {
      const link = element("a", "", " [" + attachment.type + "]");
      link.href = attachment.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      entry.append(link);
    }
    history.append(entry);
  }
  history.scrollTop = history.scrollHeight;
  for (const row of document.querySelectorAll(".list li")) {
    row.classList.toggle("open", row.dataset.customer === conversation.customer);
  }
  if (conversation.unread > 0) {
    await api("POST", conversationPath(conversation, "read"));
  }
}

function showQueueInfo(info) {
  $("c-queue-info").hidden = !info;
  if (!info) return;
  $("c-logo").hidden = !info.logo_url;
  if (info.logo_url) $("c-logo").src = info.logo_url;
  $("c-call-me").textContent = info.call_me_text ? "Call: " + info.call_me_text : "";
  $("c-notes").textContent = info.notes || "";
}

function closeView() {
  state.open = null;
  $("conversation").hidden = true;
}

function showWindow(leftMs) {
  const hours = Math.floor(leftMs / 3600000);
  const minutes = Math.floor((leftMs % 3600000) / 60000);
  const text = leftMs <= 0 ? "reply window closed" : "window: " + Math.floor(hours / 24) + "d " + (hours % 24) + "h " + minutes + "m left";
  $("c-window").textContent = text;
  $("c-window").classList.toggle("closing", leftMs < 24 * 3600000);
}

async function act(action, body) {
  $("c-error").textContent = "";
  try {
    await api("POST", conversationPath(state.open, action), body);
    await refresh();
    return true;
  } catch (error) {
    $("c-error").textContent = error.message;
    return false;
  }
}

$("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("reply-text").value;
  const quick = $("reply-quick").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { text, quick_replies: quick.map((title) => ({ title, payload: title })) };
  if (await act("reply", body)) {
    $("reply-text").value = "";
    $("reply-quick").value = "";
  }
});

$("transfer-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const kind = $("transfer-kind").value;
  const body = {};
  body[kind] = kind === "default_queue" ? true : $("transfer-target").value.trim();
  if (await act("transfer", body)) $("transfer-target").value = "";
});

$("close-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { cause: $("close-cause").value.trim(), answered: $("close-answered").checked };
  if (await act("close", body)) {
    $("close-cause").value = "";
    closeView();
  }
});

// ---- the live stream ---------------------------------------------------------------

// fetch rather than EventSource, so the token travels in a header and never
// in a URL; the stream resumes from the last event id after a drop.
async function follow() {
  for (;;) {
    try {
      const headers = { Authorization: "Bearer " + state.token };
      if (state.lastId) headers["Last-Event-ID"] = state.lastId;
      const response = await fetch("/agent/stream", { headers });
      if (!response.ok) throw new Error("stream: " + response.status);
      $("live").textContent = "live";
      $("live").classList.add("on");
      await readEvents(response.body.getReader());
    } catch (_) {
      // Dropped: fall through and reconnect.
    }
    $("live").textContent = "reconnecting";
    $("live").classList.remove("on");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      await onEvent(block);
    }
  }
}

async function onEvent(block) {
  let kind = null;
  let data = null;
  for (const line of block.split("\n")) {
    if (line.startsWith("id:")) state.lastId = line.slice(3).trim();
    else if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data = line.slice(5).trim();
  }
  if (!kind) return;
  if (kind === "status" && data) {
    const status = JSON.parse(data);
    if (status.agent === state.me.id) {
      state.me.status = status.status;
      showMe();
    }
  }
  try {
    await refresh();
  } catch (error) {
    $("c-error").textContent = error.message;
  }
}

setInterval(() => {
  if (state.open && state.open.window_left_ms !== undefined) {
    state.open.window_left_ms -= 30000;
    showWindow(state.open.window_left_ms);
  }
}, 30000);

if (state.token) signIn();
