// flowhost chatbot adapters in JavaScript (world `chatbot`): speaks one
// third-party bot's protocol. Everything of ./flowhost.js, plus bot turns
// and `chatbot(describe, deliver, parseCallback)`, whose result app.js
// exports as `chatbotAdapter`.

import { HttpFailed, InvalidConfig, ProtocolError, Unavailable, hostError, parseConfig } from "./flowhost.js";

export * from "./flowhost.js";

/** A bot reply with text only. */
export function reply(text) {
  return { text, buttons: [], quickReplies: [], attachments: [] };
}

/** What the bot answered: replies (texts or `reply`s) and perhaps a queue
 * to hand the conversation to. */
export function turn(replies = [], handoffQueue = undefined) {
  return { replies: replies.map((r) => (typeof r === "string" ? reply(r) : r)), handoffQueue };
}

/** A callback as read from the bot's body; empty `conversation` and `hash`
 * mean "as the callback URL says". */
export function callback(botTurn, conversation = "", hash = "") {
  return { conversation, hash, turn: botTurn };
}

function adapterError(error) {
  if (error instanceof InvalidConfig) return { tag: "invalid-config", val: error.message };
  if (error instanceof Unavailable || error instanceof HttpFailed) return { tag: "unavailable", val: error.message };
  if (error instanceof ProtocolError) return { tag: "protocol", val: error.message };
  const refused = hostError(error);
  if (refused) return { tag: "host", val: refused };
  // Anything else is the adapter's own bug: it traps (as in Rust and
  // Python) rather than blaming the bot.
  throw error;
}

/** The object to export as `chatbotAdapter`: `deliver(context, config,
 * session, inbound)` and `parseCallback(config, body)` get the
 * configuration as an object; `Unavailable`, `HttpFailed`, `ProtocolError`,
 * `InvalidConfig` and a refused capability become the contract's errors;
 * any other exception traps. */
export function chatbot(describe, deliver, parseCallback) {
  const invalid = (val) => ({ tag: "invalid-config", val });
  return {
    describe,
    deliver(context, config, session, inbound) {
      const parsed = parseConfig(config, invalid);
      try {
        return deliver(context, parsed, session, inbound);
      } catch (error) {
        throw adapterError(error);
      }
    },
    parseCallback(config, body) {
      const parsed = parseConfig(config, invalid);
      try {
        return parseCallback(parsed, body);
      } catch (error) {
        throw adapterError(error);
      }
    },
  };
}
