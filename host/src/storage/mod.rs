//! Durable state. The rest of flowhost sees [`Storage`], an async handle;
//! sled stays behind it ([`sled_store`]), so another store can take its place.
//!
//! # Concurrency design
//!
//! sled 0.34 deadlocks when it is used concurrently in ways flowhost needs:
//! concurrent `flush_async` calls hang forever (spacejam/sled#1308, fixed
//! only on sled's unreleased main), a range scan racing a transaction can
//! hang both (spacejam/sled#1301), and gets and inserts from many threads
//! have been reported to deadlock under load (spacejam/sled#1412). Under
//! concurrent webhooks flowhost hit the first one: tokio workers blocked in
//! `TransactionalTrees::stage` while sled's I/O threads waited in
//! `iobuf::flush`, and nothing answered again.
//!
//! So sled is never called from two of our threads at once, and never from
//! an async worker:
//! - **one storage thread** owns the [`SledStore`] and runs every request
//!   (reads, scans, transactions) in arrival order. Callers send a closure
//!   over a bounded channel and await its answer; a full channel is
//!   back-pressure, not a growing queue;
//! - **one flusher thread** makes writes durable by *group commit*: a
//!   request that must be durable (a webhook's inbox write, a turn, a send
//!   marker) is answered only after a `flush` that began after it was
//!   applied. The flusher takes every such request waiting when it starts,
//!   calls `flush` once, and answers all of them, so N concurrent webhooks
//!   share one fsync. sled's own periodic flusher is off
//!   (`flush_every_ms(None)`), so this is the only thread that flushes;
//!   `flush` running beside the storage thread's writes is sled's ordinary
//!   mode (its background flusher does the same).
//!
//! Reads see every write made before them (one thread applies both in
//! order). Only two kinds of write wait for a flush, because only they
//! guard something that leaves the process: accepting a webhook's events
//! (the 2xx tells the channel not to deliver again) and marking a send in
//! flight (the request tells the customer). Every other write (a turn, a
//! recorded send) is *applied*: visible at once, durable with the next
//! flush. That is safe because a flush makes durable everything applied
//! before it: a reply is sent only after its in-flight mark is flushed, and
//! so after the turn that queued it. A crash loses only applied writes
//! whose effects never left: their events are still in the inbox and run
//! again, and a send whose record was lost is still marked in flight and
//! settled as a send in doubt.

mod agents;
mod analytics;
mod connections;
mod plugins;
mod sled_store;
mod thread;
mod versions;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use crate::model::Effects;
use crate::model::{ConversationState, HistoryEntry, OutboxMessage, Ticket, Timer, TimerRef};
pub use sled_store::SledStore;
pub use thread::CommitStats;
pub use versions::{NewVersion, ProductionMoved};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage: corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("storage: flushing to disk failed: {0}")]
    Flush(String),
    #[error("storage: the storage thread has stopped or failed on this request")]
    Stopped,
}

/// What waits to be worked on: inbound events and outgoing messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backlog {
    /// Events in the inbox (at most the cap asked for).
    pub inbox: usize,
    /// Messages in the outbox (at most the cap asked for).
    pub outbox: usize,
    /// The oldest inbox event's record.
    pub oldest_event: Option<Vec<u8>>,
}

/// A message that could not be delivered, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedMessage {
    pub message: OutboxMessage,
    pub reason: String,
    pub at_ms: u64,
}

/// An inbound event set aside because its turn failed again and again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its inbox sequence.
    pub seq: u64,
    /// The inbox record as it was (JSON text).
    pub record: String,
    pub reason: String,
    pub at_ms: u64,
}

/// A send whose outcome is unknown (flowhost stopped, or the channel did not
/// answer), waiting for the channel's echo of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settling {
    /// The outbox message, and its conversation.
    pub message_id: String,
    pub conversation: String,
    pub account: String,
    pub recipient: String,
    /// The text of the part in doubt, as its echo carries it back.
    pub text: String,
    /// Which part of the message is in doubt, and how many it has.
    pub part: u32,
    pub parts: u32,
    /// Past this without an echo, the part is sent again.
    pub deadline_ms: u64,
}

/// The echo of one of our own messages, as the channel reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Echo {
    pub account: String,
    pub recipient: String,
    pub text: String,
    pub at_ms: u64,
}

/// What an echo told us.
#[derive(Clone, Debug, PartialEq)]
pub enum EchoOutcome {
    /// The send was already recorded.
    Known,
    /// It confirmed this outbox message's send in doubt.
    Settled(String),
    /// Kept: its send is still under way (or in doubt later).
    Kept,
}

