"""flowhost: write flowhost actions in Python.

A small layer over the bindings componentize-py generates from the WIT
package in `wit/` (world `action` of `flowhost:plugin@0.1.0`): describe the
plugin, run it with the conversation's context and its configuration as a
dict, use the capabilities with plain Python values, and raise `Failed` or
`InvalidConfig` for the flow to route on. Build a plugin with

    componentize-py -d wit/flowhost-plugin@0.1.0 -w action componentize app -p . -p sdk/python -o plugin.wasm

where `app.py` defines `ActionPlugin = flowhost.action(describe, run)`.
"""

import json
from typing import Any, Callable, List, Optional

from componentize_py_types import Err
from wit_world.exports import action_plugin
from wit_world.imports import conversation_data, log as _log, messaging, types

Capability = types.Capability
Context = types.Context


class Failed(Exception):
    """The action failed for a business reason, said plainly (`failed`)."""


class InvalidConfig(Exception):
    """The configuration does not fit what the action needs (`invalid_config`)."""


def plugin_info(
    name: str,
    version: str,
    description: str,
    config_schema: dict,
    capabilities: List[types.Capability],
) -> types.PluginInfo:
    """What `describe` returns: the name flows call the plugin by, its
    version, a JSON Schema of its configuration and the capabilities it uses."""
    return types.PluginInfo(name, version, description, json.dumps(config_schema), capabilities)


def send_text(text: str) -> str:
    """Queues a text message to the customer (capability MESSAGING)."""
    return messaging.send(types.OutgoingMessage(text, [], [], []))


def get_data(key: str) -> Optional[Any]:
    """The conversation's saved value under `key` (CONVERSATION_DATA)."""
    raw = conversation_data.get(key)
    return None if raw is None else json.loads(raw)


def set_data(key: str, value: Any) -> None:
    """Saves `value` under `key`; kept only if the call succeeds."""
    conversation_data.set(key, json.dumps(value))


def info(message: str) -> None:
    """Logs a line into flowhost's log (capability LOG)."""
    _log.log(_log.Level.INFO, message, [])


def store(name: str, value: Any) -> action_plugin.Outcome:
    """An outcome that keeps `value` under `name` in the flow's context."""
    return action_plugin.Outcome(types.NamedValue(name, json.dumps(value)), None)


def go_to(target: str) -> action_plugin.Outcome:
    """An outcome that makes the flow follow the target `target` next."""
    return action_plugin.Outcome(None, target)


def done() -> action_plugin.Outcome:
    """An outcome that keeps nothing and picks no target."""
    return action_plugin.Outcome(None, None)


def action(
    describe: Callable[[], types.PluginInfo],
    run: Callable[[types.Context, dict], action_plugin.Outcome],
) -> type:
    """The class componentize-py exports as the plugin's `action-plugin`:
    `run` gets the configuration as a dict; `Failed`, `InvalidConfig` and a
    refused capability become the contract's typed errors."""

    class ActionPlugin:
        def describe(self) -> types.PluginInfo:
            return describe()

        def run(self, context: types.Context, config: str) -> action_plugin.Outcome:
            try:
                parsed = json.loads(config)
            except ValueError as error:
                raise Err(action_plugin.ActionError_InvalidConfig(f"configuration: {error}"))
            try:
                return run(context, parsed)
            except InvalidConfig as error:
                raise Err(action_plugin.ActionError_InvalidConfig(str(error)))
            except Failed as error:
                raise Err(action_plugin.ActionError_Failed(str(error)))
            except Err as error:
                # A capability refused or failed (a host-error).
                raise Err(action_plugin.ActionError_Host(error.value))

    return ActionPlugin
