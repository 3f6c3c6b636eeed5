"""flowhost: write flowhost plugins in Python.

A small layer over the bindings componentize-py generates from the WIT
package in `wit/` (`flowhost:plugin@0.1.0`), for both of its worlds:

- `action`: `ActionPlugin = flowhost.action(describe, run)`; `run` gets the
  conversation's context and its configuration as a dict and returns
  `store(...)`, `go_to(...)` or `done()`; raise `Failed` or `InvalidConfig`
  for the flow to route on.
- `chatbot`: `ChatbotAdapter = flowhost.chatbot(describe, deliver,
  parse_callback)`; `deliver` forwards one customer message to the bot and
  returns `turn(...)`; raise `Unavailable` or `ProtocolError` to send the
  conversation to the chatbot's fallback.

The capabilities take and give plain Python values. Build with

    componentize-py -d wit/flowhost-plugin@0.1.0 -w action componentize app -p . -p sdk/python -o plugin.wasm

(`-w chatbot` for an adapter). `flowhost_testing` runs the same code natively
against a mock host, for unit tests.
"""

import json
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from componentize_py_types import Err
from wit_world.imports import conversation_data, http as _http, log as _log, templates, types

# Each world imports and exports only part of the contract: the action
# world has messaging and tickets, the chatbot world neither.
try:
    from wit_world.exports import action_plugin
    from wit_world.imports import messaging, tickets
except ImportError:
    action_plugin = messaging = tickets = None
try:
    from wit_world.exports import chatbot_adapter
except ImportError:
    chatbot_adapter = None

Capability = types.Capability
Context = types.Context


class Failed(Exception):
    """The action failed for a business reason, said plainly (`failed`)."""


class InvalidConfig(Exception):
    """The configuration does not fit what the plugin needs (`invalid_config`)."""


class HttpFailed(Exception):
    """An HTTP request got no answer (refused host, timeout, connection,
    too large): `http` for an action, `unavailable` for a chatbot adapter."""


class Unavailable(Exception):
    """The bot cannot be reached or answered an error: the conversation
    goes to the chatbot's fallback."""


class ProtocolError(Exception):
    """The bot answered something its protocol does not allow (fallback
    too; from `parse_callback`, the bot is answered 400 with this text)."""


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


# Capabilities.


def send_text(text: str) -> str:
    """Queues a text message to the customer (MESSAGING, actions only)."""
    return messaging.send(types.OutgoingMessage(text, [], [], []))


def create_ticket(title: str, category: str, comment: str = "") -> str:
    """Creates a ticket, stored if the call succeeds (TICKETS, actions only)."""
    return tickets.create(tickets.NewTicket(title, category, comment))


def get_data(key: str) -> Optional[Any]:
    """The conversation's saved value under `key` (CONVERSATION_DATA)."""
    raw = conversation_data.get(key)
    return None if raw is None else json.loads(raw)


def set_data(key: str, value: Any) -> None:
    """Saves `value` under `key`; kept only if the call succeeds."""
    conversation_data.set(key, json.dumps(value))


def remove_data(key: str) -> None:
    """Removes the saved value under `key`."""
    conversation_data.remove(key)


def render(template: str) -> str:
    """Renders a minijinja template against the conversation (TEMPLATES)."""
    return templates.render(template)


def info(message: str) -> None:
    """Logs a line into flowhost's log (capability LOG)."""
    _log.log(_log.Level.INFO, message, [])


class Response:
    """An HTTP answer: `status`, `headers` (pairs), `body` (bytes)."""

    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes):
        self.status, self.headers, self.body = status, headers, bytes(body)

    def json(self) -> Any:
        """The body as JSON; `ProtocolError` if it is not."""
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise ProtocolError(f"the answer is not JSON: {error}")


def request(
    method: str, url: str, headers: Sequence[Tuple[str, str]] = (), body: Optional[bytes] = None
) -> Response:
    """Sends an HTTP request to one of the plugin's allowed hosts (HTTP);
    any status is an answer, no answer raises `HttpFailed`."""
    wit_method = _http.Method[method.upper()]
    try:
        answer = _http.send(_http.Request(wit_method, url, list(headers), body))
    except Err as error:
        raise HttpFailed(_explain(error.value))
    return Response(answer.status, answer.headers, answer.body)


