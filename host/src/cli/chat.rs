//! `flowhost chat`: talk to a flow in the terminal, with the real engine,
//! real plugin components and real (temporary) storage; or, with
//! `--server`, to a running server's sandbox (a trial chat through the
//! admin API). Timers run in real time; `/skip` jumps to the next one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::admin::AdminClient;
use super::{load_plugins, read_flow};
use crate::config::ServerConfig;
use crate::engine::clock::{Clock, SkippableClock};
use crate::engine::{Engine, EngineSettings, TurnReport};
use crate::model::Position;
use crate::plugin::{Contact, InboundMessage};
use crate::publishing::trial::{parse_moment, pin_language};
use crate::storage::Storage;

pub struct ChatOptions {
    /// The flow file to talk to; `None` with `server`.
    pub flow: Option<PathBuf>,
    /// A running server whose sandbox to talk to, and its admin token.
    pub server: Option<(String, String)>,
    pub connector: Option<String>,
    pub language: Option<String>,
    /// Keep the conversation here instead of a temporary directory (local).
    pub data_dir: Option<PathBuf>,
    /// The moment the conversation starts at (RFC 3339, such as
    /// `2026-11-23T22:30:00+03:00`); the clock runs on from there.
    pub at: Option<String>,
}

const HELP: &str = "Type as the customer. A number picks a quick reply of the last message. \
/skip jumps to the next timer, /state shows where the conversation is, /quit ends.";

/// Where the conversation runs: an engine here, or a running server's
/// sandbox (a trial chat through the admin API).
enum Backend {
    Local(Box<Local>),
    Remote(Remote),
}

struct Local {
    engine: Engine,
    storage: Storage,
    clock: Arc<SkippableClock>,
    account: String,
    customer: Contact,
    _temp: tempfile::TempDir,
}

struct Remote {
    client: AdminClient,
    id: String,
}

impl Backend {
    async fn say(&self, text: String, payload: Option<String>) -> anyhow::Result<TurnReport> {
        match self {
            Backend::Local(local) => {
                let message = InboundMessage {
                    id: uuid::Uuid::now_v7().to_string(),
                    text: Some(text),
                    payload,
                    attachments: Vec::new(),
                    timestamp_ms: local.clock.now_ms(),
                };
                Ok(local
                    .engine
                    .handle_message(&local.account, local.customer.clone(), message)
                    .await?)
            }
            Backend::Remote(remote) => remote.client.trial_say(&remote.id, &text, payload).await,
        }
    }

    /// The due timers' turns; with `skip`, after jumping to the next timer.
    async fn timers(&self, skip: bool) -> anyhow::Result<Vec<TurnReport>> {
        match self {
            Backend::Local(local) => {
                if skip && let Some(due) = local.storage.next_timer_due().await? {
                    local.clock.skip_to(due);
                }
                Ok(local.engine.fire_due_timers().await?)
            }
            Backend::Remote(remote) => remote.client.trial_timers(&remote.id, skip).await,
        }
    }

    async fn show_state(&self) -> anyhow::Result<()> {
        match self {
            Backend::Local(local) => {
                show_state(&local.storage, &local.account, &local.customer.id).await
            }
            Backend::Remote(_) => {
                println!("(/state is for local chats; a trial on a server keeps its state there)");
                Ok(())
            }
        }
    }

    async fn end(self) -> anyhow::Result<()> {
        match self {
            Backend::Local(local) => Ok(local.storage.flush().await?),
            Backend::Remote(remote) => remote.client.close_trial(&remote.id).await,
        }
    }
}

pub async fn run(options: ChatOptions, config: &ServerConfig) -> anyhow::Result<()> {
    let (backend, banner) = match &options.server {
        Some((server, token)) => remote(server, token, &options).await?,
        None => local(&options, config).await?,
    };
    println!("{banner} {HELP}");
    let result = converse(&backend).await;
    backend.end().await?;
    result
}

/// A trial chat with the sandbox of the server at `server`.
async fn remote(
    server: &str,
    token: &str,
    options: &ChatOptions,
) -> anyhow::Result<(Backend, String)> {
    let client = AdminClient::new(server, token)?;
    let started = client
        .open_trial(serde_json::json!({
            "connector": options.connector,
            "language": options.language,
            "at": options.at,
        }))
        .await?;
    let banner = format!(
        "The sandbox of {server}, connector `{}` (account `{}`); nothing reaches customers.",
        started.connector, started.account
    );
    let remote = Remote {
        client,
        id: started.id,
    };
    Ok((Backend::Remote(remote), banner))
}

