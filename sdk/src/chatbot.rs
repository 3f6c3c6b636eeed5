//! The `chatbot` world: an adapter between flowhost and a third-party bot.
//!
//! An adapter translates between flowhost and one bot protocol; it keeps
//! no state between calls (each call gets a fresh instance).
//!
//! - [`Chatbot::deliver`] is called for every customer message while the
//!   conversation is at the chatbot node, and once for the start message
//!   when the node has `send_start_message` (`inbound.is_start`). The
//!   [`Session`] carries the `response_url` the bot may post later answers
//!   to (it names the conversation and its `hash`), and the node's custom
//!   fields, already rendered. Return the bot's immediate answer as a
//!   [`BotTurn`]: replies to send, and `handoff_queue` to hand the
//!   conversation to a queue (a queue's key or one of the node's
//!   `queue_aliases`). Return an empty turn when the bot answers later.
//! - [`Chatbot::parse_callback`] reads a body the bot posted to the callback
//!   URL. The host has already checked the URL's conversation and hash when
//!   the URL carries them; return them from the body (or leave them empty)
//!   for protocols whose callback URL is fixed. The host compares them in
//!   constant time, refuses a callback for a conversation that has left
//!   the chatbot, and drops repeats.
//! - Errors: [`AdapterError::Unavailable`] (no connection, an error status)
//!   and [`AdapterError::Protocol`] (an answer the protocol does not allow)
//!   send the conversation to the node's fallback, so the customer is never
//!   left unanswered; so does running past the node's `timeout_seconds`.
//!   `Protocol` from `parse_callback` answers the bot 400 with its text.
//! - The configuration is the node's `url` and `send_attachments` plus its
//!   `config:`; declare a JSON Schema for it in `describe`, and validation
//!   checks flows against it.
//!
//! See `examples/relay_bot.rs` for a complete adapter, and the built-in
//! `plugins/webhook-bot` and `plugins/rasa` for real protocols.

use crate::bindings::chatbot::exports::flowhost::plugin::chatbot_adapter;
use crate::{Context, HostError, OutgoingMessage, PluginInfo};

pub use chatbot_adapter::{
    AdapterError, BotReply, BotTurn, Callback, CustomField, Inbound, Session,
};

/// A chatbot adapter. Implement it, then call [`export_chatbot!`].
///
/// [`export_chatbot!`]: crate::export_chatbot
pub trait Chatbot {
    /// The chatbot node's configuration from the flow, parsed from JSON.
    type Config: serde::de::DeserializeOwned;

    /// Name, version, configuration schema and the capabilities used.
    fn describe() -> PluginInfo;

    /// Forwards one customer message (or the start message) to the bot and
    /// returns what it answered at once.
    fn deliver(
        context: &Context,
        config: Self::Config,
        session: &Session,
        inbound: Inbound,
    ) -> Result<BotTurn, AdapterError>;

    /// Reads a body the bot posted to the session's `response-url`.
    fn parse_callback(config: Self::Config, body: &[u8]) -> Result<Callback, AdapterError>;
}

impl BotReply {
    /// A reply with text only.
    pub fn text(text: impl Into<String>) -> Self {
        BotReply {
            text: Some(text.into()),
            buttons: Vec::new(),
            quick_replies: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

impl From<BotReply> for OutgoingMessage {
    fn from(reply: BotReply) -> Self {
        OutgoingMessage {
            text: reply.text,
            buttons: reply.buttons,
            quick_replies: reply.quick_replies,
            attachments: reply.attachments,
        }
    }
}

impl From<HostError> for AdapterError {
    fn from(error: HostError) -> Self {
        AdapterError::Host(error)
    }
}

/// Parses the configuration and calls `B::deliver`; used by [`export_chatbot!`].
///
/// [`export_chatbot!`]: crate::export_chatbot
pub fn chatbot_deliver<B: Chatbot>(
    context: Context,
    config: String,
    session: Session,
    inbound: Inbound,
) -> Result<BotTurn, AdapterError> {
    let config = crate::parse_config::<B::Config>(&config).map_err(AdapterError::InvalidConfig)?;
    B::deliver(&context, config, &session, inbound)
}

/// Parses the configuration and calls `B::parse_callback`.
pub fn chatbot_callback<B: Chatbot>(
    config: String,
    body: Vec<u8>,
) -> Result<Callback, AdapterError> {
    let config = crate::parse_config::<B::Config>(&config).map_err(AdapterError::InvalidConfig)?;
    B::parse_callback(config, &body)
}

/// Exports a type implementing [`Chatbot`] as the plugin's `chatbot-adapter`.
///
/// ```ignore
/// flowhost_sdk::export_chatbot!(MyAdapter);
/// ```
#[macro_export]
macro_rules! export_chatbot {
    ($plugin:ty) => {
        // The component's exports exist only in the wasm build: natively (a
        // plugin's `cargo test`) the plugin is run through
        // `flowhost_sdk::testing`, and these symbols would not link.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __FlowhostChatbotExport;

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::PluginInfo = <$plugin as $crate::Chatbot>::describe;

        #[cfg(target_arch = "wasm32")]
        impl $crate::__private::ChatbotGuest for __FlowhostChatbotExport {
            fn describe() -> $crate::PluginInfo {
                <$plugin as $crate::Chatbot>::describe()
            }

            fn deliver(
                context: $crate::Context,
                config: ::std::string::String,
                session: $crate::chatbot::Session,
                inbound: $crate::chatbot::Inbound,
            ) -> ::std::result::Result<$crate::chatbot::BotTurn, $crate::chatbot::AdapterError> {
                $crate::__private::chatbot_deliver::<$plugin>(context, config, session, inbound)
            }

            fn parse_callback(
                config: ::std::string::String,
                body: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<$crate::chatbot::Callback, $crate::chatbot::AdapterError> {
                $crate::__private::chatbot_callback::<$plugin>(config, body)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::chatbot::export_chatbot_world!(
            __FlowhostChatbotExport with_types_in $crate::bindings::chatbot
        );
    };
}
