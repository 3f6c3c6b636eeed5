// {{NAME}}: a flowhost action. It greets the customer by name and remembers
// that it did.

import { action, pluginInfo, sendText, setData, store, InvalidConfig } from "flowhost-sdk/action";

function describe() {
  return pluginInfo(
    "{{NAME}}",
    "0.1.0",
    "Greets the customer by name and remembers that it did.",
    {
      type: "object",
      additionalProperties: false,
      required: ["greeting"],
      properties: { greeting: { type: "string", minLength: 1 } },
    },
    ["messaging", "conversation-data"],
  );
}

function run(context, config) {
  if (!config.greeting) throw new InvalidConfig("`greeting` is required");
  const name = context.contact.name || "there";
  const text = `${config.greeting}, ${name}!`;
  sendText(text);
  setData("greeted", true);
  return store("greeting", text);
}

export const actionPlugin = action(describe, run);