/// The flow file, with this process's engine and temporary storage.
async fn local(options: &ChatOptions, config: &ServerConfig) -> anyhow::Result<(Backend, String)> {
    let flow = options
        .flow
        .as_ref()
        .context("give a flow file, or --server to talk to a running server's sandbox")?;
    let (runtime, registry) = load_plugins(
        config.plugins_dir.as_deref(),
        &config.plugins,
        config.runtime.cache_dir.as_deref(),
    )
    .await?;
    let compiled = match read_flow(flow, &registry)? {
        Ok((compiled, report)) => {
            eprint!("{report}");
            compiled
        }
        Err(report) => {
            eprint!("{report}");
            anyhow::bail!(
                "{} has errors; fix them first (flowhost validate)",
                flow.display()
            );
        }
    };
    let (connector, account) = compiled
        .entry(options.connector.as_deref())
        .map_err(anyhow::Error::msg)?;

    let temp = tempfile::TempDir::new()?;
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let storage = Storage::open(&data_dir.join("db"))?;
    let clock = Arc::new(match &options.at {
        Some(at) => SkippableClock::starting_at(
            parse_moment(at).map_err(|why| anyhow::anyhow!("--at {why}"))?,
        ),
        None => SkippableClock::default(),
    });
    let engine = Engine::new(
        Arc::new(compiled),
        Arc::new(runtime),
        Arc::new(registry),
        storage.clone(),
        clock.clone(),
        EngineSettings::default(),
    );
    let customer = Contact {
        id: "terminal-customer".into(),
        name: Some("Terminal Customer".into()),
        username: Some("terminal".into()),
    };
    if let Some(language) = &options.language {
        pin_language(&storage, &account, &customer.id, language, clock.now_ms()).await?;
    }
    let banner = format!("Connector `{connector}` (account `{account}`).");
    let backend = Backend::Local(Box::new(Local {
        engine,
        storage,
        clock,
        account,
        customer,
        _temp: temp,
    }));
    Ok((backend, banner))
}

/// Reads the customer's lines until the end of input or `/quit`, showing
/// each turn's replies and running timers as they fall due.
async fn converse(backend: &Backend) -> anyhow::Result<()> {
    let mut last_replies: Vec<(String, String)> = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let every = match backend {
        Backend::Local(_) => std::time::Duration::from_millis(250),
        Backend::Remote(_) => std::time::Duration::from_secs(1),
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                let line = line.trim().to_string();
                match line.as_str() {
                    "" => continue,
                    "/quit" | "/exit" => return Ok(()),
                    "/help" => println!("{HELP}"),
                    "/state" => backend.show_state().await?,
                    "/skip" => {
                        let reports = backend.timers(true).await?;
                        if reports.is_empty() {
                            println!("(no timer is waiting)");
                        }
                        for report in reports {
                            show(&report, &mut last_replies);
                        }
                    }
                    _ => {
                        let (text, payload) = match line.parse::<usize>().ok().and_then(|n| last_replies.get(n.wrapping_sub(1))) {
                            Some((title, payload)) => (title.clone(), Some(payload.clone())),
                            None => (line.clone(), None),
                        };
                        let report = backend.say(text, payload).await?;
                        show(&report, &mut last_replies);
                    }
                }
            }
            _ = tick.tick() => {
                for report in backend.timers(false).await? {
                    show(&report, &mut last_replies);
                }
            }
        }
    }
}

fn show(report: &TurnReport, last_replies: &mut Vec<(String, String)>) {
    for note in &report.notes {
        println!("  ! {note}");
    }
    for outbox in &report.messages {
        let message = &outbox.message;
        if let Some(text) = &message.text {
            println!("bot> {}", text.replace('\n', "\n     "));
        }
        for attachment in &message.attachments {
            println!("bot> [{}] {}", attachment.kind, attachment.url);
        }
        for button in &message.buttons {
            println!(
                "     [link] {} {}",
                button.title,
                button.url.as_deref().unwrap_or("")
            );
        }
        if !message.quick_replies.is_empty() {
            *last_replies = message
                .quick_replies
                .iter()
                .map(|q| (q.title.clone(), q.payload.clone()))
                .collect();
            let numbered: Vec<String> = message
                .quick_replies
                .iter()
                .enumerate()
                .map(|(i, q)| format!("[{}] {}", i + 1, q.title))
                .collect();
            println!("     {}", numbered.join("  "));
        }
    }
    match &report.position {
        Position::Queued { queue, .. } => {
            println!("  (handed to queue `{queue}`; an agent would answer now)")
        }
        Position::Ended => {
            if let Some(ending) = &report.ending {
                println!(
                    "  (conversation ended: {} / cause `{}`, answered: {}; your next message starts a new one)",
                    ending.terminate, ending.cause, ending.answered
                );
            }
        }
        Position::Automessage { name, .. } => {
            println!("  (automessage `{name}` running; /skip to jump ahead)")
        }
        _ => {}
    }
}

async fn show_state(storage: &Storage, account: &str, customer: &str) -> anyhow::Result<()> {
    let key = crate::model::conversation_key(account, customer);
    match storage.conversation(&key).await? {
        None => println!("(no conversation yet)"),
        Some(state) => {
            println!(
                "conversation {} in language `{}`",
                state.id(),
                state.language
            );
            println!("position: {}", serde_json::to_string(&state.position)?);
            println!(
                "saved data: {}",
                serde_json::to_string(&storage.load_data(&state.id()).await?)?
            );
            let results: Vec<&String> = state.results.keys().collect();
            println!("results: {results:?}");
        }
    }
    Ok(())
}
