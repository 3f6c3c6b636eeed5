// Unit tests of {{NAME}} against the SDK's mock host (npm test).

import assert from "node:assert/strict";
import { test } from "node:test";
import { MockHost, context, errorOf, inbound } from "flowhost-sdk/testing";
import { chatbotAdapter } from "./app.js";

const BOT = "https://bot.example/talk";
const sentBody = (host) => JSON.parse(new TextDecoder().decode(host.requests[0].body));

test("the customer's message goes to the bot and its answer comes back", () => {
  const host = new MockHost().answer("POST", BOT, 200, { replies: ["Hi!", "How can I help?"] });
  const turn = host.deliver(chatbotAdapter, context("hello"), { url: BOT });
  assert.deepEqual(turn.replies.map((r) => r.text), ["Hi!", "How can I help?"]);
  assert.equal(turn.handoffQueue, undefined);
  assert.equal(sentBody(host).text, "hello");
  assert.match(sentBody(host).reply_url, /hash=test-hash/);
});

test("a pressed quick reply is sent as its payload", () => {
  const host = new MockHost().answer("POST", BOT, 202);
  const turn = host.deliver(chatbotAdapter, context("Yes"), { url: BOT }, inbound("Yes", { quickReply: "YES" }));
  assert.deepEqual(turn.replies, []);
  assert.equal(sentBody(host).text, "YES");
});

test("an error status or no answer sends the customer to the fallback", () => {
  const host = new MockHost().answer("POST", BOT, 500);
  const error = errorOf(() => host.deliver(chatbotAdapter, context("hi"), { url: BOT }));
  assert.equal(error.tag, "unavailable");
  assert.match(error.val, /HTTP 500/);
  assert.equal(errorOf(() => new MockHost().deliver(chatbotAdapter, context("hi"), { url: BOT })).tag, "unavailable");
});

test("a later answer is read from the callback", () => {
  const callback = new MockHost().parseCallback(chatbotAdapter, { url: BOT }, '{"replies": ["Done"], "handoff": "sales"}');
  assert.equal(callback.turn.replies[0].text, "Done");
  assert.equal(callback.turn.handoffQueue, "sales");
  assert.equal(errorOf(() => new MockHost().parseCallback(chatbotAdapter, { url: BOT }, "{")).tag, "protocol");
});
