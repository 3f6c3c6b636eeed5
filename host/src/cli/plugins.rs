//! `flowhost plugin list | describe | run`: plugins without a server.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::plugin::{
    ActionContext, Contact, Conversation, InboundMessage, PluginRuntime, RuntimeConfig,
};

/// Lists the built-in plugins (and those of `dir`).
pub async fn list(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    })?;
    let registry =
        crate::registry::PluginRegistry::load(&runtime, dir.as_deref(), &Default::default())
            .await?;
    for (plugin, origin) in registry.iter() {
        let info = plugin.info();
        let caps: Vec<String> = info.capabilities.iter().map(|c| c.to_string()).collect();
        println!(
            "{:<16} {:<8} {:<8} [{}]  {}  ({origin})",
            info.name,
            info.version,
            format!("{:?}", info.kind).to_lowercase(),
            caps.join(", "),
            info.description
        );
    }
    Ok(())
}

/// Loads one component and prints what `describe` says.
pub async fn describe(file: PathBuf) -> anyhow::Result<()> {
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 2,
        ..RuntimeConfig::default()
    })?;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let label = file
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let plugin = runtime.load(&label, &bytes, &Default::default()).await?;
    println!("{}", serde_json::to_string_pretty(plugin.info())?);
    Ok(())
}

/// What `flowhost plugin run` was asked to do.
pub struct RunOptions {
    pub plugin: String,
    pub config: String,
    pub text: String,
    pub language: String,
    pub allow_hosts: Vec<String>,
    pub allow_private_networks: bool,
}

/// Runs an action once and prints its output; `Ok(false)` if it failed.
pub async fn run(options: RunOptions) -> anyhow::Result<bool> {
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 2,
        ..RuntimeConfig::default()
    })?;
    let config: serde_json::Value =
        serde_json::from_str(&options.config).context("--config is not JSON")?;
    let (label, bytes) = match crate::builtin::components()
        .iter()
        .find(|(name, _)| *name == options.plugin)
    {
        Some((name, bytes)) => (name.to_string(), bytes.to_vec()),
        None => (
            options.plugin.clone(),
            std::fs::read(&options.plugin).with_context(|| {
                format!(
                    "`{}` is neither a built-in nor a readable file",
                    options.plugin
                )
            })?,
        ),
    };
    let mut settings = crate::builtin::default_settings(&label);
    if !options.allow_hosts.is_empty() {
        settings.http.allowed_hosts = options.allow_hosts;
    }
    settings.http.allow_private_networks |= options.allow_private_networks;
    let loaded = runtime.load(&label, &bytes, &settings).await?;
    let context = ActionContext {
        conversation: Conversation {
            id: "cli".into(),
            channel: "cli".into(),
            ..Default::default()
        },
        contact: Contact {
            id: "cli-user".into(),
            ..Default::default()
        },
        last_message: Some(InboundMessage {
            id: "cli-1".into(),
            text: Some(options.text),
            ..Default::default()
        }),
        language: options.language,
        ..Default::default()
    };
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
