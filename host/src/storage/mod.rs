//! Durable state. The rest of flowhost holds a [`Storage`]: a cheap handle
//! on a store behind the traits of [`traits`] (inbox, conversations and
//! turn commits, timers, outbox, agents, versions, uploads, connections,
//! analytics). [`sled`] is the embedded store; callers never see which
//! store they talk to, nor its keys. [`archive`] moves a deployment from
//! one store to another.
//!
//! The handle adds what is the same for every store: it wakes the sender
//! when a turn queued messages or an echo settled a send.

pub mod archive;
#[cfg(test)]
pub mod conformance;
pub mod postgres;
pub mod records;
pub mod sled;
pub mod traits;

use std::collections::HashSet;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::model::Effects;
use crate::model::agent::Agent;
use crate::model::fact::Record;
pub use postgres::{PostgresBackend, PostgresSettings};
pub use records::*;
pub use sled::{SledBackend, SledOptions, SledStore};
pub use traits::*;

/// `storage:` in the server configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// sled's page cache, in MiB: the records it keeps decoded in memory.
    /// Active conversations stay in it; idle ones live on disk only, so it
    /// bounds what idle conversations cost in RAM.
    pub cache_mb: u64,
    /// zstd-compress the embedded store's records: about a third as much
    /// kept on disk and less than half as much written under load, for at
    /// most a few percent more CPU. Applies when the data directory is
    /// created; an existing one keeps its choice.
    pub compress: bool,
    /// Keep everything in this PostgreSQL database instead of the data
    /// directory (the store several nodes share).
    pub postgres: Option<PostgresSettings>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            cache_mb: 256,
            compress: true,
            postgres: None,
        }
    }
}

/// The handle every part of flowhost uses; cheap to clone. Every trait
/// method of the store is reachable through it (`Deref`); the few defined
/// here add the sender's wake-up or take closures.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn Store>,
    /// Woken when a write put messages in the outbox (or settled one).
    outbox_wake: Arc<Notify>,
    /// The conversations those messages are for, until the sender takes
    /// them (at most one entry per conversation with waiting messages).
    queued: Arc<Mutex<HashSet<String>>>,
}

impl Deref for Storage {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl Storage {
    /// Opens (or creates) the embedded store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, &StorageSettings::default())
    }

    /// Opens the store the settings name: PostgreSQL when they give one,
    /// else the embedded store in `dir`.
    pub async fn open_configured(
        dir: &Path,
        settings: &StorageSettings,
    ) -> Result<Self, StorageError> {
        match &settings.postgres {
            Some(postgres) => Ok(Self::over(Arc::new(
                PostgresBackend::connect(postgres).await?,
            ))),
            None => Self::open_with(dir, settings),
        }
    }

    /// Opens the embedded store in `dir` with `settings`.
    pub fn open_with(dir: &Path, settings: &StorageSettings) -> Result<Self, StorageError> {
        let options = SledOptions {
            cache_bytes: settings.cache_mb.saturating_mul(1 << 20),
            compress_new: settings.compress,
        };
        Ok(Self::over(Arc::new(SledBackend::open(dir, &options)?)))
    }

    /// A handle on `store`.
    pub fn over(store: Arc<dyn Store>) -> Self {
        Storage {
            store,
            outbox_wake: Arc::new(Notify::new()),
            queued: Default::default(),
        }
    }

    /// Notified after a write that queued outgoing messages is applied.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// Conversations that got new outbox messages since the last call.
    pub fn take_queued(&self) -> HashSet<String> {
        std::mem::take(&mut *self.queued.lock().expect("queued lock"))
    }

    /// Applies a whole engine turn atomically (see [`TurnCommit`]) and
    /// wakes the sender for the messages it queued.
    pub async fn commit_turn(&self, turn: TurnCommit, now_ms: u64) -> Result<(), StorageError> {
        let queued: Vec<String> = turn.outbox.iter().map(|m| m.conversation.clone()).collect();
        self.store.commit_turn(turn, now_ms).await?;
        if !queued.is_empty() {
            self.queued.lock().expect("queued lock").extend(queued);
            self.outbox_wake.notify_one();
        }
        Ok(())
    }

