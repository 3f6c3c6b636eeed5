//! `flowhost plugin list | describe | run`: plugins without a server
//! (`plugin test` is in `plugin_test`, `plugin new` in `scaffold`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use crate::plugin::{
    ActionContext, Contact, Conversation, InboundMessage, Plugin, PluginRuntime, PluginSettings,
    RuntimeConfig,
};

/// The runtime the plugin tools run in; compiled components are kept in
/// `cache_dir` (the configuration's `runtime.cache_dir`) when there is one.
pub(super) fn runtime(cache_dir: Option<&Path>) -> anyhow::Result<PluginRuntime> {
    PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 2,
        cache_dir: cache_dir.map(Path::to_path_buf),
        ..RuntimeConfig::default()
    })
}

/// Lists the built-in plugins (and those of `dir`), with their
/// configuration schemas when `schemas` is set.
pub async fn list(
    dir: Option<PathBuf>,
    schemas: bool,
    cache_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let runtime = runtime(cache_dir)?;
    let registry =
        crate::registry::PluginRegistry::load(&runtime, dir.as_deref(), &Default::default())
            .await?;
    for (plugin, origin) in registry.iter() {
        let info = plugin.info();
        let caps: Vec<String> = info.capabilities.iter().map(|c| c.to_string()).collect();
        println!(
            "{:<18} {:<8} {:<10} [{}]  {}  ({origin})",
            info.name,
            info.version,
            format!("{:?}", info.kind).to_lowercase(),
            caps.join(", "),
            info.description
        );
        if schemas {
            println!("{}", serde_json::to_string_pretty(&info.config_schema)?);
        }
    }
    Ok(())
}

/// Prints what a plugin (a built-in by name, or a component file) declares.
pub async fn describe(plugin: &str, cache_dir: Option<&Path>) -> anyhow::Result<()> {
    let runtime = runtime(cache_dir)?;
    let plugin = load(&runtime, plugin, None).await?;
    println!("{}", serde_json::to_string_pretty(plugin.info())?);
    Ok(())
}

/// Loads a built-in by name, else the component file at `plugin`, with
/// the built-in's default settings (or `settings`).
pub(super) async fn load(
    runtime: &PluginRuntime,
    plugin: &str,
    settings: Option<PluginSettings>,
) -> anyhow::Result<Plugin> {
    let (label, bytes) = match crate::builtin::components()
        .iter()
        .find(|(name, _)| *name == plugin)
    {
        Some((name, bytes)) => (name.to_string(), bytes.to_vec()),
        None => {
            let bytes = std::fs::read(plugin).with_context(|| {
                format!("`{plugin}` is neither a built-in plugin nor a readable component file")
            })?;
            let stem = std::path::Path::new(plugin)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (stem, bytes)
        }
    };
    let settings = settings.unwrap_or_else(|| crate::builtin::default_settings(&label));
    Ok(runtime.load(&label, &bytes, &settings).await?)
}

/// What `flowhost plugin run` was asked to do.
pub struct RunOptions {
    pub plugin: String,
    pub config: String,
    pub text: String,
    pub language: String,
    /// The conversation's saved data, a JSON object.
    pub data: String,
    pub allow_hosts: Vec<String>,
    pub allow_private_networks: bool,
}

/// Runs an action once and prints its output (the value it keeps, the
/// target it picks, saved-data changes, messages, tickets; its log lines go
/// to stderr); `Ok(false)` if it failed.
pub async fn run(options: RunOptions, cache_dir: Option<&Path>) -> anyhow::Result<bool> {
    let runtime = runtime(cache_dir)?;
    let config: serde_json::Value =
        serde_json::from_str(&options.config).context("--plugin-config is not JSON")?;
    let data: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&options.data).context("--data is not a JSON object")?;
    let builtin = crate::builtin::components()
        .iter()
        .any(|(name, _)| *name == options.plugin);
    let mut settings = if builtin {
        crate::builtin::default_settings(&options.plugin)
    } else {
        PluginSettings::default()
    };
    if !options.allow_hosts.is_empty() {
        settings.http.allowed_hosts = options.allow_hosts;
    }
    settings.http.allow_private_networks |= options.allow_private_networks;
    let loaded = load(&runtime, &options.plugin, Some(settings)).await?;
    let context = context(options.text, options.language, data, Contact::default());
    let config =
        crate::templates::render_json(runtime.templates(), &config, &context.template_context())
            .await?;
    match runtime.run_action(&loaded, context, &config).await {
        Ok(output) => {
            println!("{}", serde_json::to_string_pretty(&output)?);
            Ok(true)
        }
        Err(error) => {
            eprintln!("error ({}): {error}", error.code());
            Ok(false)
        }
    }
}

/// The context `plugin run` and `plugin test` run a plugin in.
pub(super) fn context(
    text: String,
    language: String,
    data: BTreeMap<String, Value>,
    contact: Contact,
) -> ActionContext {
    ActionContext {
        conversation: Conversation {
            id: "cli".into(),
            channel: "cli".into(),
            ..Default::default()
        },
        contact: Contact {
            id: "cli-user".into(),
            ..contact
        },
        last_message: Some(InboundMessage {
            id: "cli-1".into(),
            text: Some(text),
            ..Default::default()
        }),
        data,
        language,
        ..Default::default()
    }
}
