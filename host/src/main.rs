//! The `flowhost` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flowhost::cli;
use flowhost::config::ServerConfig;
use flowhost::logs::{LogFormat, LogSettings};

/// mimalloc rather than glibc's malloc: the server allocates many small,
/// short-lived buffers across threads (requests, records, JSON), where
/// glibc's malloc took an eighth of its CPU under load (BENCHMARKS.md,
/// "the allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flowhost",
    version,
    about = "Routes Instagram DM conversations through sandboxed WebAssembly plugins"
)]
struct Cli {
    /// YAML or JSON server configuration (plugins, limits, data directory);
    /// every field has a default.
    #[arg(long, global = true, env = "FLOWHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as plain text (coloured only on a terminal) or as one JSON
    /// object per line, for a log pipeline.
    #[arg(
        long,
        global = true,
        env = "FLOWHOST_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Export spans to this OpenTelemetry collector (OTLP over HTTP, JSON;
    /// its base URL, such as http://127.0.0.1:4318). Needs a build with the
    /// `otel` feature.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The admin token of a running server (`chat --server` and `admin`).
#[derive(clap::Args)]
struct AdminToken {
    /// The admin token.
    #[arg(
        long = "token",
        value_name = "TOKEN",
        env = "FLOWHOST_ADMIN_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    value: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (health probes, admin API) on its embedded defaults or the configuration.
    Serve {
        /// Overrides `listen` from the configuration.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Overrides `data_dir` from the configuration.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a flow file; prints every error with its path and exits 1 if there is one.
    Validate { file: PathBuf },
    /// Talk to a flow in the terminal, with the real engine and plugins.
    Chat {
        /// The flow file (not with --server).
        #[arg(required_unless_present = "server", conflicts_with = "server")]
        file: Option<PathBuf>,
        /// Talk to the sandbox of this running server instead (a trial chat
        /// through its admin API; nothing reaches customers).
        #[arg(long)]
        server: Option<String>,
        #[command(flatten)]
        token: AdminToken,
        /// The connector to start at (default: the first).
        #[arg(long)]
        connector: Option<String>,
        /// The customer's language (ISO 639-1); default: detected from their text.
        #[arg(long)]
        lang: Option<String>,
        /// Keep the conversation in this directory (default: a temporary one).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Start the clock at this moment (RFC 3339, such as
        /// 2026-11-23T22:30:00+03:00), to try the open or closed branch at any hour.
        #[arg(long)]
        at: Option<String>,
    },
    /// Draw a flow as Mermaid (default) or Graphviz DOT.
    Diagram {
        file: PathBuf,
        #[arg(long, default_value = "mermaid")]
        format: String,
    },
    /// Print the JSON Schema of flow documents.
    Schema,
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Move a deployment between stores (stop every server first): export
    /// the configured store to a file, import a file into an empty one.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Publish on a running server through its admin API.
    Admin {
        /// The server's base URL.
        #[arg(long, env = "FLOWHOST_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[command(flatten)]
        token: AdminToken,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Write everything the configured store keeps to a new file (JSON lines).
    Export {
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write an exported file into the configured store, which must be empty.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// The sandbox: pull it as YAML, push a flow file into it.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// What changes from one document to another (`production`, `sandbox` or a version number).
    Diff {
        #[arg(long, default_value = "production")]
        from: String,
        #[arg(long, default_value = "sandbox")]
        to: String,
    },
    /// Validate the sandbox and make it the next production version.
    Apply {
        #[arg(long, default_value = "")]
        comment: String,
        /// Apply only if production is still this version.
        #[arg(long)]
        expect: Option<u64>,
    },
    /// The published versions, newest first (`*` marks production).
    History,
    /// Publish an older version again, as the next version.
    Rollback {
        version: u64,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Plugin components in the sandbox.
    #[command(subcommand)]
    Plugin(AdminPluginCommand),
    /// Instagram accounts connected through Meta's login.
    #[command(subcommand)]
    Instagram(AdminInstagramCommand),
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Print the sandbox as YAML (or write it to a file).
    Pull {
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Replace the sandbox with a flow file; prints what validation says.
    Push { file: PathBuf },
}

#[derive(Subcommand)]
enum AdminPluginCommand {
    /// Upload a component (`.wasm`) into the sandbox; it runs in production once applied.
    Upload { file: PathBuf },
    /// Take an uploaded plugin out of the sandbox, by its declared name.
    Remove { name: String },
}

#[derive(Subcommand)]
enum AdminInstagramCommand {
    /// The connected accounts, their state and token expiry.
    List,
    /// Print the URL of Meta's authorization window that connects an account.
    Connect,
    /// Refresh an account's token now.
    Refresh { ig_user_id: String },
    /// Forget a connected account.
    Disconnect { ig_user_id: String },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// List the built-in plugins (and those of a directory) with what they declare.
    List {
        /// A directory of partner plugins (`*.wasm`) to load too.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print each plugin's configuration schema too.
        #[arg(long)]
        schemas: bool,
    },
    /// Print what a plugin declares (`describe`): a built-in by name, or a component file.
    Describe {
        /// A built-in's name (`request`) or a path to a `.wasm` component.
        plugin: String,
    },
    /// Run an action once (a built-in by name, or a component file) and print its output.
    Run {
        /// A built-in's name (`request`) or a path to a `.wasm` component.
        plugin: String,
        /// The action's configuration as JSON (templates are rendered
        /// against the context first).
        #[arg(long = "plugin-config", default_value = "{}")]
        plugin_config: String,
        /// The customer's message.
        #[arg(long, default_value = "")]
        text: String,
        /// The customer's language.
        #[arg(long, default_value = "en")]
        lang: String,
        /// The conversation's saved data, as a JSON object.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Hosts the plugin may call (repeatable); `*` for any public host.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Let the plugin reach loopback and private addresses.
        #[arg(long)]
        allow_private_networks: bool,
    },
    /// Run an action against fixture files (context, configuration, what it
    /// must do); prints a line per fixture; fails if any fails.
    Test {
        /// A built-in's name or a path to a `.wasm` component.
        plugin: String,
        /// Fixture files (`.json`), or folders of them.
        #[arg(required = true)]
        fixtures: Vec<PathBuf>,
        /// Hosts the plugin may call (repeatable).
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
    },
    /// Write a new plugin project that builds as it is, with unit tests and fixtures.
    New {
        /// The plugin's name (lowercase letters, digits, dashes).
        name: String,
        /// The project's language: rust, python or js.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// The world it exports: action or chatbot.
        #[arg(long, default_value = "action")]
        world: String,
        /// Where the project folder goes.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The flowhost SDK to depend on (default: the one this binary was built with).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    without_huge_pages();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(start())
}

/// No transparent huge pages for this process. mimalloc asks for them on
/// its arenas, and a huge page is resident whole once touched: the idle
/// server took 171 MiB with them against 87 MiB without, for 2 to 3 % of
/// CPU under load (BENCHMARKS.md, "the allocator"). Called before the
/// runtime's threads start; the kernel checks it at every page fault.
fn without_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process.
    let status = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if status != 0 {
        // Only memory is at stake; say so and carry on.
        eprintln!(
            "flowhost: could not turn off transparent huge pages: {}",
            std::io::Error::last_os_error()
        );
    }
}

async fn start() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // The server tells what it does; a terminal tool only what goes wrong.
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    let logs = flowhost::logs::init(LogSettings {
        format: cli.log_format,
        default_level,
        otlp_endpoint: cli.otlp_endpoint.as_deref(),
    })?;
    let config = match &cli.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    let ok = run(cli.command, config).await;
    logs.finish().await;
    Ok(if ok? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one command; `false` when it found a fault it has printed.
async fn run(command: Command, mut config: ServerConfig) -> anyhow::Result<bool> {
    let ok = match command {
        Command::Serve { listen, data_dir } => {
            config.listen = listen.unwrap_or(config.listen);
            config.data_dir = data_dir.unwrap_or(config.data_dir);
            flowhost::app::serve(config, flowhost::app::shutdown_signal()).await?;
            true
        }
        Command::Validate { file } => cli::flows::validate(&file, &config).await?,
        Command::Chat {
            file,
            server,
            token,
            connector,
            lang,
            data_dir,
            at,
        } => {
            cli::chat::run(
                cli::chat::ChatOptions {
                    flow: file,
                    server: server.map(|server| (server, token.value)),
                    connector,
                    language: lang,
                    data_dir,
                    at,
                },
                &config,
            )
            .await?;
            true
        }
        Command::Diagram { file, format } => {
            cli::flows::diagram(&file, &format)?;
            true
        }
        Command::Storage(StorageCommand::Export { out }) => {
            cli::storage::export(&config, &out).await?;
            true
        }
        Command::Storage(StorageCommand::Import { file }) => {
            cli::storage::import(&config, &file).await?;
            true
        }
        Command::Schema => {
            cli::flows::schema()?;
            true
        }
        Command::Plugin(PluginCommand::List { dir, schemas }) => {
            cli::plugins::list(dir, schemas, config.runtime.cache_dir.as_deref()).await?;
            true
        }
        Command::Plugin(PluginCommand::Describe { plugin }) => {
            cli::plugins::describe(&plugin, config.runtime.cache_dir.as_deref()).await?;
            true
        }
        Command::Plugin(PluginCommand::Run {
            plugin,
            plugin_config,
            text,
            lang,
            data,
            allow_hosts,
            allow_private_networks,
        }) => {
            cli::plugins::run(
                cli::plugins::RunOptions {
                    plugin,
                    config: plugin_config,
                    text,
                    language: lang,
                    data,
                    allow_hosts,
                    allow_private_networks,
                },
                config.runtime.cache_dir.as_deref(),
            )
            .await?
        }
        Command::Plugin(PluginCommand::Test {
            plugin,
            fixtures,
            allow_hosts,
        }) => {
            cli::plugin_test::test(
                &plugin,
                &fixtures,
                allow_hosts,
                config.runtime.cache_dir.as_deref(),
            )
            .await?
        }
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            world,
            dir,
            sdk,
        }) => {
            let sdk = sdk.unwrap_or_else(cli::scaffold::default_sdk);
            let project = cli::scaffold::new_plugin(&name, &lang, &world, &dir, &sdk)?;
            let next = match lang.as_str() {
                "rust" => "cargo test && cargo build --release --target wasm32-wasip2",
                "python" => "./test && ./build",
                _ => "npm install && npm test && npm run build",
            };
            println!("wrote {0}\n  cd {0} && {next}", project.display());
            true
        }
        Command::Admin {
            server,
            token,
            command,
        } => {
            admin(
                &cli::admin::AdminClient::new(&server, &token.value)?,
                command,
            )
            .await?;
            true
        }
    };
    Ok(ok)
}

/// Runs one `flowhost admin` command and prints its outcome.
async fn admin(client: &cli::admin::AdminClient, command: AdminCommand) -> anyhow::Result<()> {
    let printed = match command {
        AdminCommand::Sandbox(SandboxCommand::Pull { output: Some(path) }) => {
            std::fs::write(&path, client.pull().await?)?;
            format!("the sandbox is in {}", path.display())
        }
        AdminCommand::Sandbox(SandboxCommand::Pull { output: None }) => client.pull().await?,
        AdminCommand::Sandbox(SandboxCommand::Push { file }) => {
            client.push(std::fs::read_to_string(&file)?).await?
        }
        AdminCommand::Diff { from, to } => client.diff(&from, &to).await?,
        AdminCommand::Apply { comment, expect } => client.apply(&comment, expect).await?,
        AdminCommand::History => client.history().await?,
        AdminCommand::Rollback { version, comment } => client.rollback(version, &comment).await?,
        AdminCommand::Plugin(AdminPluginCommand::Upload { file }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            client.upload_plugin(bytes).await?
        }
        AdminCommand::Plugin(AdminPluginCommand::Remove { name }) => {
            client.remove_plugin(&name).await?
        }
        AdminCommand::Instagram(command) => match command {
            AdminInstagramCommand::List => client.instagram_accounts().await?,
            AdminInstagramCommand::Connect => client.instagram_connect().await?,
            AdminInstagramCommand::Refresh { ig_user_id } => {
                client.instagram_refresh(&ig_user_id).await?
            }
            AdminInstagramCommand::Disconnect { ig_user_id } => {
                client.instagram_disconnect(&ig_user_id).await?
            }
        },
    };
    println!("{}", printed.trim_end());
    Ok(())
}
