//! The built-in plugins: the actions `request`, `send-message`,
//! `save-data` and `create-ticket`, the chatbot adapters `webhook-bot` and
//! `rasa`, and the translator `phrase-translator`, compiled from `plugins/` by `build.rs` with the SDK like
//! any partner's plugin, and embedded in the binary.

use crate::plugin::{HttpPolicy, PluginSettings};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// `(package name, component bytes)` of every built-in plugin.
pub fn components() -> &'static [(&'static str, &'static [u8])] {
    generated::COMPONENTS
}

/// The settings a built-in gets unless the configuration says otherwise:
/// `request` and the chatbot adapters (`webhook-bot`, `rasa`) may call any
/// host with a public address (the flow's admin chooses the URL; private
/// networks stay closed), the others no host.
pub fn default_settings(name: &str) -> PluginSettings {
    let mut settings = PluginSettings::default();
    if matches!(name, "request" | "webhook-bot" | "rasa") {
        settings.http = HttpPolicy {
            allowed_hosts: vec!["*".into()],
            allow_private_networks: false,
        };
    }
    settings
}