/// Everything one engine turn changes, written in one transaction: the
/// conversation's new state, saved data, tickets, outgoing messages and
/// timers. A crash before it leaves the turn undone (and its event to be
/// processed again); a crash after it leaves it done, exactly once.
#[derive(Default)]
pub struct TurnCommit {
    pub state: Option<ConversationState>,
    /// Session conversation id the data changes belong to.
    pub conversation_id: String,
    pub effects: Effects,
    pub outbox: Vec<OutboxMessage>,
    pub timers_add: Vec<Timer>,
    /// Timers done or no longer wanted.
    pub timers_remove: Vec<TimerRef>,
    /// Inbox sequences of the events this turn handled.
    pub inbox_remove: Vec<u64>,
    /// Lines the turn adds to the conversation's history, numbered from
    /// `history_from` (lines older than the last `HISTORY_LIMIT` go).
    pub history: Vec<HistoryEntry>,
    pub history_from: u64,
    /// Where the conversation waits or who answers it, when the turn
    /// changed that (storage keeps both indexed for the router and agents).
    pub placement: Option<PlacementChange>,
    /// What analytics counts of this turn, written with it.
    pub facts: Vec<crate::model::fact::Fact>,
}

/// A conversation's place among queues and agents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// The queue it waits in.
    pub waiting: Option<WaitingIn>,
    /// The agent answering it.
    pub agent: Option<String>,
}

/// Where and since when a conversation waits, and what the router needs
/// to know of it, so a pass of the router reads only this index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingIn {
    pub queue: String,
    pub since_ms: u64,
    /// The agents its offer rings for, and until when (none: no offer).
    #[serde(default)]
    pub offered_to: Vec<String>,
    #[serde(default)]
    pub offer_until_ms: u64,
    /// Agents who declined it or let it lapse.
    #[serde(default)]
    pub passed: Vec<String>,
    /// The agent who last answered this customer (`sticky`).
    #[serde(default)]
    pub last_agent: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlacementChange {
    pub before: Placement,
    pub after: Placement,
    /// The agent who just closed it, and when: it stays in their list for
    /// the queue's display time.
    pub closed_by: Option<(String, u64)>,
}

/// `storage:` in the server configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// sled's page cache, in MiB: the records it keeps decoded in memory.
    /// Active conversations stay in it; idle ones live on disk only, so it
    /// bounds what idle conversations cost in RAM.
    pub cache_mb: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings { cache_mb: 256 }
    }
}

/// The handle every part of flowhost uses; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    thread: thread::StorageThread,
    /// Woken when a write put messages in the outbox (or settled one).
    outbox_wake: Arc<Notify>,
    /// The conversations those messages are for, until the sender takes
    /// them (at most one entry per conversation with waiting messages).
    queued: Arc<Mutex<HashSet<String>>>,
    /// Whether a send may be in doubt (kept by the storage thread).
    settling_any: Arc<AtomicBool>,
}

