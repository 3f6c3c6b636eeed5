//! The plugins a server runs: the built-ins plus partners' components from
//! a directory, each loaded once at start-up with its settings.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::builtin;
use crate::plugin::{LoadError, Plugin, PluginKind, PluginRuntime, PluginSettings};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("two plugins are named `{name}` ({first} and {second})")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("reading plugin directory {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error("settings are given for plugin `{0}`, but no plugin (nor any upload) has that name")]
    UnknownSettings(String),
}

/// Loaded plugins by name.
#[derive(Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, (Arc<Plugin>, String)>,
}

impl PluginRegistry {
    /// Loads the built-ins and every `*.wasm` in `extra_dir`. `settings`
    /// are keyed by the name a plugin declares (its file may be called
    /// anything); two plugins may not declare one name.
    pub async fn load(
        runtime: &PluginRuntime,
        extra_dir: Option<&Path>,
        settings: &BTreeMap<String, PluginSettings>,
    ) -> Result<Self, RegistryError> {
        let mut registry = PluginRegistry::default();
        for (package, bytes) in builtin::components() {
            let plugin_settings = settings
                .get(*package)
                .cloned()
                .unwrap_or_else(|| builtin::default_settings(package));
            let plugin = runtime.load(package, bytes, &plugin_settings).await?;
            registry.insert(plugin, format!("built-in {package}"))?;
        }
        if let Some(dir) = extra_dir {
            let entries = std::fs::read_dir(dir).map_err(|e| RegistryError::Directory {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            let mut files: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect();
            files.sort();
            for path in files {
                let bytes = std::fs::read(&path).map_err(|e| RegistryError::Directory {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                let label = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let plugin = load_by_declared_name(runtime, &label, &bytes, settings).await?;
                registry.insert(plugin, path.display().to_string())?;
            }
        }
        Ok(registry)
    }

    /// Refuses settings for a plugin nobody has: neither one of these nor
    /// an upload named in `uploaded` (a typo would silently go unused).
    pub fn check_settings(
        &self,
        settings: &BTreeMap<String, PluginSettings>,
        uploaded: &std::collections::BTreeSet<String>,
    ) -> Result<(), RegistryError> {
        match settings
            .keys()
            .find(|name| !self.plugins.contains_key(*name) && !uploaded.contains(*name))
        {
            Some(unknown) => Err(RegistryError::UnknownSettings(unknown.clone())),
            None => Ok(()),
        }
    }

    fn insert(&mut self, plugin: Plugin, origin: String) -> Result<(), RegistryError> {
        let name = plugin.name().to_string();
        if let Some((_, first)) = self.plugins.get(&name) {
            return Err(RegistryError::Duplicate {
                name,
                first: first.clone(),
                second: origin,
            });
        }
        self.plugins.insert(name, (Arc::new(plugin), origin));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.get(name).map(|(plugin, _)| plugin.clone())
    }

    /// Every plugin with where it came from, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<Plugin>, &str)> {
        self.plugins
            .values()
            .map(|(plugin, origin)| (plugin, origin.as_str()))
    }

    /// Names of the plugins of one kind.
    pub fn names(&self, kind: PluginKind) -> Vec<String> {
        self.plugins
            .values()
            .filter(|(plugin, _)| plugin.info().kind == kind)
            .map(|(plugin, _)| plugin.name().to_string())
            .collect()
    }
}

/// The plugins one flow version runs with: the server's own (built-ins and
/// the plugin directory's) and the uploads the version pins, by name.
#[derive(Clone)]
pub struct PluginSet {
    base: Arc<PluginRegistry>,
    pinned: BTreeMap<String, Arc<Plugin>>,
}

impl PluginSet {
    /// The server's own plugins only.
    pub fn base(registry: Arc<PluginRegistry>) -> Self {
        PluginSet {
            base: registry,
            pinned: BTreeMap::new(),
        }
    }

    /// The server's own plugins and `pinned` uploads (never named like one
    /// of the server's own: uploads that are are refused).
    pub fn with_pinned(
        registry: Arc<PluginRegistry>,
        pinned: BTreeMap<String, Arc<Plugin>>,
    ) -> Self {
        PluginSet {
            base: registry,
            pinned,
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.pinned
            .get(name)
            .cloned()
            .or_else(|| self.base.get(name))
    }

    /// Every plugin of the set.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.base
            .iter()
            .map(|(plugin, _)| plugin)
            .chain(self.pinned.values())
    }
}

/// Loads a partner's component with the settings of the name it declares,
/// whatever its file is called: it is first loaded with the default
/// settings (the narrowest: no HTTP host, default limits; `describe` runs
/// with no capability), then again with its name's settings if the
/// configuration has any (the compiled code is cached, so that is cheap).
/// A file named after a built-in gets nothing of the built-in's.
pub(crate) async fn load_by_declared_name(
    runtime: &PluginRuntime,
    label: &str,
    bytes: &[u8],
    settings: &BTreeMap<String, PluginSettings>,
) -> Result<Plugin, crate::plugin::LoadError> {
    let plugin = runtime
        .load(label, bytes, &PluginSettings::default())
        .await?;
    match settings.get(plugin.name()) {
        Some(own) => runtime.load(label, bytes, own).await,
        None => Ok(plugin),
    }
}
