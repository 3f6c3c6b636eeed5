//! # flowhost-sdk
//!
//! Write flowhost plugins in Rust. A plugin is a `wasm32-wasip2` component
//! that exports one of the worlds of the WIT package `flowhost:plugin` (see
//! `wit/` in the flowhost repository):
//!
//! - an **action** runs as one step of a decision tree ([`Action`],
//!   [`export_action!`]; contract 0.1.0);
//! - a **chatbot adapter** speaks a third-party bot's protocol
//!   ([`Chatbot`], [`export_chatbot!`]; contract 0.1.0);
//! - a **translator** turns customers' messages into agents' languages and
//!   back ([`Translator`], [`export_translator!`]; contract 0.2.0).
//!
//! A plugin implements one trait and calls one macro. What it may do beyond
//! computing is limited to the capabilities it declares in `describe`:
//! [`log`], [`data`] (the conversation's saved data), [`messaging`],
//! [`tickets`], [`templates`] and [`http`]. The host refuses every other call,
//! and bounds each call in time and memory.
//!
//! Build with `cargo build --release --target wasm32-wasip2` and a crate of
//! type `cdylib`; the output `.wasm` file is already a component.
//!
//! Test with a plain `cargo test`: built for your machine, the capabilities
//! go to a [`testing::MockHost`] that answers HTTP as the test says, keeps
//! saved data, messages and tickets, and refuses what flowhost refuses.
//!
//! ## Example: an action
//!
#![doc = concat!("```no_run\n", include_str!("../examples/greet.rs"), "```")]
//!
//! ## Example: a chatbot adapter
//!
#![doc = concat!("```no_run\n", include_str!("../examples/relay_bot.rs"), "```")]

// The generated bindings name this crate by its absolute path, so that the
// export macros expand correctly inside plugin crates.
extern crate self as flowhost_sdk;

pub mod action;
#[doc(hidden)]
pub mod bindings;
pub mod chatbot;
pub mod data;
pub mod http;
pub mod log;
pub mod messaging;
pub mod templates;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod tickets;
pub mod translator;

pub use action::{Action, ActionError, Outcome};
pub use chatbot::Chatbot;
pub use translator::Translator;
pub use types::{
    Attachment, Button, Capability, Contact, Context, Conversation, HostError, Message, NamedValue,
    OutgoingMessage, PluginInfo, QuickReply,
};

use bindings::action::flowhost::plugin::types;

/// Builds the [`PluginInfo`] a plugin returns from `describe`.
pub fn plugin_info(
    name: &str,
    version: &str,
    description: &str,
    config_schema: serde_json::Value,
    capabilities: &[Capability],
) -> PluginInfo {
    PluginInfo {
        name: name.to_string(),
        version: version.to_string(),
        description: description.to_string(),
        config_schema: config_schema.to_string(),
        capabilities: capabilities.to_vec(),
    }
}

/// The conversation's saved data as sent with the context (a JSON object).
pub fn saved_data(context: &Context) -> serde_json::Value {
    serde_json::from_str(&context.data).unwrap_or_default()
}

/// Parses a plugin's JSON configuration, naming the field that is wrong.
fn parse_config<C: serde::de::DeserializeOwned>(config: &str) -> Result<C, String> {
    serde_json::from_str(config).map_err(|e| format!("configuration: {e}"))
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::action::run_action;
    pub use crate::bindings::action::exports::flowhost::plugin::action_plugin::Guest as ActionGuest;
    pub use crate::bindings::chatbot::exports::flowhost::plugin::chatbot_adapter::Guest as ChatbotGuest;
    pub use crate::bindings::translator::exports::flowhost::plugin0_2_0::translator_plugin::Guest as TranslatorGuest;
    pub use crate::chatbot::{chatbot_callback, chatbot_deliver};
    pub use crate::translator::translator_translate;
}
