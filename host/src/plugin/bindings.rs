//! Host bindings generated from the WIT contract, one module per supported
//! contract version. A new contract version gets a sibling module and its own
//! frozen folder in `wit/`; the older ones stay so old plugins keep running.

/// Contract versions this host can run, newest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.2.0", "0.1.0"];

/// `flowhost:plugin@0.1.0`.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/flowhost-plugin@0.1.0",
        world: "action",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    /// The chatbot world reuses the capability interfaces generated above.
    pub mod chatbot {
        wasmtime::component::bindgen!({
            path: "../wit/flowhost-plugin@0.1.0",
            world: "chatbot",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "flowhost:plugin/types": crate::plugin::bindings::v0_1_0::flowhost::plugin::types,
                "flowhost:plugin/log": crate::plugin::bindings::v0_1_0::flowhost::plugin::log,
                "flowhost:plugin/conversation-data": crate::plugin::bindings::v0_1_0::flowhost::plugin::conversation_data,
                "flowhost:plugin/templates": crate::plugin::bindings::v0_1_0::flowhost::plugin::templates,
                "flowhost:plugin/http": crate::plugin::bindings::v0_1_0::flowhost::plugin::http,
            },
        });
    }
}

/// `flowhost:plugin@0.2.0`: the translator world. Its imports are the 0.1.0
/// capability interfaces, unchanged, so they map onto the modules above
/// (one implementation of each capability serves every version).
pub mod v0_2_0 {
    wasmtime::component::bindgen!({
        path: "../wit/flowhost-plugin@0.2.0",
        world: "translator",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "flowhost:plugin/types@0.1.0": crate::plugin::bindings::v0_1_0::flowhost::plugin::types,
            "flowhost:plugin/log@0.1.0": crate::plugin::bindings::v0_1_0::flowhost::plugin::log,
            "flowhost:plugin/http@0.1.0": crate::plugin::bindings::v0_1_0::flowhost::plugin::http,
        },
    });
}
