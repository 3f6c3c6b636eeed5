//! Unit tests of plugins on the developer's machine. Built for a native
//! target (`cargo test`), every capability call of the SDK goes to the
//! [`MockHost`] of the running thread instead of to flowhost, so a plugin's
//! own tests can run an action with a context, saved data and canned HTTP
//! answers, and check its outcome and everything it did.
//!
//! The mock keeps the host's rules that a plugin can observe: a capability
//! the plugin did not declare in `describe` is refused, and a call that
//! fails leaves nothing behind (no saved data, messages or tickets), as
//! flowhost stores a call's effects only when it succeeds.
//!
//! ```
//! use flowhost_sdk::testing::{MockHost, context};
//! # use flowhost_sdk::{Action, ActionError, Capability, Context, Outcome, PluginInfo};
//! # struct Greet;
//! # impl Action for Greet {
//! #     type Config = serde_json::Value;
//! #     fn describe() -> PluginInfo {
//! #         flowhost_sdk::plugin_info("greet", "1.0.0", "", serde_json::json!({}), &[Capability::Messaging])
//! #     }
//! #     fn run(context: &Context, _: Self::Config) -> Result<Outcome, ActionError> {
//! #         flowhost_sdk::messaging::send_text(&format!("Hi, {}!", context.contact.name.as_deref().unwrap_or("there")))?;
//! #         Ok(Outcome::default())
//! #     }
//! # }
//! let mut customer = context("hello");
//! customer.contact.name = Some("Ada".into());
//! let (outcome, host) = MockHost::new().run_action::<Greet>(&customer, serde_json::json!({}));
//! assert!(outcome.is_ok());
//! assert_eq!(host.sent_texts(), ["Hi, Ada!"]);
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::bindings::action::flowhost::plugin::http::{HttpError, Method, Request, Response};
use crate::bindings::action::flowhost::plugin::log::Level;
use crate::bindings::action::flowhost::plugin::tickets::NewTicket;
use crate::chatbot::{AdapterError, BotTurn, Callback, Inbound, Session};
use crate::{
    Action, ActionError, Capability, Chatbot, Context, Conversation, HostError, Message, Outcome,
    OutgoingMessage,
};

thread_local! {
    static HOST: RefCell<Option<MockHost>> = const { RefCell::new(None) };
}

/// A stand-in for flowhost in a plugin's unit tests: what the plugin sees
/// (saved data, HTTP answers, rendered templates) and what it did.
#[derive(Clone, Debug, Default)]
pub struct MockHost {
    /// The conversation's saved data; after a run, as the call left it.
    pub data: BTreeMap<String, Value>,
    /// Messages the plugin sent, in order.
    pub sent: Vec<OutgoingMessage>,
    /// Tickets the plugin created.
    pub tickets: Vec<NewTicket>,
    /// Every HTTP request the plugin made (kept even when the call fails).
    pub requests: Vec<Request>,
    /// Every log line (kept even when the call fails).
    pub logs: Vec<(Level, String)>,
    answers: Vec<(Method, String, Result<Response, HttpError>)>,
    templates: BTreeMap<String, String>,
    declared: Vec<Capability>,
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Saved data the conversation already has.
    pub fn with_data(mut self, key: &str, value: Value) -> Self {
        self.data.insert(key.to_string(), value);
        self
    }

