//! The `flowhost` command line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flowhost::config::ServerConfig;
use flowhost::plugin::{
    ActionContext, Contact, Conversation, InboundMessage, PluginRuntime, RuntimeConfig,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "flowhost",
    version,
    about = "Routes Instagram DM conversations through sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (health probes, admin API) on its embedded defaults or a config file.
    Serve {
        /// YAML or JSON server configuration; every field has a default.
        #[arg(long, env = "FLOWHOST_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides `listen` from the configuration.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Overrides `data_dir` from the configuration.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// List the built-in plugins (and those of a directory) with what they declare.
    List {
        /// A directory of partner plugins (`*.wasm`) to load too.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Load one component and print what `describe` says, or why it was rejected.
    Describe { file: PathBuf },
    /// Run an action once (a built-in by name, or a component file) and print its output.
    Run {
        /// A built-in's name (`request`) or a path to a `.wasm` component.
        plugin: String,
        /// The action's configuration as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
        /// The customer's message.
        #[arg(long, default_value = "")]
        text: String,
        /// The customer's language.
        #[arg(long, default_value = "en")]
        lang: String,
        /// Hosts the plugin may call (repeatable); `*` for any public host.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Let the plugin reach loopback and private addresses.
        #[arg(long)]
        allow_private_networks: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let mut config = match config {
                Some(path) => ServerConfig::load(&path)?,
                None => ServerConfig::default(),
            };
            config.listen = listen.unwrap_or(config.listen);
            config.data_dir = data_dir.unwrap_or(config.data_dir);
            flowhost::app::serve(config, flowhost::app::shutdown_signal()).await
        }
        Command::Plugin(command) => plugin_command(command).await,
    }
}

async fn plugin_command(command: PluginCommand) -> anyhow::Result<()> {
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    })?;
    match command {
        PluginCommand::List { dir } => {
            let registry = flowhost::registry::PluginRegistry::load(
                &runtime,
                dir.as_deref(),
                &Default::default(),
            )
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
        }
        PluginCommand::Describe { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let label = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let plugin = runtime.load(&label, &bytes, &Default::default()).await?;
            println!("{}", serde_json::to_string_pretty(plugin.info())?);
        }
        PluginCommand::Run {
            plugin,
            config,
            text,
            lang,
            allow_hosts,
            allow_private_networks,
        } => {
            let config: serde_json::Value =
                serde_json::from_str(&config).context("--config is not JSON")?;
            let (label, bytes) = match flowhost::builtin::components()
                .iter()
                .find(|(name, _)| *name == plugin)
            {
                Some((name, bytes)) => (name.to_string(), bytes.to_vec()),
                None => (
                    plugin.clone(),
                    std::fs::read(&plugin).with_context(|| {
                        format!("`{plugin}` is neither a built-in nor a readable file")
                    })?,
                ),
            };
            let mut settings = flowhost::builtin::default_settings(&label);
            if !allow_hosts.is_empty() {
                settings.http.allowed_hosts = allow_hosts;
            }
            settings.http.allow_private_networks |= allow_private_networks;
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
                    text: Some(text),
                    ..Default::default()
                }),
                language: lang,
                ..Default::default()
            };
            let config = flowhost::templates::render_json(&config, &context.template_context())?;
            match runtime.run_action(&loaded, context, &config).await {
                Ok(output) => println!("{}", serde_json::to_string_pretty(&output)?),
                Err(error) => {
                    eprintln!("error ({}): {error}", error.code());
                    std::process::exit(1);
                }
            }
        }
    }
    Ok(())
}