def post_json(url: str, value: Any, headers: Sequence[Tuple[str, str]] = ()) -> Response:
    """POSTs `value` as JSON."""
    headers = [("content-type", "application/json"), *headers]
    return request("POST", url, headers, json.dumps(value).encode())


def _explain(error: Any) -> str:
    kind = type(error).__name__.split("_")[-1]
    value = getattr(error, "value", None)
    return f"{kind}: {value}" if value is not None else kind


# Actions.


def store(name: str, value: Any):
    """An outcome that keeps `value` under `name` in the flow's context."""
    return action_plugin.Outcome(types.NamedValue(name, json.dumps(value)), None)


def go_to(target: str):
    """An outcome that makes the flow follow the target `target` next."""
    return action_plugin.Outcome(None, target)


def done():
    """An outcome that keeps nothing and picks no target."""
    return action_plugin.Outcome(None, None)


def _config(raw: str, invalid: Callable[[str], Any]) -> dict:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise Err(invalid(f"configuration: {error}"))


def action(describe: Callable[[], types.PluginInfo], run: Callable[[types.Context, dict], Any]) -> type:
    """The class componentize-py exports as the plugin's `action-plugin`:
    `run` gets the configuration as a dict; `Failed`, `InvalidConfig`,
    `HttpFailed` and a refused capability become the contract's errors."""

    class ActionPlugin:
        def describe(self) -> types.PluginInfo:
            return describe()

        def run(self, context: types.Context, config: str):
            parsed = _config(config, action_plugin.ActionError_InvalidConfig)
            try:
                return run(context, parsed)
            except InvalidConfig as error:
                raise Err(action_plugin.ActionError_InvalidConfig(str(error)))
            except (Failed, ProtocolError) as error:
                raise Err(action_plugin.ActionError_Failed(str(error)))
            except HttpFailed as error:
                raise Err(action_plugin.ActionError_Http(str(error)))
            except Err as error:
                # A capability refused or failed (a host-error).
                raise Err(action_plugin.ActionError_Host(error.value))

    return ActionPlugin


# Chatbot adapters.


def reply(text: str):
    """A bot reply with text only."""
    return chatbot_adapter.BotReply(text, [], [], [])


def turn(replies: Sequence[Union[str, Any]] = (), handoff_queue: Optional[str] = None):
    """What the bot answered: replies (texts or `reply`s) and perhaps a
    queue to hand the conversation to."""
    replies = [reply(r) if isinstance(r, str) else r for r in replies]
    return chatbot_adapter.BotTurn(replies, handoff_queue)


def callback(turn_, conversation: str = "", hash_: str = ""):
    """A callback as read from the bot's body; empty `conversation` and
    `hash_` mean "as the callback URL says"."""
    return chatbot_adapter.Callback(conversation, hash_, turn_)


def chatbot(
    describe: Callable[[], types.PluginInfo],
    deliver: Callable[[types.Context, dict, Any, Any], Any],
    parse_callback: Callable[[dict, bytes], Any],
) -> type:
    """The class componentize-py exports as the plugin's `chatbot-adapter`:
    `deliver(context, config, session, inbound)` and `parse_callback(config,
    body)` get the configuration as a dict; `Unavailable`, `HttpFailed`,
    `ProtocolError`, `InvalidConfig` and a refused capability become the
    contract's errors."""

    def guarded(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except InvalidConfig as error:
            raise Err(chatbot_adapter.AdapterError_InvalidConfig(str(error)))
        except (Unavailable, HttpFailed) as error:
            raise Err(chatbot_adapter.AdapterError_Unavailable(str(error)))
        except ProtocolError as error:
            raise Err(chatbot_adapter.AdapterError_Protocol(str(error)))
        except Err as error:
            raise Err(chatbot_adapter.AdapterError_Host(error.value))

    class ChatbotAdapter:
        def describe(self) -> types.PluginInfo:
            return describe()

        def deliver(self, context: types.Context, config: str, session, inbound):
            parsed = _config(config, chatbot_adapter.AdapterError_InvalidConfig)
            return guarded(lambda: deliver(context, parsed, session, inbound))

        def parse_callback(self, config: str, body: bytes):
            parsed = _config(config, chatbot_adapter.AdapterError_InvalidConfig)
            return guarded(lambda: parse_callback(parsed, bytes(body)))

    return ChatbotAdapter
