// Unit tests of JavaScript plugins on the developer's machine, with Node's
// test runner: `node --import <sdk>/js/testing/register.js --test`.
// The register module routes the plugin's imports of the contract to the
// stand-ins in ./testing/imports/, which serve the `MockHost` of the
// running call.
//
// The mock keeps the host's rules a plugin can observe: a capability the
// plugin did not declare in `describe` is refused (`denied`), and a call
// that fails keeps no saved data, messages or tickets.
//
//   const host = new MockHost().withData("vip", true);
//   const outcome = host.runAction(actionPlugin, context("hi", { name: "Ada" }), { greeting: "Hello" });
//   assert.deepEqual(host.sentTexts(), ["Hello, Ada!"]);
//
// A failed call throws what the component would return: the contract's
// error, `{ tag: "invalid-config", val: "..." }`; `errorOf(...)` gives it.

import { enter, leave } from "./testing/state.js";

export class MockHost {
  constructor() {
    /** Saved data; after a call, as the call left it. */
    this.data = {};
    /** Messages, tickets, HTTP requests and log lines of the call
     * (requests and logs are kept even when it fails). */
    this.sent = [];
    this.tickets = [];
    this.requests = [];
    this.logs = [];
    this.answers = [];
    this.templates = new Map();
    this.declared = [];
  }

  /** Saved data the conversation already has. */
  withData(key, value) {
    this.data[key] = value;
    return this;
  }

  /** Answers `method url` with `status` and `body` (bytes, text, or a value sent as JSON). */
  answer(method, url, status, body = "") {
    const text = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    this.answers.push([method.toLowerCase(), url, { status, headers: [["content-type", "application/json"]], body: bytes }]);
    return this;
  }

  /** Fails `method url` with an http-error, such as `{ tag: "timeout" }`. */
  fail(method, url, error) {
    this.answers.push([method.toLowerCase(), url, { error }]);
    return this;
  }

  /** Renders `template` as `rendered` (others render as written). */
  render(template, rendered) {
    this.templates.set(template, rendered);
    return this;
  }

  /** Runs `plugin` (what `action` made) once; its outcome. */
  runAction(plugin, context, config) {
    const withData = this.#withSavedData(context);
    return this.#call(plugin, () => plugin.run(withData, JSON.stringify(config)));
  }

  /** Forwards a customer message to `adapter` (what `chatbot` made), as a
   * chatbot node does; the bot's turn. */
  deliver(adapter, context, config, message = inbound(context.lastMessage && context.lastMessage.text), botSession = session()) {
    const withData = this.#withSavedData(context);
    return this.#call(adapter, () => adapter.deliver(withData, JSON.stringify(config), botSession, message));
  }

  /** Reads `body` as if the bot had posted it to its callback URL. */
  parseCallback(adapter, config, body) {
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    return this.#call(adapter, () => adapter.parseCallback(JSON.stringify(config), bytes));
  }

  /** The texts of the messages sent, in order. */
  sentTexts() {
    return this.sent.map((message) => message.text);
  }

  #withSavedData(context) {
    return { ...context, data: JSON.stringify(this.data) };
  }

  #call(plugin, call) {
    this.declared = plugin.describe().capabilities;
    const kept = structuredClone({ data: this.data, sent: this.sent, tickets: this.tickets });
    enter(this);
    try {
      return call();
    } catch (error) {
      // A failed call's effects are not kept.
      Object.assign(this, kept);
      throw error;
    } finally {
      leave();
    }
  }
}

/** The contract error `call` failed with; throws if it succeeded. */
export function errorOf(call) {
  let result;
  try {
    result = call();
  } catch (error) {
    return error;
  }
  throw new Error(`expected an error, got ${JSON.stringify(result)}`);
}

/** A customer (`customer`) on Instagram whose last message is `text`. */
export function context(text, { name, username, language = "en" } = {}) {
  return {
    conversation: { id: "test-account:customer:1", channel: "instagram", accountId: "test-account", startedAtMs: 0n },
    contact: { id: "customer", name, username },
    lastMessage: { id: "m1", text, payload: undefined, attachments: [], timestampMs: 0n },
    data: "{}",
    language,
  };
}

/** What a chatbot node forwards: a message, a pressed quick reply, or the start message. */
export function inbound(text, { quickReply, isStart = false } = {}) {
  return { id: "m1", text, quickReply, attachments: [], isStart };
}

/** The session a chatbot node gives the conversation of `context`. */
export function session(customFields = {}) {
  return {
    responseUrl: "https://flowhost.test/chatbots/bot/callback?conversation=test-account:customer:1&hash=test-hash",
    hash: "test-hash",
    customFields: Object.entries(customFields).map(([name, value]) => ({ name, title: name, value })),
  };
}
