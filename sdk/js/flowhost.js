// flowhost: write flowhost plugins in JavaScript.
//
// A small layer over the bindings componentize-js makes from the WIT
// package in wit/ (flowhost:plugin@0.1.0). This module holds what both
// worlds share: describing the plugin, its errors, and the capabilities
// both may import (saved data, templates, log, HTTP). Import the world
// you build instead, which re-exports all of it:
//
// - ./action.js: `export const actionPlugin = action(describe, run)`;
// - ./chatbot.js: `export const chatbotAdapter = chatbot(describe, deliver, parseCallback)`.
//
// Build a plugin with `sdk/js/build app.js plugin.wasm [action|chatbot]`;
// test it natively against the mock host of ./testing.js.

import { get, set, remove } from "flowhost:plugin/conversation-data@0.1.0";
import { render as renderTemplate } from "flowhost:plugin/templates@0.1.0";
import { log } from "flowhost:plugin/log@0.1.0";
import { send as httpSend } from "flowhost:plugin/http@0.1.0";

/** The action failed for a business reason, said plainly (`failed`). */
export class Failed extends Error {}

/** The configuration does not fit what the plugin needs (`invalid_config`). */
export class InvalidConfig extends Error {}

/** An HTTP request got no answer (refused host, timeout, connection, too
 * large): `http` for an action, `unavailable` for a chatbot adapter. */
export class HttpFailed extends Error {}

/** The bot cannot be reached or answered an error: the conversation goes
 * to the chatbot's fallback. */
export class Unavailable extends Error {}

/** The bot answered something its protocol does not allow (fallback too;
 * from `parseCallback`, the bot is answered 400 with this text). */
export class ProtocolError extends Error {}

/** What `describe` returns; capabilities as the contract names them
 * ("messaging", "conversation-data", "http", ...). */
export function pluginInfo(name, version, description, configSchema, capabilities) {
  return { name, version, description, configSchema: JSON.stringify(configSchema), capabilities };
}

/** The conversation's saved value under `key` ("conversation-data"). */
export function getData(key) {
  const raw = get(key);
  return raw === undefined || raw === null ? undefined : JSON.parse(raw);
}

/** Saves `value` under `key`; kept only if the call succeeds. */
export function setData(key, value) {
  set(key, JSON.stringify(value));
}

/** Removes the saved value under `key`. */
export function removeData(key) {
  remove(key);
}

/** Renders a minijinja template against the conversation ("templates"). */
export function render(template) {
  return renderTemplate(template);
}

/** Logs a line into flowhost's log (capability "log"). */
export function info(message) {
  log("info", message, []);
}

/** An HTTP answer: `status`, `headers` (pairs), `body` (bytes). */
export class Response {
  constructor(status, headers, body) {
    Object.assign(this, { status, headers, body });
  }

  text() {
    return new TextDecoder().decode(this.body);
  }

  /** The body as JSON; `ProtocolError` if it is not. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (error) {
      throw new ProtocolError(`the answer is not JSON: ${error.message}`);
    }
  }
}

/** Sends an HTTP request to one of the plugin's allowed hosts ("http");
 * any status is an answer, no answer throws `HttpFailed`. */
export function request(method, url, headers = [], body = undefined) {
  try {
    const answer = httpSend({ method: method.toLowerCase(), url, headers, body });
    return new Response(answer.status, answer.headers, answer.body);
  } catch (error) {
    throw new HttpFailed(explain(error));
  }
}

/** POSTs `value` as JSON. */
export function postJson(url, value, headers = []) {
  const body = new TextEncoder().encode(JSON.stringify(value));
  return request("post", url, [["content-type", "application/json"], ...headers], body);
}

function explain(error) {
  const failure = error && error.payload;
  if (!failure || !failure.tag) return String(error && error.message ? error.message : error);
  return failure.val === undefined ? failure.tag : `${failure.tag}: ${failure.val}`;
}

/** Parses a plugin's JSON configuration; `error(text)` makes its error. */
export function parseConfig(config, error) {
  try {
    return JSON.parse(config);
  } catch (e) {
    throw error(`configuration: ${e.message}`);
  }
}

/** A refused or failed capability's host-error, if `error` is one. */
export function hostError(error) {
  return error && error.payload && error.payload.tag ? error.payload : undefined;
}
