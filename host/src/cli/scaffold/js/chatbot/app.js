// {{NAME}}: a flowhost chatbot adapter. It speaks a simple JSON protocol,
// which you change to your bot's:
// - flowhost posts {"conversation", "text", "reply_url", "fields"};
// - the bot answers 200 {"replies": ["..."], "handoff": "<queue>"} at once,
//   or 202 with no body and later posts the same JSON to reply_url (the
//   session's responseUrl, which names the conversation and its hash).

import { Response, ProtocolError, Unavailable, callback, chatbot, pluginInfo, postJson, turn } from "flowhost-sdk/chatbot";

function describe() {
  return pluginInfo(
    "{{NAME}}",
    "0.1.0",
    "Talks to a bot that answers at once or later.",
    {
      type: "object",
      required: ["url"],
      properties: { url: { type: "string" }, send_attachments: { type: "boolean" } },
    },
    // Only what it uses: the host refuses any other capability.
    ["http"],
  );
}

/** Called for every customer message while the conversation is with the
 * chatbot (and for the start message, `inbound.isStart`). */
function deliver(context, config, session, inbound) {
  const answer = postJson(config.url, {
    conversation: context.conversation.id,
    // A pressed quick reply answers with its payload.
    text: inbound.quickReply ?? inbound.text,
    reply_url: session.responseUrl,
    fields: Object.fromEntries(session.customFields.map((field) => [field.name, field.value])),
  });
  if (answer.status === 202) return turn();
  // The conversation goes to the chatbot's fallback.
  if (answer.status !== 200) throw new Unavailable(`the bot answered HTTP ${answer.status}`);
  return readAnswer(answer.json());
}

/** Called when the bot posts to reply_url; flowhost has already checked
 * the URL's conversation and hash. */
function parseCallback(_config, body) {
  return callback(readAnswer(new Response(200, [], body).json()));
}

function readAnswer(answer) {
  const replies = answer && answer.replies !== undefined ? answer.replies : [];
  if (typeof answer !== "object" || !Array.isArray(replies) || !replies.every((r) => typeof r === "string")) {
    throw new ProtocolError('the bot\'s answer is not {"replies": [texts], "handoff": queue}');
  }
  return turn(replies, answer.handoff ?? undefined);
}

export const chatbotAdapter = chatbot(describe, deliver, parseCallback);