    /// Applies what a successful plugin call changed, all or nothing.
    pub async fn commit_effects(
        &self,
        conversation_id: &str,
        effects: Effects,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let turn = TurnCommit {
            conversation_id: conversation_id.to_string(),
            effects,
            ..TurnCommit::default()
        };
        self.commit_turn(turn, now_ms).await
    }

    /// See [`Outbox::note_echo`]; wakes the sender when the echo settled a
    /// send in doubt.
    pub async fn note_echo(
        &self,
        echo: Echo,
        channel_id: &str,
    ) -> Result<EchoOutcome, StorageError> {
        let outcome = self.store.note_echo(echo, channel_id).await?;
        if matches!(outcome, EchoOutcome::Settled(_)) {
            self.outbox_wake.notify_one();
        }
        Ok(outcome)
    }

    /// See [`Agents::modify_agent`].
    pub async fn modify_agent(
        &self,
        id: &str,
        change: impl FnOnce(&mut Agent) + Send + 'static,
    ) -> Result<Option<Agent>, StorageError> {
        self.store.modify_agent(id, Box::new(change)).await
    }

    /// See [`Analytics::each_fact`].
    pub async fn each_fact(
        &self,
        from_ms: u64,
        to_ms: u64,
        mut each: impl FnMut(&Record) + Send,
    ) -> Result<(), StorageError> {
        self.store.each_fact(from_ms, to_ms, &mut each).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Contact;
    use crate::model::HISTORY_TURNS;
    use crate::model::{ConversationState, HistoryEntry};

    fn line(n: u64) -> HistoryEntry {
        HistoryEntry {
            at_ms: n,
            kind: "in".into(),
            text: format!("line {n}"),
            attachments: Vec::new(),
            language: None,
        }
    }

    /// Each turn writes only its own lines; the last `HISTORY_TURNS` turns
    /// stay, in order, across sessions.
    #[tokio::test]
    async fn history_is_appended_per_turn_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let contact = Contact {
            id: "c".into(),
            ..Default::default()
        };
        let mut state = ConversationState::new("a", contact, 1, "en", 0);
        let turns = HISTORY_TURNS + 40;
        for turn in 0..turns {
            let commit = TurnCommit {
                history_from: turn,
                history: (0..3).map(|i| line(turn * 3 + i)).collect(),
                state: Some(state.clone()),
                ..TurnCommit::default()
            };
            state.history_len = turn + 1;
            if turn == 40 {
                state.session += 1;
            }
            storage.commit_turn(commit, 0).await.unwrap();
        }
        let history = storage.history(&state.key()).await.unwrap();
        let first = (turns - HISTORY_TURNS) * 3;
        let expected: Vec<HistoryEntry> = (first..turns * 3).map(line).collect();
        assert_eq!(history, expected);
    }

    /// The sender skips reading sends in doubt while none may exist: the
    /// flag turns on with the first held send, off when the last one ends
    /// (given up or confirmed by its echo), and is read back at open.
    #[tokio::test]
    async fn the_settling_flag_follows_sends_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        let settling = |id: &str, text: &str| Settling {
            message_id: id.into(),
            conversation: "a\0c".into(),
            account: "a".into(),
            recipient: "c".into(),
            text: text.into(),
            part: 0,
            parts: 1,
            deadline_ms: 10,
        };
        {
            let storage = Storage::open(dir.path()).unwrap();
            assert!(!storage.any_settling());
            assert!(!storage.begin_settling(settling("m1", "one")).await.unwrap());
            assert!(!storage.begin_settling(settling("m2", "two")).await.unwrap());
            assert!(storage.any_settling());
            storage.end_settling("m1").await.unwrap();
            assert!(storage.any_settling(), "m2 is still in doubt");
        }
        let storage = Storage::open(dir.path()).unwrap();
        assert!(storage.any_settling(), "read back at open");
        let echo = Echo {
            account: "a".into(),
            recipient: "c".into(),
            text: "two".into(),
            at_ms: 5,
        };
        let outcome = storage.note_echo(echo, "mid.2").await.unwrap();
        assert_eq!(outcome, EchoOutcome::Settled("m2".into()));
        assert!(!storage.any_settling());
        assert!(storage.settling().await.unwrap().is_empty());
    }
}
