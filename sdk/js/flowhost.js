// flowhost: write flowhost actions in JavaScript.
//
// A small layer over the bindings componentize-js makes from the WIT package
// in wit/ (world `action` of flowhost:plugin@0.1.0): describe the plugin,
// run it with the conversation's context and its configuration as an
// object, use the capabilities with plain values, and throw `Failed` or
// `InvalidConfig` for the flow to route on. Build a plugin with
//
//   componentize-js --wit wit/flowhost-plugin@0.1.0 --world-name action \
//     --disable http fetch-event -o plugin.wasm app.js
//
// where app.js exports `actionPlugin = action(describe, run)`.

import { send } from "flowhost:plugin/messaging@0.1.0";
import { get, set } from "flowhost:plugin/conversation-data@0.1.0";
import { log } from "flowhost:plugin/log@0.1.0";

/** The action failed for a business reason, said plainly (`failed`). */
export class Failed extends Error {}

/** The configuration does not fit what the action needs (`invalid_config`). */
export class InvalidConfig extends Error {}

/** What `describe` returns; capabilities as the contract names them
 * ("messaging", "conversation-data", "http", ...). */
export function pluginInfo(name, version, description, configSchema, capabilities) {
  return { name, version, description, configSchema: JSON.stringify(configSchema), capabilities };
}

/** Queues a text message to the customer (capability "messaging"). */
export function sendText(text) {
  return send({ text, buttons: [], quickReplies: [], attachments: [] });
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

/** Logs a line into flowhost's log (capability "log"). */
export function info(message) {
  log("info", message, []);
}

/** An outcome that keeps `value` under `name` in the flow's context. */
export function store(name, value) {
  return { store: { name, value: JSON.stringify(value) }, nextTarget: undefined };
}

/** An outcome that makes the flow follow the target `target` next. */
export function goTo(target) {
  return { store: undefined, nextTarget: target };
}

/** An outcome that keeps nothing and picks no target. */
export function done() {
  return { store: undefined, nextTarget: undefined };
}

/** The object to export as `actionPlugin`: `run` gets the configuration as
 * an object; `Failed`, `InvalidConfig` and a refused capability become the
 * contract's typed errors. */
export function action(describe, run) {
  return {
    describe,
    run(context, config) {
      let parsed;
      try {
        parsed = JSON.parse(config);
      } catch (error) {
        throw { tag: "invalid-config", val: `configuration: ${error.message}` };
      }
      try {
        return run(context, parsed);
      } catch (error) {
        if (error instanceof InvalidConfig) throw { tag: "invalid-config", val: error.message };
        if (error instanceof Failed) throw { tag: "failed", val: error.message };
        // A capability refused or failed: its host-error.
        if (error && error.payload && error.payload.tag) throw { tag: "host", val: error.payload };
        throw { tag: "failed", val: String(error && error.message ? error.message : error) };
      }
    },
  };
}
