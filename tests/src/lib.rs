//! Shared fixtures of the end-to-end tests: the components built from
//! source, runtimes, contexts, and local HTTP servers on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use flowhost::config::ServerConfig;
use flowhost::plugin::{
    ActionContext, Contact, Conversation, InboundMessage, PluginRuntime, RuntimeConfig,
};

pub mod browser;
pub mod graph;
pub mod instagram;
pub mod meta_login;
pub mod partner;
pub mod stress;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// A test guest from `tests/guests`, built by this crate's build script.
pub fn guest(package: &str) -> &'static [u8] {
    generated::COMPONENTS
        .iter()
        .find(|(name, _)| *name == package)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no test guest named {package}"))
}

/// A built-in plugin's component, as embedded in the host.
pub fn builtin(package: &str) -> &'static [u8] {
    flowhost::builtin::components()
        .iter()
        .find(|(name, _)| *name == package)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no built-in plugin named {package}"))
}

/// A compiled-artifact cache shared by the tests of one build, so each
/// component is compiled once per test run rather than once per test.
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("FLOWHOST_TEST_PLUGIN_CACHE"))
}

/// A runtime with a small pool, sharing the compiled-artifact cache.
pub fn runtime() -> PluginRuntime {
    PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 8,
        max_memory_bytes: 64 * 1024 * 1024,
        cache_dir: Some(shared_cache_dir()),
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// A conversation context with a customer message.
pub fn context(conversation: &str, text: &str, language: &str) -> ActionContext {
    ActionContext {
        conversation: Conversation {
            id: conversation.into(),
            channel: "instagram".into(),
            account_id: "17841400000000000".into(),
            started_at_ms: 1_700_000_000_000,
        },
        contact: Contact {
            id: "IGSID-1".into(),
            name: Some("Ada".into()),
            username: Some("ada.l".into()),
        },
        last_message: Some(InboundMessage {
            id: "mid.1".into(),
            text: Some(text.into()),
            payload: None,
            attachments: Vec::new(),
            timestamp_ms: 1_700_000_000_500,
        }),
        data: BTreeMap::new(),
        language: language.into(),
        results: BTreeMap::new(),
    }
}

/// Serves `router` on an ephemeral loopback port until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("test server runs");
    });
    addr
}

/// This process's resident memory, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// Settings that let the `request` plugin reach stand-ins on loopback.
pub fn loopback_request() -> flowhost::plugin::PluginSettings {
    flowhost::plugin::PluginSettings {
        http: flowhost::plugin::HttpPolicy {
            allowed_hosts: vec!["127.0.0.1".into()],
            allow_private_networks: true,
        },
        ..Default::default()
    }
}

/// The admin token of [`server_config`].
pub const ADMIN_TOKEN: &str = "test-admin-token-of-at-least-32-bytes";

/// A server configuration for tests: `flow` (YAML text) written into `dir`,
/// an ephemeral loopback port, data in `dir`, the shared plugin cache.
pub fn server_config(dir: &std::path::Path, flow: &str) -> ServerConfig {
    let flow_path = dir.join("flow.yaml");
    std::fs::write(&flow_path, flow).expect("write the flow");
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: dir.join("data"),
        flow: Some(flow_path),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..ServerConfig::default()
    };
    config.runtime.max_concurrent_calls = 4;
    config.runtime.cache_dir = Some(shared_cache_dir());
    config
}
