//! Plugins uploaded through the admin API. An upload is checked the way a
//! plugin is at start (a component for a contract this host speaks, that
//! describes itself with a configuration schema that compiles), compiled
//! once into the artifact cache, and stored by the SHA-256 of its bytes.
//! It changes nothing by itself: the sandbox pins it by name, and
//! production runs it only once that sandbox is applied. Each flow version
//! keeps its pins, so a rollback brings back the plugins it ran with.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sha2::Digest;

use crate::model::version::UploadedPlugin;
use crate::plugin::{LoadError, Plugin, PluginRuntime, PluginSettings};
use crate::registry::{PluginRegistry, PluginSet};
use crate::storage::{Storage, StorageError};

/// The largest component accepted (the built-ins are 0.1 to 2 MB; a
/// Python or JavaScript component with its interpreter is 10 to 30 MB).
pub const MAX_UPLOAD_BYTES: usize = 48 * 1024 * 1024;

/// Distinct components kept; an upload beyond is refused, so storage stays
/// bounded however often a script uploads.
pub const MAX_UPLOADS: usize = 500;

/// Compiled uploads kept in memory beyond those a running version uses.
const LOADED_KEPT: usize = 32;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the component is {size} bytes; at most {MAX_UPLOAD_BYTES} are accepted")]
    TooLarge { size: usize },
    #[error("{MAX_UPLOADS} components are stored already; no more are accepted")]
    TooMany,
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "the component declares itself `{0}`, the name of one of this server's own plugins (built-in or from its plugin directory); an upload may not replace one"
    )]
    ReservedName(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Uploaded components: stored, and compiled on demand (kept while used).
pub struct Uploads {
    runtime: Arc<PluginRuntime>,
    registry: Arc<PluginRegistry>,
    storage: Storage,
    /// Settings by declared name (the server configuration's `plugins`).
    settings: BTreeMap<String, PluginSettings>,
    /// Compiled uploads by hash.
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
}

impl Uploads {
    pub fn new(
        runtime: Arc<PluginRuntime>,
        registry: Arc<PluginRegistry>,
        storage: Storage,
        settings: BTreeMap<String, PluginSettings>,
    ) -> Self {
        Uploads {
            runtime,
            registry,
            storage,
            settings,
            loaded: Mutex::default(),
        }
    }

    /// The server's own plugins.
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Checks, compiles and stores a component. Nothing is stored unless
    /// every check passed.
    pub async fn upload(&self, bytes: Vec<u8>, now_ms: u64) -> Result<UploadedPlugin, UploadError> {
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(UploadError::TooLarge { size: bytes.len() });
        }
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let plugin = self.load(&sha256, &bytes).await?;
        let info = plugin.info();
        if self.registry.get(&info.name).is_some() {
            return Err(UploadError::ReservedName(info.name.clone()));
        }
        let record = UploadedPlugin {
            sha256: sha256.clone(),
            name: info.name.clone(),
            kind: serde_json::to_value(info.kind)
                .ok()
                .and_then(|kind| kind.as_str().map(str::to_string))
                .unwrap_or_default(),
            version: info.version.clone(),
            contract: info.contract.clone(),
            size_bytes: bytes.len() as u64,
            uploaded_at_ms: now_ms,
        };
        let known = self.storage.uploads().await?;
        if !known.iter().any(|r| r.sha256 == sha256) && known.len() >= MAX_UPLOADS {
            return Err(UploadError::TooMany);
        }
        let record = self.storage.put_upload(record, bytes).await?;
        self.keep(sha256, plugin);
        tracing::info!(plugin = %record.name, sha256 = %record.sha256, "plugin uploaded");
        Ok(record)
    }

    /// The plugins a version with these pins runs with. An error names the
    /// pin that cannot be had.
    pub async fn set(&self, pins: &BTreeMap<String, String>) -> Result<PluginSet, String> {
        let mut pinned = BTreeMap::new();
        for (name, sha256) in pins {
            let plugin = self
                .plugin(sha256)
                .await
                .map_err(|why| format!("plugin `{name}` ({sha256}): {why}"))?;
            if plugin.name() != name {
                return Err(format!(
                    "plugin `{name}` ({sha256}) declares itself `{}`",
                    plugin.name()
                ));
            }
            pinned.insert(name.clone(), plugin);
        }
        Ok(PluginSet::with_pinned(self.registry.clone(), pinned))
    }

    /// An uploaded plugin by hash: compiled already, or from storage.
    async fn plugin(&self, sha256: &str) -> Result<Arc<Plugin>, String> {
        if let Some(plugin) = self.loaded.lock().expect("uploads lock").get(sha256) {
            return Ok(plugin.clone());
        }
        let bytes = self
            .storage
            .upload_bytes(sha256)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no component with this hash was uploaded")?;
        let plugin = self.load(sha256, &bytes).await.map_err(|e| e.to_string())?;
        Ok(self.keep(sha256.to_string(), plugin))
    }

    /// Loads a component with the settings given for the name it declares
    /// (so settings never depend on how the file was called).
    async fn load(&self, sha256: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let label = format!("upload {}", &sha256[..12]);
        crate::registry::load_by_declared_name(&self.runtime, &label, bytes, &self.settings).await
    }

    /// Keeps a compiled upload; forgets the ones no running version uses
    /// once more than [`LOADED_KEPT`] are kept.
    fn keep(&self, sha256: String, plugin: Plugin) -> Arc<Plugin> {
        let mut loaded = self.loaded.lock().expect("uploads lock");
        let plugin = loaded
            .entry(sha256)
            .or_insert_with(|| Arc::new(plugin))
            .clone();
        if loaded.len() > LOADED_KEPT {
            loaded.retain(|_, kept| Arc::strong_count(kept) > 1);
        }
        plugin
    }
}
