//! Trial chats: an admin talks to the sandbox of a running server
//! (`flowhost chat --server`, `POST /admin/sandbox/chats`) with the real
//! engine and the sandbox's plugins, before applying it. Each chat has its
//! own temporary storage, so nothing it does reaches a customer, production's
//! conversations or analytics: its replies come back in the answer and no
//! sender ever reads its outbox. Its clock may start at any moment (`at`),
//! so the night's branch of a time condition can be tried by day, and jumps
//! to the next timer on request.
//!
//! Chats are bounded: at most [`MAX_CHATS`] at once, each forgotten after
//! [`IDLE_MS`] without a request; one turn at a time per chat.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::engine::clock::{Clock, SkippableClock, SystemClock};
use crate::engine::{Engine, EngineError, EngineSettings, TurnReport};
use crate::flow::{CompiledFlow, Issue};
use crate::plugin::{Contact, Effects, InboundMessage, PluginRuntime};
use crate::registry::{PluginRegistry, PluginSet};
use crate::storage::{Storage, StorageError};

/// Trial chats open at once.
pub const MAX_CHATS: usize = 8;
/// A chat unused this long is forgotten.
pub const IDLE_MS: u64 = 15 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error("the sandbox does not validate; fix it first: {} problems, each in `issues`", .0.len())]
    Invalid(Vec<Issue>),
    #[error("{0}")]
    BadRequest(String),
    #[error("no trial chat `{0}` (chats are forgotten after 15 idle minutes)")]
    NotFound(String),
    #[error(
        "{MAX_CHATS} trial chats are open; end one (DELETE) or wait until one has been idle for 15 minutes"
    )]
    TooMany,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the chat's temporary storage: {0}")]
    Io(#[from] std::io::Error),
}

/// What a new chat is to be.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialOptions {
    /// The connector the customer writes to (default: the first).
    pub connector: Option<String>,
    /// The customer's language, instead of detecting it.
    pub language: Option<String>,
    /// The moment the chat starts at (RFC 3339, or with an IANA zone such
    /// as `2026-11-23T22:30[Europe/Istanbul]`); the clock runs on from there.
    pub at: Option<String>,
}

/// A new chat: its id and where the customer writes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TrialStarted {
    pub id: String,
    pub connector: String,
    pub account: String,
    /// The chat's clock now (ms since the epoch).
    pub now_ms: u64,
}

/// One chat: an engine on the sandbox over its own storage.
struct Chat {
    engine: Engine,
    storage: Storage,
    clock: Arc<SkippableClock>,
    account: String,
    customer: Contact,
    /// One turn at a time.
    turn: tokio::sync::Mutex<()>,
    last_used_ms: AtomicU64,
    /// Dropped last: the storage above lives in it.
    _dir: tempfile::TempDir,
}

/// The open trial chats of a server; `None` while one is being opened.
pub struct TrialChats {
    runtime: Arc<PluginRuntime>,
    registry: Arc<PluginRegistry>,
    /// Where each chat's storage lives (`<data_dir>/trials`), emptied at
    /// start: a process that was killed left its chats' folders there.
    dir: PathBuf,
    chats: Mutex<HashMap<String, Option<Arc<Chat>>>>,
}

impl TrialChats {
    pub fn new(
        runtime: Arc<PluginRuntime>,
        registry: Arc<PluginRegistry>,
        dir: PathBuf,
    ) -> std::io::Result<Self> {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(&dir)?;
        Ok(TrialChats {
            runtime,
            registry,
            dir,
            chats: Mutex::new(HashMap::new()),
        })
    }

    /// Opens a chat on the compiled sandbox and the plugins it pins.
    pub async fn open(
        &self,
        compiled: CompiledFlow,
        plugins: PluginSet,
        options: TrialOptions,
    ) -> Result<TrialStarted, TrialError> {
        let start_ms = match &options.at {
            Some(at) => Some(parse_moment(at).map_err(TrialError::BadRequest)?),
            None => None,
        };
        let (connector, account) = compiled
            .entry(options.connector.as_deref())
            .map_err(|why| TrialError::BadRequest(why.replace("the flow", "the sandbox")))?;
        let id = self.reserve()?;
        let opened = self
            .make_chat(&id, compiled, plugins, &account, options.language, start_ms)
            .await;
        let mut chats = self.chats.lock().expect("trial chats lock");
        match opened {
            Ok(chat) => {
                let now_ms = chat.clock.now_ms();
                chats.insert(id.clone(), Some(Arc::new(chat)));
                Ok(TrialStarted {
                    id,
                    connector,
                    account,
                    now_ms,
                })
            }
            Err(e) => {
                chats.remove(&id);
                Err(e)
            }
        }
    }

