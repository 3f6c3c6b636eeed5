//! `flowhost chat`: talk to a flow in the terminal, with the real engine,
//! real plugin components and real (temporary) storage. Timers run in real
//! time; `/skip` jumps to the next one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{load_plugins, read_flow};
use crate::config::ServerConfig;
use crate::engine::clock::{Clock, SkippableClock};
use crate::engine::state::Position;
use crate::engine::{Engine, EngineSettings, TurnReport};
use crate::plugin::{Contact, Effects, InboundMessage};
use crate::storage::Storage;

pub struct ChatOptions {
    pub flow: PathBuf,
    pub connector: Option<String>,
    pub language: Option<String>,
    /// Keep the conversation here instead of a temporary directory.
    pub data_dir: Option<PathBuf>,
    /// The moment the conversation starts at (RFC 3339, such as
    /// `2026-11-23T22:30:00+03:00`); the clock runs on from there.
    pub at: Option<String>,
}

/// Milliseconds since the epoch of an RFC 3339 moment (or one with an
/// IANA zone: `2026-11-23T22:30[Europe/Istanbul]`).
fn moment(text: &str) -> anyhow::Result<u64> {
    let at = text
        .parse::<jiff::Timestamp>()
        .or_else(|_| text.parse::<jiff::Zoned>().map(|z| z.timestamp()))
        .with_context(|| {
            format!("--at `{text}`: give a moment such as 2026-11-23T22:30:00+03:00")
        })?;
    u64::try_from(at.as_millisecond()).context("--at: a moment after 1970")
}

const HELP: &str = "Type as the customer. A number picks a quick reply of the last message. \
/skip jumps to the next timer, /state shows where the conversation is, /quit ends.";

pub async fn run(options: ChatOptions, config: &ServerConfig) -> anyhow::Result<()> {
    let (runtime, registry) = load_plugins(
        config.plugins_dir.as_deref(),
        &config.plugins,
        config.runtime.cache_dir.as_deref(),
    )
    .await?;
    let compiled = match read_flow(&options.flow, &registry)? {
        Ok((compiled, report)) => {
            eprint!("{report}");
            compiled
        }
        Err(report) => {
            eprint!("{report}");
            anyhow::bail!(
                "{} has errors; fix them first (flowhost validate)",
                options.flow.display()
            );
        }
    };
    let connector = match &options.connector {
        Some(name) => name.clone(),
        None => compiled
            .flow
            .connectors
            .keys()
            .next()
            .cloned()
            .context("the flow has no connector")?,
    };
    let account = compiled
        .flow
        .connectors
        .get(&connector)
        .with_context(|| format!("no connector `{connector}`"))?
        .account
        .clone();

    let temp = tempfile::TempDir::new()?;
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let storage = Storage::open(&data_dir.join("db"))?;
    let clock = Arc::new(match &options.at {
        Some(at) => SkippableClock::starting_at(moment(at)?),
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

    println!("Connector `{connector}` (account `{account}`). {HELP}");
    let mut last_replies: Vec<(String, String)> = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let line = line.trim().to_string();
                match line.as_str() {
                    "" => continue,
                    "/quit" | "/exit" => break,
                    "/help" => println!("{HELP}"),
                    "/state" => show_state(&storage, &account, &customer.id).await?,
                    "/skip" => match storage.next_timer_due().await? {
                        Some(due) => {
                            clock.skip_to(due);
                            for report in engine.fire_due_timers().await? {
                                show(&report, &mut last_replies);
                            }
                        }
                        None => println!("(no timer is waiting)"),
                    },
                    _ => {
                        let (text, payload) = match line.parse::<usize>().ok().and_then(|n| last_replies.get(n.wrapping_sub(1))) {
                            Some((title, payload)) => (title.clone(), Some(payload.clone())),
                            None => (line.clone(), None),
                        };
                        let message = InboundMessage {
                            id: uuid::Uuid::now_v7().to_string(),
                            text: Some(text),
                            payload,
                            attachments: Vec::new(),
                            timestamp_ms: clock.now_ms(),
                        };
                        let report = engine.handle_message(&account, customer.clone(), message).await?;
                        show(&report, &mut last_replies);
                    }
                }
            }
            _ = tick.tick() => {
                for report in engine.fire_due_timers().await? {
                    show(&report, &mut last_replies);
                }
            }
        }
    }
    storage.flush().await?;
    Ok(())
}

/// Saves `language` in the first session's data, where it overrides detection.
async fn pin_language(
    storage: &Storage,
    account: &str,
    customer: &str,
    language: &str,
    now_ms: u64,
) -> anyhow::Result<()> {
    let mut effects = Effects::default();
    effects
        .data_changes
        .insert("language".into(), Some(serde_json::json!(language)));
    storage
        .commit_effects(&format!("{account}:{customer}:1"), effects, now_ms)
        .await?;
    Ok(())
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
    let key = crate::engine::state::conversation_key(account, customer);
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
