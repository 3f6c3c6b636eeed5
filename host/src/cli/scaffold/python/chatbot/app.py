"""{{NAME}}: a flowhost chatbot adapter. It speaks a simple JSON protocol,
which you change to your bot's:

- flowhost posts `{"conversation", "text", "reply_url", "fields"}`;
- the bot answers `200 {"replies": ["..."], "handoff": "<queue>"}` at once,
  or `202` with no body and later posts the same JSON to `reply_url` (the
  session's `response_url`, which names the conversation and its hash).
"""

import flowhost
from flowhost import Capability


def describe():
    return flowhost.plugin_info(
        "{{NAME}}",
        "0.1.0",
        "Talks to a bot that answers at once or later.",
        {
            "type": "object",
            "required": ["url"],
            "properties": {"url": {"type": "string"}, "send_attachments": {"type": "boolean"}},
        },
        # Only what it uses: the host refuses any other capability.
        [Capability.HTTP],
    )


def deliver(context, config, session, inbound):
    """Called for every customer message while the conversation is with
    the chatbot (and for the start message, `inbound.is_start`)."""
    answer = flowhost.post_json(
        config["url"],
        {
            "conversation": context.conversation.id,
            # A pressed quick reply answers with its payload.
            "text": inbound.quick_reply or inbound.text,
            "reply_url": session.response_url,
            "fields": {field.name: field.value for field in session.custom_fields},
        },
    )
    if answer.status == 202:
        return flowhost.turn()
    if answer.status != 200:
        # The conversation goes to the chatbot's fallback.
        raise flowhost.Unavailable(f"the bot answered HTTP {answer.status}")
    return read_answer(answer.json())


def parse_callback(config, body):
    """Called when the bot posts to `reply_url`; flowhost has already
    checked the URL's conversation and hash."""
    try:
        answer = flowhost.Response(200, [], body).json()
    except flowhost.ProtocolError as error:
        raise flowhost.ProtocolError(f"the callback: {error}")
    return flowhost.callback(read_answer(answer))


def read_answer(answer):
    if not isinstance(answer, dict) or not all(isinstance(r, str) for r in answer.get("replies", [])):
        raise flowhost.ProtocolError('the bot\'s answer is not {"replies": [texts], "handoff": queue}')
    return flowhost.turn(answer.get("replies", []), answer.get("handoff"))


ChatbotAdapter = flowhost.chatbot(describe, deliver, parse_callback)