    /// Answers `method url` with `status` and `body` (JSON or text).
    pub fn answer(mut self, method: Method, url: &str, status: u16, body: &str) -> Self {
        let response = Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        };
        self.answers.push((method, url.to_string(), Ok(response)));
        self
    }

    /// Fails `method url` with `error` (a timeout, a refused host, ...).
    pub fn fail(mut self, method: Method, url: &str, error: HttpError) -> Self {
        self.answers.push((method, url.to_string(), Err(error)));
        self
    }

    /// Renders `template` as `rendered` (other templates render as written).
    pub fn render(mut self, template: &str, rendered: &str) -> Self {
        self.templates
            .insert(template.to_string(), rendered.to_string());
        self
    }

    /// Runs the action `A` with `context` and `config` (JSON, as the flow's
    /// configuration after rendering); its result and the host after it.
    pub fn run_action<A: Action>(
        self,
        context: &Context,
        config: Value,
    ) -> (Result<Outcome, ActionError>, MockHost) {
        let context = self.with_saved_data(context);
        self.call(A::describe().capabilities, || {
            crate::action::run_action::<A>(context, config.to_string())
        })
    }

    /// Forwards `inbound` to the chatbot adapter `B`, as a chatbot node
    /// does (with `session()` as the session); its turn and the host after
    /// it. Answer the bot's URL with [`MockHost::answer`].
    pub fn deliver<B: Chatbot>(
        self,
        context: &Context,
        config: Value,
        inbound: Inbound,
    ) -> (Result<BotTurn, AdapterError>, MockHost) {
        let context = self.with_saved_data(context);
        self.call(B::describe().capabilities, || {
            crate::chatbot::chatbot_deliver::<B>(context, config.to_string(), session(), inbound)
        })
    }

    /// Reads `body`, as if the bot had posted it to its callback URL, with
    /// the adapter `B`'s `parse-callback`.
    pub fn parse_callback<B: Chatbot>(
        self,
        config: Value,
        body: &[u8],
    ) -> (Result<Callback, AdapterError>, MockHost) {
        self.call(B::describe().capabilities, || {
            crate::chatbot::chatbot_callback::<B>(config.to_string(), body.to_vec())
        })
    }

    /// `context` with this host's saved data, as flowhost passes it.
    fn with_saved_data(&self, context: &Context) -> Context {
        let mut context = context.clone();
        context.data = Value::Object(self.data.clone().into_iter().collect()).to_string();
        context
    }

    /// Runs `call` with this host in place for a plugin that declared
    /// `declared`; a failed call keeps no effects.
    fn call<T, E>(
        mut self,
        declared: Vec<Capability>,
        call: impl FnOnce() -> Result<T, E>,
    ) -> (Result<T, E>, MockHost) {
        self.declared = declared;
        let before = self.clone();
        HOST.with(|host| *host.borrow_mut() = Some(self));
        let result = call();
        let after = HOST
            .with(|host| host.borrow_mut().take())
            .expect("the mock host is in place for the whole call");
        let after = match result {
            Ok(_) => after,
            // A failed call's effects are not kept; what it asked for and
            // logged stays visible to the test.
            Err(_) => MockHost {
                requests: after.requests,
                logs: after.logs,
                ..before
            },
        };
        (result, after)
    }

    /// The texts of the messages sent, in order.
    pub fn sent_texts(&self) -> Vec<&str> {
        self.sent.iter().filter_map(|m| m.text.as_deref()).collect()
    }
}

/// A context for a test: a customer (`customer`, no name) on Instagram
/// whose last message is `text`, in English, with no saved data.
pub fn context(text: &str) -> Context {
    Context {
        conversation: Conversation {
            id: "test-account:customer:1".into(),
            channel: "instagram".into(),
            account_id: "test-account".into(),
            started_at_ms: 0,
        },
        contact: crate::Contact {
            id: "customer".into(),
            name: None,
            username: None,
        },
        last_message: Some(Message {
            id: "m1".into(),
            text: Some(text.into()),
            payload: None,
            attachments: Vec::new(),
            timestamp_ms: 0,
        }),
        data: "{}".into(),
        language: "en".into(),
    }
}

/// The session a chatbot node gives a conversation, for tests: the
/// callback URL names the conversation of [`context`] and its hash.
pub fn session() -> Session {
    Session {
        response_url: "https://flowhost.test/chatbots/bot/callback?conversation=test-account:customer:1&hash=test-hash".into(),
        hash: "test-hash".into(),
        custom_fields: Vec::new(),
    }
}

/// A customer's message `text`, as a chatbot node forwards it.
pub fn inbound(text: &str) -> Inbound {
    Inbound {
        id: "m1".into(),
        text: Some(text.into()),
        quick_reply: None,
        attachments: Vec::new(),
        is_start: false,
    }
}

/// Runs `f` on the thread's mock host, after checking that the plugin
/// declared `capability` (as flowhost does).
fn with_host<T>(
    capability: Capability,
    f: impl FnOnce(&mut MockHost) -> Result<T, HostError>,
) -> Result<T, HostError> {
    HOST.with(|host| {
        let mut host = host.borrow_mut();
        let host = host.as_mut().expect(
            "a capability was called outside the mock host: run the plugin with MockHost::run_action, deliver or parse_callback in tests",
        );
        if !host.declared.contains(&capability) {
            return Err(HostError::Denied(format!(
                "the plugin did not declare the {capability:?} capability"
            )));
        }
        f(host)
    })
}

/// The capabilities' native stand-ins, with the generated imports' shapes.
pub(crate) mod conversation_data {
    use super::*;

    pub fn get(key: &str) -> Option<String> {
        with_host(Capability::ConversationData, |h| {
            Ok(h.data.get(key).map(Value::to_string))
        })
        .unwrap_or_else(|denied| panic!("{denied:?}"))
    }

    pub fn set(key: &str, value: &str) -> Result<(), HostError> {
        with_host(Capability::ConversationData, |h| {
            let value = serde_json::from_str(value)
                .map_err(|e| HostError::Invalid(format!("not JSON: {e}")))?;
            h.data.insert(key.to_string(), value);
            Ok(())
        })
    }

