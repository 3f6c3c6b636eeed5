"""{{NAME}}: a flowhost action. It greets the customer by name and
remembers that it did."""

import flowhost
from flowhost import Capability


def describe():
    return flowhost.plugin_info(
        "{{NAME}}",
        "0.1.0",
        "Greets the customer by name and remembers that it did.",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["greeting"],
            "properties": {"greeting": {"type": "string", "minLength": 1}},
        },
        [Capability.MESSAGING, Capability.CONVERSATION_DATA],
    )


def run(context, config):
    """`config` is the action's configuration in the flow, after flowhost
    rendered its templates."""
    if not config.get("greeting"):
        raise flowhost.InvalidConfig("`greeting` is required")
    name = context.contact.name or "there"
    text = f"{config['greeting']}, {name}!"
    flowhost.send_text(text)
    flowhost.set_data("greeted", True)
    return flowhost.store("greeting", text)


ActionPlugin = flowhost.action(describe, run)
