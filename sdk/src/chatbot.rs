//! The `chatbot` world: an adapter between flowhost and a third-party bot.

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
        #[doc(hidden)]
        pub struct __FlowhostChatbotExport;

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

        $crate::bindings::chatbot::export_chatbot_world!(
            __FlowhostChatbotExport with_types_in $crate::bindings::chatbot
        );
    };
}