    pub fn remove(key: &str) {
        with_host(Capability::ConversationData, |h| {
            h.data.remove(key);
            Ok(())
        })
        .unwrap_or_else(|denied| panic!("{denied:?}"))
    }
}

pub(crate) mod messaging {
    use super::*;

    pub fn send(message: &OutgoingMessage) -> Result<String, HostError> {
        with_host(Capability::Messaging, |h| {
            h.sent.push(message.clone());
            Ok(format!("message-{}", h.sent.len()))
        })
    }
}

pub(crate) mod tickets {
    use super::*;

    pub fn create(ticket: &NewTicket) -> Result<String, HostError> {
        with_host(Capability::Tickets, |h| {
            h.tickets.push(ticket.clone());
            Ok(format!("ticket-{}", h.tickets.len()))
        })
    }
}

pub(crate) mod templates {
    use super::*;

    pub fn render(template: &str) -> Result<String, HostError> {
        with_host(Capability::Templates, |h| {
            Ok(h.templates
                .get(template)
                .cloned()
                .unwrap_or_else(|| template.to_string()))
        })
    }
}

pub(crate) mod http {
    use super::*;

    pub fn send(request: &Request) -> Result<Response, HttpError> {
        let answered = with_host(Capability::Http, |h| {
            h.requests.push(request.clone());
            let answer = h
                .answers
                .iter()
                .find(|(method, url, _)| *method == request.method && *url == request.url)
                .map(|(_, _, answer)| answer.clone());
            Ok(answer.unwrap_or_else(|| {
                Err(HttpError::Connection(format!(
                    "the mock host has no answer for {} {}",
                    request.method.as_str(),
                    request.url
                )))
            }))
        });
        match answered {
            Ok(answer) => answer,
            Err(denied) => Err(HttpError::Denied(format!("{denied:?}"))),
        }
    }
}

pub(crate) mod log {
    use super::*;