impl Storage {
    /// Opens (or creates) the database in `dir` and starts its threads.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, &StorageSettings::default())
    }

    /// Opens the store in `dir` with `settings`.
    pub fn open_with(dir: &Path, settings: &StorageSettings) -> Result<Self, StorageError> {
        let store = SledStore::open(dir, settings.cache_mb.saturating_mul(1 << 20))?;
        let settling_any = store.settling_flag();
        Ok(Storage {
            settling_any,
            thread: thread::StorageThread::start(store)?,
            outbox_wake: Arc::new(Notify::new()),
            queued: Default::default(),
        })
    }

    /// Notified after a write that queued outgoing messages is durable.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// Group-commit figures so far (flushes, and writes they made durable).
    pub fn commit_stats(&self) -> CommitStats {
        self.thread.stats()
    }

    /// A conversation's saved data.
    pub async fn load_data(
        &self,
        conversation_id: &str,
    ) -> Result<BTreeMap<String, Value>, StorageError> {
        let id = conversation_id.to_string();
        self.thread.read(move |db| db.load_data(&id)).await
    }

    /// The customer's conversation (current session), if any.
    pub async fn conversation(&self, key: &str) -> Result<Option<ConversationState>, StorageError> {
        let key = key.to_string();
        self.thread.read(move |db| db.conversation(&key)).await
    }

    /// Applies a whole engine turn atomically (see [`TurnCommit`]); durable
    /// with the next flush (see the module docs).
    pub async fn commit_turn(&self, turn: TurnCommit, now_ms: u64) -> Result<(), StorageError> {
        let queued: Vec<String> = turn.outbox.iter().map(|m| m.conversation.clone()).collect();
        self.thread
            .apply(move |db| db.commit_turn(&turn, now_ms))
            .await?;
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

    /// Accepts inbound events `(dedupe key, record)`: the new ones join the
    /// inbox, duplicates are dropped. Durable on return, so the webhook may
    /// answer 200. Returns how many were new.
    pub async fn accept_inbound(
        &self,
        events: Vec<(String, Vec<u8>)>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        self.thread
            .write(move |db| db.accept_inbound(&events, now_ms))
            .await
    }

    /// Forgets dedupe keys accepted before `cutoff_ms` (at most `limit`).
    pub async fn expire_seen(&self, cutoff_ms: u64, limit: usize) -> Result<usize, StorageError> {
        self.thread
            .write(move |db| db.expire_seen(cutoff_ms, limit))
            .await
    }

    /// Up to `limit` waiting inbound events after sequence `after`.
    pub async fn inbox(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.thread.read(move |db| db.inbox(after, limit)).await
    }

    /// The inbox's and outbox's depths, each counted up to `cap` (a count
    /// is a scan, and it runs on the storage thread).
    pub async fn backlog(&self, cap: usize) -> Result<Backlog, StorageError> {
        self.thread.read(move |db| db.backlog(cap)).await
    }

    /// One waiting inbound event, by its sequence.
    pub async fn inbox_record(&self, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.thread.read(move |db| db.inbox_record(seq)).await
    }

    /// Removes a handled event that needed no turn.
    pub async fn remove_from_inbox(&self, seq: u64) -> Result<(), StorageError> {
        self.thread.apply(move |db| db.remove_from_inbox(seq)).await
    }

    /// Sets aside an event whose turn kept failing.
    pub async fn dead_letter(
        &self,
        seq: u64,
        reason: String,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        self.thread
            .write(move |db| db.dead_letter(seq, &reason, now_ms))
            .await
    }

    /// Events set aside, oldest first.
    /// See [`SledStore::begin_recovery`].
    pub async fn begin_recovery(&self) -> Result<u64, StorageError> {
        self.thread.apply(move |db| db.begin_recovery()).await
    }

    /// Counts a rerun of an event an earlier run left unfinished, durably
    /// before the rerun starts (a rerun that kills the process still counts).
    pub async fn count_restart(&self, seq: u64) -> Result<u32, StorageError> {
        self.thread.write(move |db| db.count_restart(seq)).await
    }

    /// Events set aside, oldest first, at most `limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StorageError> {
        self.thread.read(move |db| db.dead_letters(limit)).await
    }

    /// The last lines of a customer's history (all sessions), oldest first.
    pub async fn history(&self, conversation: &str) -> Result<Vec<HistoryEntry>, StorageError> {
        let conversation = conversation.to_string();
        self.thread.read(move |db| db.history(&conversation)).await
    }

    /// Timers due at or before `now_ms`, earliest first.
    pub async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<Timer>, StorageError> {
        self.thread
            .read(move |db| db.due_timers(now_ms, limit))
            .await
    }

    /// When the next timer is due.
    pub async fn next_timer_due(&self) -> Result<Option<u64>, StorageError> {
        self.thread.read(|db| db.next_timer_due()).await
    }

    /// Up to `limit` messages in the outbox, oldest first.
    pub async fn outbox(&self, limit: usize) -> Result<Vec<OutboxMessage>, StorageError> {
        self.thread.read(move |db| db.outbox(limit)).await
    }

    /// Up to `limit` of one conversation's waiting messages, oldest first.
    pub async fn outbox_of(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StorageError> {
        let conversation = conversation.to_string();
        self.thread
            .read(move |db| db.outbox_of(&conversation, limit))
            .await
    }

    /// Conversations with waiting messages.
    pub async fn outbox_conversations(&self) -> Result<Vec<String>, StorageError> {
        self.thread.read(|db| db.outbox_conversations()).await
    }

    /// Conversations that got new outbox messages since the last call.
    pub fn take_queued(&self) -> HashSet<String> {
        std::mem::take(&mut *self.queued.lock().expect("queued lock"))
    }

    /// Records that the channel took one more part of `message` under
    /// `channel_id`; the message leaves the outbox with its last part.
    /// Applied, not waited for: lost in a crash, the send is still marked
    /// in flight and is settled as a send in doubt.
    pub async fn record_sent(
        &self,
        message: OutboxMessage,
        channel_id: String,
        parts: u32,
    ) -> Result<(), StorageError> {
        self.thread
            .apply(move |db| db.record_sent(&message, &channel_id, parts))
            .await
    }

    /// Moves a message the channel refused for good out of the outbox.
    pub async fn record_failed(
        &self,
        message: OutboxMessage,
        reason: String,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        self.thread
            .write(move |db| db.record_failed(&message, &reason, now_ms))
            .await
    }

    /// Notes, durably, that a send of `id` is about to start.
    pub async fn mark_in_flight(&self, id: &str, now_ms: u64) -> Result<(), StorageError> {
        let id = id.to_string();
        self.thread
            .write(move |db| db.mark_in_flight(&id, now_ms))
            .await
    }

    /// The send of `id` ended without delivery (it will be retried).
    pub async fn clear_in_flight(&self, id: &str) -> Result<(), StorageError> {
        let id = id.to_string();
        self.thread.write(move |db| db.clear_in_flight(&id)).await
    }

    /// Sends that were under way when the process stopped.
    pub async fn in_flight(&self) -> Result<Vec<String>, StorageError> {
        self.thread.read(|db| db.in_flight()).await
    }

    /// Holds a send in doubt until its echo arrives or its deadline passes;
    /// if its echo came already, records it as sent and returns true.
    pub async fn begin_settling(&self, settling: Settling) -> Result<bool, StorageError> {
        self.thread
            .write(move |db| db.begin_settling(&settling))
            .await
    }

    /// Whether any send may be waiting for its echo; false means
    /// [`Storage::settling`] would find none (it is set before a send in
    /// doubt is answered as held).
    pub fn any_settling(&self) -> bool {
        self.settling_any.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sends waiting for their echo.
    pub async fn settling(&self) -> Result<Vec<Settling>, StorageError> {
        self.thread.read(|db| db.settling()).await
    }

    /// Gives up waiting for `message_id`'s echo: the part is sent again.
    pub async fn end_settling(&self, message_id: &str) -> Result<(), StorageError> {
        let id = message_id.to_string();
        self.thread.write(move |db| db.end_settling(&id)).await
    }

    /// An echo of our own message, known to the channel as `channel_id`.
    /// A send we recorded: nothing to do (a read). Otherwise, durably: it
    /// settles the matching send in doubt, or is kept for the send under
    /// way that it may confirm if that send ends in doubt.
    pub async fn note_echo(
        &self,
        echo: Echo,
        channel_id: &str,
    ) -> Result<EchoOutcome, StorageError> {
        let id = channel_id.to_string();
        let known = {
            let id = id.clone();
            self.thread.read(move |db| db.is_known_send(&id)).await?
        };
        if known {
            return Ok(EchoOutcome::Known);
        }
        let outcome = self
            .thread
            .write(move |db| db.note_echo(&echo, &id))
            .await?;
        if matches!(outcome, EchoOutcome::Settled(_)) {
            self.outbox_wake.notify_one();
        }
        Ok(outcome)
    }

    /// Forgets kept echoes received before `cutoff_ms`.
    pub async fn expire_echoes(&self, cutoff_ms: u64) -> Result<usize, StorageError> {
        self.thread
            .write(move |db| db.expire_echoes(cutoff_ms))
            .await
    }

    /// Messages the channel refused for good, oldest first.
    pub async fn failed_messages(&self) -> Result<Vec<FailedMessage>, StorageError> {
        self.thread.read(|db| db.failed_messages()).await
    }

    /// Our outbox id of a message the channel knows as `channel_id`.
    pub async fn sent_as(&self, channel_id: &str) -> Result<Option<String>, StorageError> {
        let id = channel_id.to_string();
        self.thread.read(move |db| db.sent_as(&id)).await
    }

    pub async fn ticket(&self, id: &str) -> Result<Option<Ticket>, StorageError> {
        let id = id.to_string();
        self.thread.read(move |db| db.ticket(&id)).await
    }

    /// Tickets of one conversation, oldest first.
    pub async fn tickets_of(&self, conversation_id: &str) -> Result<Vec<Ticket>, StorageError> {
        let id = conversation_id.to_string();
        self.thread.read(move |db| db.tickets_of(&id)).await
    }

    /// Makes everything written so far durable (before shutdown).
    /// Bytes the database takes on disk.
    pub async fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.thread
            .read(|store| Ok(store.db().size_on_disk()?))
            .await
    }

    /// Answers once the storage thread takes work (for readiness).
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.thread.read(|_| Ok(())).await
    }

    pub async fn flush(&self) -> Result<(), StorageError> {
        self.thread.write(|_| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Contact;
    use crate::model::HISTORY_TURNS;

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
