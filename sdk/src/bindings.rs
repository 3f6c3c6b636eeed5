//! Bindings generated from the WIT package `flowhost:plugin@0.1.0`.
//!
//! Both worlds share the capability interfaces: the `chatbot` world maps them
//! onto the modules generated for the `action` world, so a `HostError` or an
//! `http::Request` is one Rust type whichever world a plugin exports.
//!
//! `sdk/wit` links to the repository's `wit/`, so the published package
//! carries the WIT it was built from (`cargo package` follows the link).

/// The `action` world: capability imports plus the `action-plugin` export.
pub mod action {
    wit_bindgen::generate!({
        world: "action",
        path: "wit/flowhost-plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_action_world",
        default_bindings_module: "flowhost_sdk::bindings::action",
        runtime_path: "flowhost_sdk::__private::wit_bindgen::rt",
        generate_all,
    });
}

/// The `chatbot` world: the same capabilities plus the `chatbot-adapter` export.
pub mod chatbot {
    wit_bindgen::generate!({
        world: "chatbot",
        path: "wit/flowhost-plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_chatbot_world",
        default_bindings_module: "flowhost_sdk::bindings::chatbot",
        runtime_path: "flowhost_sdk::__private::wit_bindgen::rt",
        with: {
            "flowhost:plugin/types@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::types,
            "flowhost:plugin/log@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::log,
            "flowhost:plugin/conversation-data@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::conversation_data,
            "flowhost:plugin/templates@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::templates,
            "flowhost:plugin/http@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::http,
        },
    });
}

/// The `translator` world of `flowhost:plugin@0.2.0`: the 0.1.0 `log` and
/// `http` capabilities (the same Rust types as above) plus the
/// `translator-plugin` export.
pub mod translator {
    wit_bindgen::generate!({
        world: "translator",
        path: "wit/flowhost-plugin@0.2.0",
        pub_export_macro: true,
        export_macro_name: "export_translator_world",
        default_bindings_module: "flowhost_sdk::bindings::translator",
        runtime_path: "flowhost_sdk::__private::wit_bindgen::rt",
        with: {
            "flowhost:plugin/types@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::types,
            "flowhost:plugin/log@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::log,
            "flowhost:plugin/http@0.1.0": flowhost_sdk::bindings::action::flowhost::plugin::http,
        },
    });
}