    pub fn log(level: Level, message: &str, _fields: &[(String, String)]) {
        let _ = with_host(Capability::Log, |h| {
            h.logs.push((level, message.to_string()));
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{data, plugin_info};

    /// Looks an order up, remembers it, tells the customer, and opens a
    /// ticket when it is lost; fails when the order service does.
    struct OrderStatus;

    impl Action for OrderStatus {
        type Config = Value;

        fn describe() -> crate::PluginInfo {
            plugin_info(
                "order-status",
                "1.0.0",
                "",
                serde_json::json!({}),
                &[
                    Capability::Http,
                    Capability::ConversationData,
                    Capability::Messaging,
                    Capability::Tickets,
                ],
            )
        }

        fn run(_: &Context, config: Value) -> Result<Outcome, ActionError> {
            let url = config["url"].as_str().unwrap_or_default();
            let response = crate::http::send(crate::http::get(url))?;
            if response.status != 200 {
                data::set("last_failure", &serde_json::json!(response.status))?;
                return Err(ActionError::Failed(format!("HTTP {}", response.status)));
            }
            let order =
                crate::http::json(&response).map_err(|e| ActionError::Failed(e.to_string()))?;
            data::set("order", &order)?;
            crate::messaging::send_text(&format!(
                "Your order is {}",
                order["status"].as_str().unwrap_or("?")
            ))?;
            if order["status"] == "lost" {
                crate::tickets::create(&NewTicket {
                    title: "Lost parcel".into(),
                    category: "shipping".into(),
                    comment: String::new(),
                })?;
            }
            Ok(Outcome::store("order", &order))
        }
    }

    #[test]
    fn an_action_sees_canned_answers_and_its_effects_are_kept() {
        let url = "https://orders.example/1";
        let (outcome, host) = MockHost::new()
            .with_data("vip", serde_json::json!(true))
            .answer(Method::Get, url, 200, r#"{"status": "lost"}"#)
            .run_action::<OrderStatus>(&context("where is it?"), serde_json::json!({ "url": url }));
        let outcome = outcome.unwrap();
        assert_eq!(outcome.store.unwrap().name, "order");
        assert_eq!(host.sent_texts(), ["Your order is lost"]);
        assert_eq!(host.data["order"]["status"], "lost");
        assert_eq!(host.data["vip"], true);
        assert_eq!(host.tickets[0].title, "Lost parcel");
        assert_eq!(host.requests[0].url, url);
    }

    #[test]
    fn a_failed_call_keeps_nothing_and_unanswered_requests_fail() {
        let url = "https://orders.example/2";
        let (outcome, host) = MockHost::new()
            .answer(Method::Get, url, 503, "")
            .run_action::<OrderStatus>(&context("?"), serde_json::json!({ "url": url }));
        assert!(matches!(outcome, Err(ActionError::Failed(why)) if why == "HTTP 503"));
        assert!(host.data.is_empty(), "the failed call's write is not kept");
        assert_eq!(host.requests.len(), 1);

        let (outcome, _) = MockHost::new().run_action::<OrderStatus>(
            &context("?"),
            serde_json::json!({ "url": "https://elsewhere" }),
        );
        let Err(ActionError::Http(why)) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(why.contains("no answer for GET https://elsewhere"), "{why}");
    }

    struct Undeclared;

    impl Action for Undeclared {
        type Config = Value;

        fn describe() -> crate::PluginInfo {
            plugin_info("undeclared", "1.0.0", "", serde_json::json!({}), &[])
        }

        fn run(_: &Context, _: Value) -> Result<Outcome, ActionError> {
            crate::messaging::send_text("hi")?;
            Ok(Outcome::default())
        }
    }

    #[test]
    fn an_undeclared_capability_is_refused_as_flowhost_refuses_it() {
        let (outcome, host) = MockHost::new().run_action::<Undeclared>(&context("hi"), Value::Null);
        assert!(
            matches!(outcome, Err(ActionError::Host(HostError::Denied(_)))),
            "{outcome:?}"
        );
        assert!(host.sent.is_empty());
    }

    #[test]
    fn a_bad_configuration_is_an_invalid_config_error() {
        #[derive(serde::Deserialize)]
        struct Strict {
            #[allow(dead_code)]
            text: String,
        }
        struct NeedsText;
        impl Action for NeedsText {
            type Config = Strict;
            fn describe() -> crate::PluginInfo {
                plugin_info("needs-text", "1.0.0", "", serde_json::json!({}), &[])
            }
            fn run(_: &Context, _: Strict) -> Result<Outcome, ActionError> {
                Ok(Outcome::default())
            }
        }
        let (outcome, _) = MockHost::new()
            .run_action::<NeedsText>(&context("hi"), serde_json::json!({"txt": "x"}));
        assert!(
            matches!(outcome, Err(ActionError::InvalidConfig(why)) if why.contains("missing field `text`"))
        );
    }

    /// Posts the customer's text to the bot and relays its answer.
    struct Relay;

    impl Chatbot for Relay {
        type Config = Value;

        fn describe() -> crate::PluginInfo {
            plugin_info(
                "relay",
                "1.0.0",
                "",
                serde_json::json!({}),
                &[Capability::Http],
            )
        }

        fn deliver(
            _: &Context,
            config: Value,
            session: &Session,
            inbound: Inbound,
        ) -> Result<BotTurn, AdapterError> {
            let url = config["url"].as_str().unwrap_or_default();
            let body =
                serde_json::json!({ "text": inbound.text, "reply_url": session.response_url });
            let response = crate::http::send(crate::http::post_json(url, &body))
                .map_err(|e| AdapterError::Unavailable(crate::http::explain(&e)))?;
            Relay::parse_callback(config, &response.body).map(|callback| callback.turn)
        }

        fn parse_callback(_: Value, body: &[u8]) -> Result<Callback, AdapterError> {
            let answer: Value =
                serde_json::from_slice(body).map_err(|e| AdapterError::Protocol(e.to_string()))?;
            Ok(Callback {
                conversation: String::new(),
                hash: String::new(),
                turn: BotTurn {
                    replies: vec![crate::chatbot::BotReply::text(
                        answer["reply"].as_str().unwrap_or_default(),
                    )],
                    handoff_queue: None,
                },
            })
        }
    }

    #[test]
    fn a_chatbot_adapter_talks_to_a_canned_bot_and_reads_callbacks() {
        let url = "https://bot.example/talk";
        let (turn, host) = MockHost::new()
            .answer(Method::Post, url, 200, r#"{"reply": "Hello!"}"#)
            .deliver::<Relay>(
                &context("hi"),
                serde_json::json!({ "url": url }),
                inbound("hi"),
            );
        assert_eq!(turn.unwrap().replies[0].text.as_deref(), Some("Hello!"));
        let sent: Value = serde_json::from_slice(host.requests[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(sent["text"], "hi");
        assert!(
            sent["reply_url"]
                .as_str()
                .unwrap()
                .contains("hash=test-hash")
        );

        let (turn, _) = MockHost::new().deliver::<Relay>(
            &context("hi"),
            serde_json::json!({ "url": url }),
            inbound("hi"),
        );
        assert!(
            matches!(turn, Err(AdapterError::Unavailable(_))),
            "no answer: the bot is unreachable"
        );

        let (callback, _) = MockHost::new().parse_callback::<Relay>(Value::Null, b"not json");
        assert!(matches!(callback, Err(AdapterError::Protocol(_))));
    }
}
