//! The server's configuration: a YAML (or JSON) file whose every field has a
//! default, so `flowhost serve` runs with no file at all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::channels::instagram::login::InstagramLoginSettings;
use crate::plugin::{PluginSettings, RuntimeConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// sled's database and the compiled-plugin cache live here.
    pub data_dir: PathBuf,
    /// Bearer token of the admin API. Unset: read `FLOWHOST_ADMIN_TOKEN`,
    /// else generate one into `<data_dir>/admin-token` on first start.
    pub admin_token: Option<String>,
    /// Bearer token a Prometheus scraper presents at `/metrics`. Unset: the
    /// admin token (give the scraper its own).
    pub metrics_token: Option<String>,
    /// The flow document to run. Without one the server answers health
    /// probes and the admin API, and refuses webhooks.
    pub flow: Option<PathBuf>,
    /// This server's public base URL (chatbots' callback URLs).
    pub public_url: Option<String>,
    /// Partners' plugin components (`*.wasm`), loaded beside the built-ins.
    pub plugins_dir: Option<PathBuf>,
    /// The plugin runtime as a whole.
    pub runtime: RuntimeConfig,
    /// Limits and HTTP policy per plugin name.
    pub plugins: BTreeMap<String, PluginSettings>,
    /// How much the intake works on at once.
    pub intake: IntakeSettings,
    /// The embedded store (sled).
    pub storage: crate::storage::StorageSettings,
    /// Bounds on HTTP connections and requests.
    pub http: crate::server::HttpLimits,
    /// How long a stop may take: intake stops, turns under way finish,
    /// retries stop, storage is flushed; past it the process exits anyway.
    pub shutdown_timeout_ms: u64,
    /// Analytics facts older than this many days are removed (daily).
    pub analytics_retention_days: u64,
    /// The Meta app through which admins connect Instagram accounts from
    /// the admin page; unset: accounts cannot be connected that way.
    pub instagram_login: Option<InstagramLoginSettings>,
    /// The key that seals connected accounts' tokens at rest (64 hex
    /// digits). Unset: `FLOWHOST_SECRETS_KEY`, else `<data_dir>/secrets.key`,
    /// generated once a Meta app is configured. Keep it apart from backups
    /// of the data.
    pub secrets_key_file: Option<PathBuf>,
}

/// `intake:` in the configuration.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    /// Turns running at once, across conversations (a slow one holds one).
    pub max_turns: usize,
    /// Inbound events held in memory, dispatched and not finished.
    pub max_held_events: usize,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        let limits = crate::intake::IntakeLimits::default();
        IntakeSettings {
            max_turns: limits.turns,
            max_held_events: limits.held_events,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("flowhost-data"),
            admin_token: None,
            metrics_token: None,
            flow: None,
            public_url: None,
            plugins_dir: None,
            runtime: RuntimeConfig::default(),
            plugins: BTreeMap::new(),
            intake: IntakeSettings::default(),
            storage: Default::default(),
            http: Default::default(),
            shutdown_timeout_ms: 10_000,
            analytics_retention_days: 400,
            instagram_login: None,
            secrets_key_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
}

impl ServerConfig {
    /// Reads the file at `path`; the error names the file and, for syntax
    /// or field errors, the line and the field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        serde_norway::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The compiled-plugin cache, unless the runtime section names one.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.runtime
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugin-cache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_a_default_and_unknown_fields_are_errors() {
        let config: ServerConfig =
            serde_norway::from_str("listen: 0.0.0.0:9000\nstorage: { cache_mb: 64 }\n").unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data_dir, PathBuf::from("flowhost-data"));
        assert_eq!(config.storage.cache_mb, 64);

        let err = serde_norway::from_str::<ServerConfig>(
            "plugins:\n  request:\n    limits:\n      guest_time: 5\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `guest_time`"),
            "{err}"
        );
    }

    #[test]
    fn plugin_settings_override_defaults_field_by_field() {
        let yaml = "plugins:\n  request:\n    limits:\n      http_timeout_ms: 2500\n    http:\n      allowed_hosts: [api.shop.example]\n";
        let config: ServerConfig = serde_norway::from_str(yaml).unwrap();
        let request = &config.plugins["request"];
        assert_eq!(request.limits.http_timeout_ms, 2500);
        assert_eq!(
            request.limits.guest_time_ms,
            crate::plugin::Limits::default().guest_time_ms
        );
        assert_eq!(request.http.allowed_hosts, ["api.shop.example"]);
    }
}