    async fn make_chat(
        &self,
        id: &str,
        compiled: CompiledFlow,
        plugins: PluginSet,
        account: &str,
        language: Option<String>,
        start_ms: Option<u64>,
    ) -> Result<Chat, TrialError> {
        // Opening sled and its threads blocks: not on an async worker.
        let parent = self.dir.clone();
        let (dir, storage) = tokio::task::spawn_blocking(move || {
            let dir = tempfile::Builder::new()
                .prefix("chat-")
                .tempdir_in(parent)?;
            // A trial holds one conversation: a small cache is plenty.
            // A trial is throwaway: always the embedded store, however the
            // server keeps its own.
            let settings = crate::storage::StorageSettings {
                cache_mb: 16,
                postgres: None,
                ..Default::default()
            };
            let storage = Storage::open_with(&dir.path().join("db"), &settings)?;
            Ok::<_, TrialError>((dir, storage))
        })
        .await
        .map_err(|e| TrialError::Io(std::io::Error::other(e)))??;
        let clock = Arc::new(match start_ms {
            Some(ms) => SkippableClock::starting_at(ms),
            None => SkippableClock::default(),
        });
        let customer = Contact {
            id: format!("trial-{id}"),
            name: Some("Trial Customer".into()),
            username: Some("trial".into()),
        };
        if let Some(language) = &language {
            pin_language(&storage, account, &customer.id, language, clock.now_ms()).await?;
        }
        let engine = Engine::new(
            Arc::new(compiled),
            self.runtime.clone(),
            self.registry.clone(),
            storage.clone(),
            clock.clone(),
            EngineSettings::default(),
        )
        .with_flow_version(0, plugins);
        Ok(Chat {
            engine,
            storage,
            clock,
            account: account.to_string(),
            customer,
            turn: tokio::sync::Mutex::new(()),
            last_used_ms: AtomicU64::new(SystemClock.now_ms()),
            _dir: dir,
        })
    }

    /// A place for a new chat, after forgetting idle ones.
    fn reserve(&self) -> Result<String, TrialError> {
        let now = SystemClock.now_ms();
        let mut chats = self.chats.lock().expect("trial chats lock");
        let idle: Vec<String> = chats
            .iter()
            .filter(|(_, chat)| {
                chat.as_ref().is_some_and(|c| {
                    now.saturating_sub(c.last_used_ms.load(Ordering::Relaxed)) >= IDLE_MS
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        let forgotten: Vec<_> = idle.iter().filter_map(|id| chats.remove(id)).collect();
        let full = chats.len() >= MAX_CHATS;
        let id = uuid::Uuid::new_v4().simple().to_string();
        if !full {
            chats.insert(id.clone(), None);
        }
        drop(chats);
        dispose(forgotten);
        if full {
            return Err(TrialError::TooMany);
        }
        Ok(id)
    }

    fn chat(&self, id: &str) -> Result<Arc<Chat>, TrialError> {
        let chats = self.chats.lock().expect("trial chats lock");
        let chat = chats
            .get(id)
            .cloned()
            .flatten()
            .ok_or_else(|| TrialError::NotFound(id.to_string()))?;
        chat.last_used_ms
            .store(SystemClock.now_ms(), Ordering::Relaxed);
        Ok(chat)
    }

    /// The customer writes `text` (or presses a quick reply: `payload`).
    pub async fn say(
        &self,
        id: &str,
        text: String,
        payload: Option<String>,
    ) -> Result<TurnReport, TrialError> {
        let chat = self.chat(id)?;
        let _turn = chat.turn.lock().await;
        let message = InboundMessage {
            id: uuid::Uuid::now_v7().to_string(),
            text: Some(text),
            payload,
            attachments: Vec::new(),
            timestamp_ms: chat.clock.now_ms(),
        };
        let report = chat
            .engine
            .handle_message(&chat.account, chat.customer.clone(), message)
            .await?;
        Ok(report)
    }

    /// Runs the timers that are due; with `skip`, first moves the clock to
    /// the next one (an automessage's later message, a queue's timeout).
    pub async fn timers(&self, id: &str, skip: bool) -> Result<Vec<TurnReport>, TrialError> {
        let chat = self.chat(id)?;
        let _turn = chat.turn.lock().await;
        if skip && let Some(due) = chat.storage.next_timer_due().await? {
            chat.clock.skip_to(due);
        }
        Ok(chat.engine.fire_due_timers().await?)
    }

    /// Ends a chat; whether there was one.
    pub fn close(&self, id: &str) -> bool {
        let removed = self.chats.lock().expect("trial chats lock").remove(id);
        let found = matches!(removed, Some(Some(_)));
        dispose(removed.into_iter().collect());
        found
    }
}

/// Drops chats (their storage threads and temporary files) off the async
/// workers.
fn dispose(chats: Vec<Option<Arc<Chat>>>) {
    if !chats.is_empty() {
        tokio::task::spawn_blocking(move || drop(chats));
    }
}

/// Saves `language` in the first session's data, where it overrides
/// detection.
pub async fn pin_language(
    storage: &Storage,
    account: &str,
    customer: &str,
    language: &str,
    now_ms: u64,
) -> Result<(), StorageError> {
    let mut effects = Effects::default();
    effects
        .data_changes
        .insert("language".into(), Some(serde_json::json!(language)));
    storage
        .commit_effects(&format!("{account}:{customer}:1"), effects, now_ms)
        .await?;
    Ok(())
}

/// Milliseconds since the epoch of an RFC 3339 moment (or one with an
/// IANA zone: `2026-11-23T22:30[Europe/Istanbul]`).
pub fn parse_moment(text: &str) -> Result<u64, String> {
    let at = text
        .parse::<jiff::Timestamp>()
        .or_else(|_| text.parse::<jiff::Zoned>().map(|z| z.timestamp()))
        .map_err(|_| {
            format!("`{text}` is not a moment: give one such as 2026-11-23T22:30:00+03:00")
        })?;
    u64::try_from(at.as_millisecond()).map_err(|_| format!("`{text}`: a moment after 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_take_an_offset_or_a_zone() {
        assert_eq!(parse_moment("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(
            parse_moment("2026-11-23T22:30[Europe/Istanbul]").unwrap(),
            parse_moment("2026-11-23T22:30:00+03:00").unwrap()
        );
        assert!(
            parse_moment("tonight")
                .unwrap_err()
                .contains("not a moment")
        );
        assert!(
            parse_moment("1969-12-31T23:59:59Z")
                .unwrap_err()
                .contains("after 1970")
        );
    }
}
