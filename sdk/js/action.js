// flowhost actions in JavaScript (world `action`): a step of a decision
// tree. Everything of ./flowhost.js, plus messages, tickets, outcomes and
// `action(describe, run)`, whose result app.js exports as `actionPlugin`.

import { send } from "flowhost:plugin/messaging@0.1.0";
import { create } from "flowhost:plugin/tickets@0.1.0";
import { Failed, HttpFailed, InvalidConfig, ProtocolError, hostError, parseConfig } from "./flowhost.js";

export * from "./flowhost.js";

/** Queues a text message to the customer (capability "messaging"). */
export function sendText(text) {
  return send({ text, buttons: [], quickReplies: [], attachments: [] });
}

/** Creates a ticket, stored if the call succeeds ("tickets"); its id. */
export function createTicket(title, category, comment = "") {
  return create({ title, category, comment });
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

/** The object to export as `actionPlugin`: `run(context, config)` gets the
 * configuration as an object; `Failed`, `InvalidConfig`, `HttpFailed` and
 * a refused capability become the contract's errors; any other exception
 * traps. */
export function action(describe, run) {
  return {
    describe,
    run(context, config) {
      const parsed = parseConfig(config, (val) => ({ tag: "invalid-config", val }));
      try {
        return run(context, parsed);
      } catch (error) {
        if (error instanceof InvalidConfig) throw { tag: "invalid-config", val: error.message };
        if (error instanceof HttpFailed) throw { tag: "http", val: error.message };
        if (error instanceof Failed || error instanceof ProtocolError) throw { tag: "failed", val: error.message };
        const refused = hostError(error);
        if (refused) throw { tag: "host", val: refused };
        // Anything else is the plugin's own bug: it traps, as in Rust and
        // Python, rather than passing for a business failure.
        throw error;
      }
    },
  };
}
