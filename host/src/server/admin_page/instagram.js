// The admin page's Instagram accounts: connect one through Meta's login
// (the browser goes to Meta's authorization window and comes back to
// flowhost's callback page), see each account's state and token expiry,
// refresh a token now, disconnect. Uses `api`, `element` and `$` from
// app.js (loaded first).
"use strict";

function instagramError(error) {
  $("#instagram-error").textContent = error.message;
  $("#instagram-error").hidden = false;
}

function accountState(status) {
  if (status.state === "connected") return "connected";
  return `reconnect needed since ${new Date(status.since_ms).toISOString()}: ${status.reason}`;
}

function accountButton(label, action) {
  const button = element("button", label);
  button.type = "button";
  button.addEventListener("click", () => action().catch(instagramError));
  return button;
}

async function showInstagram() {
  const answer = await api("GET", "/instagram/accounts");
  $("#instagram-connect").hidden = !answer.can_connect;
  $("#instagram-note").textContent = answer.can_connect
    ? "A flow account sends with a connected account's token when it says access_token: connected."
    : "Connecting accounts needs a Meta app: set instagram_login in the server configuration.";
  const body = $("#instagram-accounts tbody");
  body.replaceChildren();
  for (const account of answer.accounts) {
    const row = element("tr");
    row.dataset.account = account.ig_user_id;
    row.dataset.state = account.status.state;
    row.append(element("td", `@${account.username} (${account.ig_user_id})`));
    row.append(element("td", accountState(account.status), account.status.state === "connected" ? "ok" : "error"));
    row.append(element("td", new Date(account.token_expires_at_ms).toISOString()));
    row.append(element("td", `${new Date(account.connected_at_ms).toISOString()} by ${account.connected_by}`));
    const cell = element("td");
    if (account.status.state === "connected") {
      cell.append(accountButton("Refresh the token", async () => {
        await api("POST", `/instagram/accounts/${encodeURIComponent(account.ig_user_id)}/refresh`);
        await showInstagram();
      }));
    } else if (answer.can_connect) {
      cell.append(accountButton("Reconnect", connectInstagram));
    }
    cell.append(accountButton("Disconnect", async () => {
      await api("DELETE", `/instagram/accounts/${encodeURIComponent(account.ig_user_id)}`);
      await showInstagram();
    }));
    row.append(cell);
    body.append(row);
  }
}

async function connectInstagram() {
  const login = await api("POST", "/instagram/connect");
  window.location.assign(login.authorize_url);
}

$("#instagram-connect").addEventListener("click", () => connectInstagram().catch(instagramError));
document.addEventListener("flowhost:signed-in", () => showInstagram().catch(instagramError));
