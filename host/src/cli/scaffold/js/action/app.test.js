// Unit tests of {{NAME}} against the SDK's mock host (npm test).

import assert from "node:assert/strict";
import { test } from "node:test";
import { MockHost, context, errorOf } from "flowhost-sdk/testing";
import { actionPlugin } from "./app.js";

test("greets the customer by name and remembers it", () => {
  const host = new MockHost();
  const outcome = host.runAction(actionPlugin, context("hi", { name: "Ada" }), { greeting: "Hello" });
  assert.equal(outcome.store.value, '"Hello, Ada!"');
  assert.deepEqual(host.sentTexts(), ["Hello, Ada!"]);
  assert.equal(host.data.greeted, true);
});

test("a configuration without a greeting is refused and keeps nothing", () => {
  const host = new MockHost();
  assert.equal(errorOf(() => host.runAction(actionPlugin, context("hi"), {})).tag, "invalid-config");
  assert.deepEqual(host.sent, []);
});

test("an undeclared capability is refused as flowhost refuses it", () => {
  const host = new MockHost();
  const plugin = { ...actionPlugin, describe: () => ({ ...actionPlugin.describe(), capabilities: [] }) };
  const error = errorOf(() => host.runAction(plugin, context("hi"), { greeting: "Hello" }));
  assert.equal(error.tag, "host");
  assert.equal(error.val.tag, "denied");
});
