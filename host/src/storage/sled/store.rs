//! The embedded store: sled trees and their key layout. Everything here is
//! synchronous and runs on the storage thread only (see the module above):
//! sled 0.34 is never called from two threads at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{SledOptions, compression, inbox_entry};
use crate::model::{
    ConversationState, HISTORY_TURNS, HistoryEntry, OutboxMessage, Ticket, Timer, TimerRef,
};
use crate::storage::{
    DeadLetter, Echo, EchoOutcome, FailedMessage, InboundEvent, SavedData, Settling, StorageError,
    TurnCommit,
};

/// The sled database and its trees.
pub struct SledStore {
    db: sled::Db,
    /// `conversation id \0 key` -> JSON value (the "save data" store).
    data: sled::Tree,
    /// ticket id -> `Ticket` as JSON; and, indexed by conversation,
    /// `\0 conversation id \0 created (u64 big-endian) + ticket id` -> ()
    /// (ids never start with a zero byte).
    tickets: sled::Tree,
    /// `account \0 customer` -> `ConversationState` as JSON.
    conversations: sled::Tree,
    /// `account \0 customer \0 turn (u64 big-endian)` -> that turn's
    /// history lines as JSON: one write per turn (sled's cost is per key);
    /// the last `HISTORY_TURNS` turns of each customer are kept.
    history: sled::Tree,
    /// due time (u64 big-endian) + timer id -> `Timer` as JSON, so a scan
    /// from the start yields the due timers first.
    timers: sled::Tree,
    /// `conversation \0 message id` -> `OutboxMessage` as JSON: one
    /// conversation's messages are a prefix, in order (UUIDv7 ids).
    outbox: sled::Tree,
    /// arrival sequence (u64 big-endian) -> an accepted inbound event, until
    /// the turn that handles it commits.
    inbox: sled::Tree,
    /// dedupe key of every accepted event -> arrival time (u64 big-endian),
    /// so a redelivery (Meta retries for 36 hours) is dropped.
    seen: sled::Tree,
    /// arrival time (u64 big-endian) + dedupe key -> (), the same keys by
    /// age, so expiring them is a range scan rather than a full one.
    seen_by_time: sled::Tree,
    /// the channel's id of a sent message -> our outbox id (echoes).
    sent: sled::Tree,
    /// outbox id -> `FailedMessage`: messages the channel refused for good.
    failed: sled::Tree,
    /// outbox ids whose send is under way: after a crash, these may or may
    /// not have reached the customer.
    in_flight: sled::Tree,
    /// inbox key -> `DeadLetter`: events whose turn kept failing.
    dead_letters: sled::Tree,
    /// inbox key -> u32: how many starts found this event's turn unfinished
    /// and ran it again (a turn that kills the process is set aside).
    restarts: sled::Tree,
    /// outbox id -> `Settling`: sends in doubt, waiting for their echo.
    settling: sled::Tree,
    /// channel id -> `Echo`: echoes that came before we knew the send was
    /// made (Meta may echo before the Send API answers), kept until the
    /// send is recorded or a send in doubt claims them.
    echoes: sled::Tree,
    /// agent id -> `Agent` as JSON.
    pub(super) agents: sled::Tree,
    /// SHA-256 of an agent's token (hex) -> agent id.
    pub(super) agent_tokens: sled::Tree,
    /// `w \0 conversation` -> queue: conversations waiting for an agent;
    /// `a \0 agent \0 conversation` -> (): conversations with an agent.
    /// Kept by turns (`TurnCommit::placement`), in the turn's transaction.
    pub(super) placements: sled::Tree,
    /// Flow versions and the sandbox (see `versions`).
    pub(super) versions: sled::Tree,
    /// Analytics facts by time (see `analytics`).
    pub(super) analytics: sled::Tree,
    /// Uploaded plugin components by content hash (see `plugins`).
    pub(super) plugins: sled::Tree,
    /// Connected Instagram accounts (see `connections`).
    pub(super) connections: sled::Tree,
    /// Whether `settling` may hold a record: set before a request that adds
    /// one is answered, so the sender can skip reading an empty tree on
    /// every wake (sends in doubt are rare).
    settling_any: Arc<AtomicBool>,
}

impl SledStore {
    /// Opens (or creates) the database in `dir` (see [`SledOptions`]).
    pub fn open(dir: &Path, options: &SledOptions) -> Result<Self, StorageError> {
        // sled's own background flusher is off: the group-commit flusher is
        // the only thread that flushes (concurrent flushes deadlock sled
        // 0.34, spacejam/sled#1308).
        let compressed = compression::compressed(dir, options.compress_new);
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(compression::cache_budget(options.cache_bytes, compressed))
            .flush_every_ms(None)
            .use_compression(compressed)
            .compression_factor(compression::LEVEL)
            .open()?;
        let settling = db.open_tree("settling")?;
        SledStore {
            data: db.open_tree("conversation_data")?,
            tickets: db.open_tree("tickets")?,
            conversations: db.open_tree("conversations")?,
            history: db.open_tree("history")?,
            timers: db.open_tree("timers")?,
            outbox: db.open_tree("outbox")?,
            inbox: db.open_tree("inbox")?,
            seen: db.open_tree("seen")?,
            seen_by_time: db.open_tree("seen_by_time")?,
            dead_letters: db.open_tree("dead_letters")?,
            restarts: db.open_tree("restarts")?,
            echoes: db.open_tree("echoes")?,
            sent: db.open_tree("sent")?,
            failed: db.open_tree("failed")?,
            in_flight: db.open_tree("in_flight")?,
            agents: db.open_tree("agents")?,
            agent_tokens: db.open_tree("agent_tokens")?,
            placements: db.open_tree("placements")?,
            versions: db.open_tree("flow_versions")?,
            analytics: db.open_tree("analytics")?,
            plugins: db.open_tree("plugins")?,
            connections: db.open_tree("instagram_connections")?,
            settling_any: Arc::new(AtomicBool::new(!settling.is_empty())),
            settling,
            db,
        }
        .with_outbox_keyed_by_conversation()?
        .with_tickets_indexed_by_conversation()?
        .with_waiting_keys_remembered()
    }

    /// Indexes the tickets written before they were indexed by
    /// conversation; once (a marker in the default tree says it is done).
    fn with_tickets_indexed_by_conversation(self) -> Result<Self, StorageError> {
        const DONE: &[u8] = b"schema:tickets_by_conversation";
        if self.db.contains_key(DONE)? {
            return Ok(self);
        }
        for entry in self.tickets.iter() {
            let (key, bytes) = entry?;
            if key.first() != Some(&0) {
                let ticket: Ticket = from_json(&bytes, "ticket")?;
                self.tickets.insert(ticket_index_key(&ticket), &[])?;
            }
        }
        self.db.insert(DONE, &[])?;
        Ok(self)
    }

    /// Moves outbox messages stored under their bare id (before the outbox
    /// was keyed by conversation) to their `conversation \0 id` key.
    fn with_outbox_keyed_by_conversation(self) -> Result<Self, StorageError> {
        for entry in self.outbox.iter() {
            let (key, bytes) = entry?;
            if !key.contains(&0) {
                let message: OutboxMessage = from_json(&bytes, "outbox message")?;
                self.outbox
                    .insert(outbox_key(&message.conversation, &message.id), bytes)?;
                self.outbox.remove(key)?;
            }
        }
        Ok(self)
    }

    /// A conversation's saved data.
    pub fn load_data(&self, conversation_id: &str) -> Result<SavedData, StorageError> {
        let prefix = data_prefix(conversation_id);
        let mut data = BTreeMap::new();
        for entry in self.data.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let value = serde_json::from_slice(&value).map_err(|e| StorageError::Corrupt {
                key: format!("{conversation_id}/{name}"),
                reason: e.to_string(),
            })?;
            data.insert(name, value);
        }
        Ok(data)
    }

    /// Writes whole engine turns, in order, in one transaction: each
    /// atomically (see [`TurnCommit`]), and all together (see `together`).
    pub fn commit_turns(&self, turns: &[(TurnCommit, u64)]) -> Result<(), StorageError> {
        let writes = turns
            .iter()
            .map(|(turn, now)| self.turn_writes(turn, *now))
            .collect::<Result<Vec<_>, _>>()?;
        let result: Result<(), TransactionError<()>> = (
            &self.data,
            &self.tickets,
            &self.conversations,
            &self.timers,
            &self.outbox,
            &self.inbox,
            &self.history,
            &self.placements,
            &self.analytics,
        )
            .transaction(|trees| {
                for turn in &writes {
                    turn.apply(trees)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        settle(result)
    }

    /// A turn's keys and encoded values, ready for its transaction.
    fn turn_writes(&self, turn: &TurnCommit, now: u64) -> Result<TurnWrites, StorageError> {
        let tickets = turn
            .tickets(now)
            .into_iter()
            .map(|ticket| {
                let json = to_json(&ticket);
                (
                    ticket.id.clone().into_bytes(),
                    ticket_index_key(&ticket),
                    json,
                )
            })
            .collect();
        let data_changes = turn
            .effects
            .data_changes
            .iter()
            .map(|(key, change)| {
                let mut full_key = data_prefix(&turn.conversation_id);
                full_key.extend_from_slice(key.as_bytes());
                (full_key, change.as_ref().map(to_json))
            })
            .collect();
        let state = turn.state.as_ref().map(|s| (s.key(), to_json(s)));
        // This turn's lines under its number; the turn `HISTORY_TURNS`
        // before it goes.
        let (history, history_drop) = match &turn.state {
            Some(state) if !turn.history.is_empty() => (
                Some((
                    history_key(&state.key(), turn.history_from),
                    to_json(&turn.history),
                )),
                turn.history_from
                    .checked_sub(HISTORY_TURNS)
                    .map(|old| history_key(&state.key(), old)),
            ),
            _ => (None, None),
        };
        Ok(TurnWrites {
            tickets,
            data_changes,
            state,
            history,
            history_drop,
            outbox: turn
                .outbox
                .iter()
                .map(|m| (outbox_key(&m.conversation, &m.id), to_json(m)))
                .collect(),
            timers_add: turn
                .timers_add
                .iter()
                .map(|t| (timer_key(&t.reference()), to_json(t)))
                .collect(),
            timers_remove: turn.timers_remove.iter().map(timer_key).collect(),
            inbox_remove: turn.inbox_remove.iter().map(|s| s.to_be_bytes()).collect(),
            placement: match (&turn.placement, &turn.state) {
                (Some(change), Some(state)) => {
                    super::agents::placement_writes(change, &state.key())
                }
                _ => Vec::new(),
            },
            facts: self.fact_write(turn, now)?,
        })
    }

    /// Accepts inbound events, a webhook's at a time, in order: each
    /// `(dedupe key, record)` not seen before (nor earlier in `batches`) is
    /// appended to the inbox and its key remembered; a duplicate is
    /// dropped. Returns how many of each webhook's events were new.
    ///
    /// Not a transaction (see `inbox_entry`): the entry, which carries its
    /// key, is written before the key is remembered, and the next open
    /// remembers the keys of entries a crash left without theirs. So any
    /// part of an accept a crash keeps is safe: an event kept is never
    /// taken again, and one not kept is taken at its redelivery.
    pub fn accept_together(
        &self,
        batches: &[(Vec<InboundEvent>, u64)],
    ) -> Result<Vec<usize>, StorageError> {
        let mut accepted = Vec::with_capacity(batches.len());
        for (events, now_ms) in batches {
            let mut new = 0;
            for event in events {
                let key = event.dedupe_key.as_bytes();
                if self.seen.contains_key(key)? {
                    continue;
                }
                let seq = self.db.generate_id()?.to_be_bytes();
                let entry = inbox_entry::encode(*now_ms, &event.dedupe_key, &event.record);
                self.inbox.insert(seq, entry)?;
                self.remember_key(key, *now_ms)?;
                new += 1;
            }
            accepted.push(new);
        }
        Ok(accepted)
    }

    /// Remembers a dedupe key and its time, in both trees.
    fn remember_key(&self, key: &[u8], at_ms: u64) -> Result<(), StorageError> {
        self.seen.insert(key, &at_ms.to_be_bytes()[..])?;
        self.seen_by_time.insert(aged_key(at_ms, key), &[][..])?;
        Ok(())
    }

    /// Remembers the key of every waiting event that a crash left without
    /// it (see [`SledStore::accept_together`]).
    fn with_waiting_keys_remembered(self) -> Result<Self, StorageError> {
        for entry in self.inbox.iter().values() {
            let value = entry?;
            let Some((at_ms, key)) = inbox_entry::decode(&value).accepted else {
                continue;
            };
            if !self.seen.contains_key(key)?
                || !self.seen_by_time.contains_key(aged_key(at_ms, key))?
            {
                self.remember_key(key, at_ms)?;
            }
        }
        Ok(self)
    }

    /// Up to `limit` remembered dedupe keys after `after`, in key order.
    pub fn seen_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::storage::SeenKey>, StorageError> {
        let start = match after {
            Some(key) => std::ops::Bound::Excluded(key.as_bytes().to_vec()),
            None => std::ops::Bound::Unbounded,
        };
        let mut keys = Vec::new();
        for entry in self
            .seen
            .range((start, std::ops::Bound::Unbounded))
            .take(limit)
        {
            let (key, at) = entry?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let at_ms = at.as_ref().try_into().map(u64::from_be_bytes);
            let at_ms = at_ms.map_err(|_| StorageError::Corrupt {
                key: format!("seen/{key}"),
                reason: "not a time".into(),
            })?;
            keys.push(crate::storage::SeenKey { key, at_ms });
        }
        Ok(keys)
    }

    /// Remembers `keys` with their times; a key already remembered keeps its own.
    pub fn remember_seen(&self, keys: &[crate::storage::SeenKey]) -> Result<(), StorageError> {
        let result: Result<(), TransactionError<()>> = (&self.seen, &self.seen_by_time)
            .transaction(|(seen, seen_by_time)| {
                for seen_key in keys {
                    let key = seen_key.key.as_bytes();
                    if seen.get(key)?.is_none() {
                        seen.insert(key, &seen_key.at_ms.to_be_bytes()[..])?;
                        seen_by_time.insert(aged_key(seen_key.at_ms, key), &[][..])?;
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        settle(result)
    }

    /// Forgets dedupe keys accepted before `cutoff_ms`, at most `limit` of
    /// them; returns how many. (A redelivery after that is taken as new.)
    pub fn expire_seen(&self, cutoff_ms: u64, limit: usize) -> Result<usize, StorageError> {
        let mut expired = 0;
        for entry in self
            .seen_by_time
            .range(..cutoff_ms.to_be_bytes().to_vec())
            .take(limit)
        {
            let (aged, _) = entry?;
            self.seen.remove(&aged[8..])?;
            self.seen_by_time.remove(&aged)?;
            expired += 1;
        }
        Ok(expired)
    }

    /// The oldest accepted events not yet handled whose sequence is after
    /// `after` (all of them with `None`): (sequence, record).
    /// How many events wait in the inbox and messages in the outbox, each
    /// counted up to `cap`, and the oldest waiting event.
    pub fn backlog(&self, cap: usize) -> Result<super::Backlog, StorageError> {
        let oldest_event = self.inbox.first()?;
        let oldest_event =
            oldest_event.map(|(_, value)| inbox_entry::decode(&value).record.to_vec());
        Ok(super::Backlog {
            inbox: self.inbox.iter().keys().take(cap).count(),
            outbox: self.outbox.iter().keys().take(cap).count(),
            oldest_event,
        })
    }

    pub fn inbox(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        self.inbox
            .range(start.to_be_bytes().to_vec()..)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((inbox_seq(&key), inbox_entry::decode(&value).record.to_vec()))
            })
            .collect()
    }

    pub fn inbox_record(&self, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.inbox.get(seq.to_be_bytes())?;
        Ok(value.map(|v| inbox_entry::decode(&v).record.to_vec()))
    }

    /// Moves an event whose turn kept failing out of the inbox.
    pub fn dead_letter(&self, seq: u64, reason: &str, now_ms: u64) -> Result<(), StorageError> {
        let key = seq.to_be_bytes();
        let result: Result<(), TransactionError<()>> = (&self.inbox, &self.dead_letters)
            .transaction(|(inbox, dead)| {
                if let Some(value) = inbox.remove(&key[..])? {
                    let record = inbox_entry::decode(&value).record;
                    let letter = DeadLetter {
                        seq,
                        record: String::from_utf8_lossy(record).into_owned(),
                        reason: reason.to_string(),
                        at_ms: now_ms,
                    };
                    dead.insert(&key[..], to_json(&letter))?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        settle(result)
    }

    /// Begins a start: forgets restart counts of events no longer waiting,
    /// and returns the sequence below which waiting events were accepted by
    /// an earlier run (so their turns may have been cut short by it).
    pub fn begin_recovery(&self) -> Result<u64, StorageError> {
        for key in self.restarts.iter().keys() {
            let key = key?;
            if !self.inbox.contains_key(&key)? {
                self.restarts.remove(&key)?;
            }
        }
        Ok(match self.inbox.last()? {
            Some((key, _)) => inbox_seq(&key) + 1,
            None => 0,
        })
    }

    /// Counts one more run of an event an earlier run left unfinished;
    /// returns the count.
    pub fn count_restart(&self, seq: u64) -> Result<u32, StorageError> {
        let key = seq.to_be_bytes();
        let count = self
            .restarts
            .get(key)?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(0)
            + 1;
        self.restarts.insert(key, &count.to_be_bytes())?;
        Ok(count)
    }

    /// Events set aside because their turn kept failing, oldest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StorageError> {
        self.dead_letters
            .iter()
            .values()
            .take(limit)
            .map(|bytes| from_json(&bytes?, "dead letter"))
            .collect()
    }

    /// Removes a handled event that needed no turn (an echo, a read).
    pub fn remove_from_inbox(&self, seq: u64) -> Result<(), StorageError> {
        self.inbox.remove(seq.to_be_bytes())?;
        Ok(())
    }

    /// The customer's conversation (current session), if any.
    pub fn conversation(&self, key: &str) -> Result<Option<ConversationState>, StorageError> {
        self.conversations
            .get(key.as_bytes())?
            .map(|bytes| from_json(&bytes, &format!("conversation {key:?}")))
            .transpose()
    }

    pub fn conversations_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationState>, StorageError> {
        let start = match after {
            Some(key) => std::ops::Bound::Excluded(key.as_bytes().to_vec()),
            None => std::ops::Bound::Unbounded,
        };
        self.conversations
            .range((start, std::ops::Bound::Unbounded))
            .values()
            .take(limit)
            .map(|bytes| from_json(&bytes?, "conversation"))
            .collect()
    }

    /// The last turns' lines of a customer's history, oldest first.
    pub fn history(&self, conversation: &str) -> Result<Vec<HistoryEntry>, StorageError> {
        let mut lines = Vec::new();
        for turn in self.history.scan_prefix(data_prefix(conversation)).values() {
            let turn: Vec<HistoryEntry> = from_json(&turn?, "history")?;
            lines.extend(turn);
        }
        Ok(lines)
    }

    /// Timers due at or before `now_ms`, earliest first.
    pub fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<Timer>, StorageError> {
        let mut due = Vec::new();
        // Keys start with the due time: every key below `now_ms + 1`.
        let timers = match now_ms.checked_add(1) {
            Some(end) => self.timers.range(..end.to_be_bytes().to_vec()),
            None => self.timers.iter(),
        };
        for entry in timers {
            let (_, bytes) = entry?;
            due.push(from_json(&bytes, "timer")?);
            if due.len() >= limit {
                break;
            }
        }
        Ok(due)
    }

    /// When the next timer is due.
    pub fn next_timer_due(&self) -> Result<Option<u64>, StorageError> {
        Ok(self
            .timers
            .first()?
            .map(|(key, _)| u64::from_be_bytes(key[..8].try_into().expect("8-byte prefix"))))
    }

    /// Messages in the outbox, by conversation and oldest first in each, at
    /// most `limit`.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxMessage>, StorageError> {
        self.outbox
            .iter()
            .values()
            .take(limit)
            .map(|bytes| from_json(&bytes?, "outbox message"))
            .collect()
    }

    /// One conversation's waiting messages, oldest first, at most `limit`.
    pub fn outbox_of(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StorageError> {
        self.outbox
            .scan_prefix(outbox_key(conversation, ""))
            .values()
            .take(limit)
            .map(|bytes| from_json(&bytes?, "outbox message"))
            .collect()
    }

    /// The conversations with waiting messages, read from the keys alone.
    pub fn outbox_conversations(&self) -> Result<Vec<String>, StorageError> {
        let mut conversations: Vec<String> = Vec::new();
        for key in self.outbox.iter().keys() {
            let key = key?;
            let cut = key.iter().rposition(|b| *b == 0).unwrap_or(key.len());
            let conversation = String::from_utf8_lossy(&key[..cut]);
            if conversations.last().map(String::as_str) != Some(&conversation) {
                conversations.push(conversation.into_owned());
            }
        }
        Ok(conversations)
    }

    /// Records that the channel accepted one more part of an outbox
    /// message (under `channel_id`); the message leaves the outbox with its
    /// last part. One transaction, so a restart resumes after what was sent.
    pub fn record_sent(
        &self,
        message: &OutboxMessage,
        channel_id: &str,
        parts: u32,
    ) -> Result<(), StorageError> {
        let mut updated = message.clone();
        updated.sent_parts += 1;
        let done = updated.sent_parts >= parts;
        let record = to_json(&updated);
        let key = outbox_key(&message.conversation, &message.id);
        // An early echo is rare: no tombstone write when there is none.
        let kept_echo = self.echoes.contains_key(channel_id.as_bytes())?;
        if !kept_echo {
            let unfinished = (!done).then_some(&record);
            return self.record_sent_in_order(&key, unfinished, channel_id, message);
        }
        let result: Result<(), TransactionError<()>> =
            (&self.outbox, &self.sent, &self.in_flight, &self.echoes).transaction(
                |(outbox, sent, in_flight, echoes)| {
                    sent.insert(channel_id.as_bytes(), message.id.as_bytes())?;
                    in_flight.remove(message.id.as_bytes())?;
                    if kept_echo {
                        echoes.remove(channel_id.as_bytes())?;
                    }
                    if done {
                        outbox.remove(key.as_slice())?;
                    } else {
                        outbox.insert(key.as_slice(), record.as_slice())?;
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        settle(result)
    }

    /// [`SledStore::record_sent`] without a transaction: every sled
    /// transaction writes out the log buffer twice (`pin_log`), and a send
    /// is the commonest write after a turn. The writes go in an order whose
    /// every prefix a crash may keep is safe: the outbox first (its message
    /// gone or its part counted, so the send is not made again), then the
    /// in-flight mark (left behind, it names a message no longer waiting
    /// and is cleared at start), and last the channel's id (left out, a
    /// late echo is kept as unknown and expires). The reverse order could
    /// keep the id alone, and an echo would then be taken as a send we
    /// recorded while the message waits in doubt and is sent again.
    fn record_sent_in_order(
        &self,
        outbox_key: &[u8],
        unfinished: Option<&Vec<u8>>,
        channel_id: &str,
        message: &OutboxMessage,
    ) -> Result<(), StorageError> {
        match unfinished {
            Some(record) => self.outbox.insert(outbox_key, record.as_slice())?,
            None => self.outbox.remove(outbox_key)?,
        };
        self.in_flight.remove(message.id.as_bytes())?;
        self.sent
            .insert(channel_id.as_bytes(), message.id.as_bytes())?;
        Ok(())
    }

    /// Moves a message the channel refused for good out of the outbox.
    pub fn record_failed(
        &self,
        message: &OutboxMessage,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let failed = to_json(&FailedMessage {
            message: message.clone(),
            reason: reason.to_string(),
            at_ms: now_ms,
        });
        let result: Result<(), TransactionError<()>> =
            (&self.outbox, &self.failed, &self.in_flight).transaction(
                |(outbox, failed_tx, in_flight)| {
                    outbox.remove(outbox_key(&message.conversation, &message.id))?;
                    in_flight.remove(message.id.as_bytes())?;
                    failed_tx.insert(message.id.as_bytes(), failed.as_slice())?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        settle(result)
    }

    /// Notes, durably, that a send of `id` is about to start.
    pub fn mark_in_flight(&self, id: &str, now_ms: u64) -> Result<(), StorageError> {
        self.in_flight
            .insert(id.as_bytes(), &now_ms.to_be_bytes()[..])?;
        Ok(())
    }

    /// The send of `id` ended without delivery (it will be retried).
    pub fn clear_in_flight(&self, id: &str) -> Result<(), StorageError> {
        self.in_flight.remove(id.as_bytes())?;
        Ok(())
    }

    /// Sends that were under way when the process stopped.
    pub fn in_flight(&self) -> Result<Vec<String>, StorageError> {
        self.in_flight
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Holds a send in doubt, unless an echo of it already came: then it is
    /// recorded as sent at once. Returns whether it was settled so.
    pub fn begin_settling(&self, settling: &Settling) -> Result<bool, StorageError> {
        if let Some(mid) = self.kept_echo_for(settling)? {
            self.apply_echo(settling, &mid)?;
            return Ok(true);
        }
        self.hold(settling)?;
        Ok(false)
    }

    fn kept_echo_for(&self, settling: &Settling) -> Result<Option<String>, StorageError> {
        for entry in self.echoes.iter() {
            let (mid, bytes) = entry?;
            let echo: Echo = from_json(&bytes, "echo")?;
            if echo.account == settling.account
                && echo.recipient == settling.recipient
                && echo.text == settling.text
                && !self.sent.contains_key(&mid)?
            {
                return Ok(Some(String::from_utf8_lossy(&mid).into_owned()));
            }
        }
        Ok(None)
    }

    /// Shared with the `Storage` handle: whether any send is in doubt.
    pub(super) fn settling_flag(&self) -> Arc<AtomicBool> {
        self.settling_any.clone()
    }

    fn note_settling_changed(&self) {
        self.settling_any
            .store(!self.settling.is_empty(), Ordering::SeqCst);
    }

    fn hold(&self, settling: &Settling) -> Result<(), StorageError> {
        self.settling_any.store(true, Ordering::SeqCst);
        let id = settling.message_id.as_bytes();
        let record = to_json(settling);
        let result: Result<(), TransactionError<()>> = (&self.settling, &self.in_flight)
            .transaction(|(settling_tx, in_flight)| {
                settling_tx.insert(id, record.as_slice())?;
                in_flight.remove(id)?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        settle(result)
    }

    pub fn settling(&self) -> Result<Vec<Settling>, StorageError> {
        self.settling
            .iter()
            .values()
            .map(|bytes| from_json(&bytes?, "settling send"))
            .collect()
    }

    pub fn end_settling(&self, message_id: &str) -> Result<(), StorageError> {
        self.settling.remove(message_id.as_bytes())?;
        self.note_settling_changed();
        Ok(())
    }

    /// The send in doubt an echo to `recipient` with `text` confirms.
    pub fn settling_for(
        &self,
        account: &str,
        recipient: &str,
        text: &str,
    ) -> Result<Option<Settling>, StorageError> {
        Ok(self
            .settling()?
            .into_iter()
            .find(|s| s.account == account && s.recipient == recipient && s.text == text))
    }

    /// Whether the channel's message `channel_id` is one we recorded sending.
    pub fn is_known_send(&self, channel_id: &str) -> Result<bool, StorageError> {
        Ok(self.sent.contains_key(channel_id.as_bytes())?)
    }

    /// An echo of our own message (see `Storage::note_echo`).
    pub fn note_echo(&self, echo: &Echo, channel_id: &str) -> Result<EchoOutcome, StorageError> {
        if self.is_known_send(channel_id)? {
            return Ok(EchoOutcome::Known);
        }
        if let Some(settling) = self.settling_for(&echo.account, &echo.recipient, &echo.text)? {
            self.apply_echo(&settling, channel_id)?;
            return Ok(EchoOutcome::Settled(settling.message_id));
        }
        self.echoes.insert(channel_id.as_bytes(), to_json(echo))?;
        Ok(EchoOutcome::Kept)
    }

    /// Records the part in doubt as sent under `channel_id`, its echo's id.
    fn apply_echo(&self, settling: &Settling, channel_id: &str) -> Result<(), StorageError> {
        let id = settling.message_id.as_bytes();
        let key = outbox_key(&settling.conversation, &settling.message_id);
        let message = match self.outbox.get(&key)? {
            Some(bytes) => Some(from_json::<OutboxMessage>(&bytes, "outbox message")?),
            None => None,
        };
        let updated = message.map(|mut m| {
            m.sent_parts = settling.part + 1;
            (m.sent_parts >= settling.parts, to_json(&m))
        });
        let result: Result<(), TransactionError<()>> = (
            &self.outbox,
            &self.sent,
            &self.settling,
            &self.echoes,
            &self.in_flight,
        )
            .transaction(|(outbox, sent, settling_tx, echoes, in_flight)| {
                settling_tx.remove(id)?;
                echoes.remove(channel_id.as_bytes())?;
                in_flight.remove(id)?;
                match &updated {
                    None => {}
                    Some((true, _)) => {
                        sent.insert(channel_id.as_bytes(), id)?;
                        outbox.remove(key.as_slice())?;
                    }
                    Some((false, record)) => {
                        sent.insert(channel_id.as_bytes(), id)?;
                        outbox.insert(key.as_slice(), record.as_slice())?;
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        self.note_settling_changed();
        settle(result)
    }

    /// Forgets kept echoes received before `cutoff_ms`; returns how many.
    pub fn expire_echoes(&self, cutoff_ms: u64) -> Result<usize, StorageError> {
        let mut expired = 0;
        for entry in self.echoes.iter() {
            let (mid, bytes) = entry?;
            let echo: Echo = from_json(&bytes, "echo")?;
            if echo.at_ms < cutoff_ms {
                self.echoes.remove(mid)?;
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Messages the channel refused for good, oldest first.
    pub fn failed_messages(&self) -> Result<Vec<FailedMessage>, StorageError> {
        self.failed
            .iter()
            .values()
            .map(|bytes| from_json(&bytes?, "failed message"))
            .collect()
    }

    /// Our outbox id of a message the channel knows as `channel_id`.
    pub fn sent_as(&self, channel_id: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .sent
            .get(channel_id.as_bytes())?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    pub fn ticket(&self, id: &str) -> Result<Option<Ticket>, StorageError> {
        self.tickets
            .get(id.as_bytes())?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                    key: format!("ticket {id}"),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// Tickets of one conversation, oldest first (an index scan).
    pub fn tickets_of(&self, conversation_id: &str) -> Result<Vec<Ticket>, StorageError> {
        let mut found = Vec::new();
        for key in self
            .tickets
            .scan_prefix(ticket_index_prefix(conversation_id))
            .keys()
        {
            let key = key?;
            let id = String::from_utf8_lossy(&key[conversation_id.len() + 10..]).into_owned();
            found.extend(self.ticket(&id)?);
        }
        Ok(found)
    }

    /// The database, for the flusher.
    pub fn db(&self) -> sled::Db {
        self.db.clone()
    }
}

/// `\0 conversation id \0`: where a conversation's ticket index starts.
fn ticket_index_prefix(conversation_id: &str) -> Vec<u8> {
    let mut key = vec![0];
    key.extend_from_slice(conversation_id.as_bytes());
    key.push(0);
    key
}

/// The ticket's entry in its conversation's index, in creation order.
fn ticket_index_key(ticket: &Ticket) -> Vec<u8> {
    let mut key = ticket_index_prefix(&ticket.conversation_id);
    key.extend_from_slice(&ticket.created_at_ms.to_be_bytes());
    key.extend_from_slice(ticket.id.as_bytes());
    key
}

/// `conversation \0 turn (big-endian)`.
fn history_key(conversation: &str, seq: u64) -> Vec<u8> {
    let mut key = conversation.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `conversation \0 message id`.
fn outbox_key(conversation: &str, id: &str) -> Vec<u8> {
    let mut key = conversation.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The inbox sequence of an inbox key.
fn inbox_seq(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[..8].try_into().expect("inbox keys are 8 bytes"))
}

/// `arrival time (big-endian) + dedupe key`.
fn aged_key(at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut aged = at_ms.to_be_bytes().to_vec();
    aged.extend_from_slice(key);
    aged
}

/// `due time (big-endian) + id`: the tree is in firing order.
fn timer_key(timer: &TimerRef) -> Vec<u8> {
    let mut key = timer.due_ms.to_be_bytes().to_vec();
    key.extend_from_slice(timer.id.as_bytes());
    key
}

/// A transaction's result; ours never abort, so only storage errors remain.
/// One turn's writes, keyed and encoded (see [`SledStore::commit_turns`]).
struct TurnWrites {
    /// (ticket id, index key, ticket as JSON)
    tickets: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    data_changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    state: Option<(String, Vec<u8>)>,
    history: Option<(Vec<u8>, Vec<u8>)>,
    history_drop: Option<Vec<u8>>,
    outbox: Vec<(Vec<u8>, Vec<u8>)>,
    timers_add: Vec<(Vec<u8>, Vec<u8>)>,
    timers_remove: Vec<Vec<u8>>,
    inbox_remove: Vec<[u8; 8]>,
    placement: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    facts: Option<super::analytics::FactWrite>,
}

/// The trees a turn writes, in a transaction.
type TurnTrees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

impl TurnWrites {
    fn apply(&self, trees: &TurnTrees) -> Result<(), ConflictableTransactionError<()>> {
        let (data, tickets, conversations, timers, outbox, inbox, history, placements, analytics) =
            trees;
        put_all(placements, &self.placement)?;
        if let Some((key, lines)) = &self.history {
            history.insert(key.as_slice(), lines.as_slice())?;
        }
        if let Some(key) = &self.history_drop {
            history.remove(key.as_slice())?;
        }
        put_all(data, &self.data_changes)?;
        for (id, index_key, json) in &self.tickets {
            tickets.insert(id.as_slice(), json.as_slice())?;
            tickets.insert(index_key.as_slice(), &[])?;
        }
        if let Some((key, state)) = &self.state {
            conversations.insert(key.as_bytes(), state.as_slice())?;
        }
        for key in &self.timers_remove {
            timers.remove(key.as_slice())?;
        }
        for (key, timer) in &self.timers_add {
            timers.insert(key.as_slice(), timer.as_slice())?;
        }
        for (key, message) in &self.outbox {
            outbox.insert(key.as_slice(), message.as_slice())?;
        }
        for key in &self.inbox_remove {
            inbox.remove(&key[..])?;
        }
        if let Some((key, record)) = &self.facts {
            analytics.insert(&key[..], record.as_slice())?;
        }
        Ok(())
    }
}

/// Inserts each `Some` value and removes each `None` key.
fn put_all(
    tree: &TransactionalTree,
    writes: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<(), ConflictableTransactionError<()>> {
    for (key, value) in writes {
        match value {
            Some(value) => tree.insert(key.as_slice(), value.as_slice())?,
            None => tree.remove(key.as_slice())?,
        };
    }
    Ok(())
}

pub(super) fn settle<T>(result: Result<T, TransactionError<()>>) -> Result<T, StorageError> {
    result.map_err(|e| match e {
        TransactionError::Storage(e) => StorageError::Sled(e),
        TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
    })
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise to JSON")
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        key: what.to_string(),
        reason: e.to_string(),
    })
}

fn data_prefix(conversation_id: &str) -> Vec<u8> {
    let mut prefix = conversation_id.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Effects, TicketDraft};

    fn inbound(key: &str) -> InboundEvent {
        InboundEvent {
            dedupe_key: key.into(),
            conversation: "acct\0c".into(),
            record: format!("{{\"mid\":\"{key}\"}}").into_bytes(),
        }
    }

    /// A crash that kept an accept's inbox entry but not its key (the
    /// entry is written first): the next open remembers the key, so a
    /// redelivery is a duplicate, and the key still expires with its time.
    #[test]
    fn an_event_kept_without_its_key_is_remembered_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), &SledOptions::cache(1 << 20)).unwrap();
            let seq = store.db.generate_id().unwrap().to_be_bytes();
            let event = inbound("m.crash");
            let entry = inbox_entry::encode(1_000, &event.dedupe_key, &event.record);
            store.inbox.insert(seq, entry).unwrap();
            store.db.flush().unwrap();
        }
        let store = reopen(dir.path());
        let again = store.accept_together(&[(vec![inbound("m.crash")], 2_000)]);
        assert_eq!(again.unwrap(), [0]);
        let waiting = store.inbox(None, 10).unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].1, inbound("m.crash").record);
        assert_eq!(store.expire_seen(1_001, 10).unwrap(), 1);
    }

    /// An entry stored before entries carried their key reads as its record.
    #[test]
    fn an_entry_from_before_reads_as_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &SledOptions::cache(1 << 20)).unwrap();
        store.inbox.insert(7u64.to_be_bytes(), b"{}").unwrap();
        assert_eq!(store.inbox_record(7).unwrap(), Some(b"{}".to_vec()));
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(store.inbox(None, 10).unwrap(), [(7, b"{}".to_vec())]);
    }

    /// The store in `dir` opened again, as a restarted process would.
    fn reopen(dir: &Path) -> SledStore {
        super::super::when_unlocked(|| SledStore::open(dir, &SledOptions::cache(1 << 20)))
    }

    fn draft(id: &str) -> TicketDraft {
        TicketDraft {
            id: id.into(),
            title: format!("ticket {id}"),
            category: "order".into(),
            comment: String::new(),
        }
    }

    fn open_ticket(store: &SledStore, conversation: &str, id: &str, now: u64) {
        let turn = TurnCommit {
            conversation_id: conversation.into(),
            effects: Effects {
                tickets: vec![draft(id)],
                ..Effects::default()
            },
            ..TurnCommit::default()
        };
        store.commit_turns(&[(turn, now)]).unwrap();
    }

    /// A conversation's tickets come from its index, oldest first, and
    /// never another conversation's (`a:c:1` is a prefix of `a:c:10`).
    #[test]
    fn tickets_are_listed_per_conversation_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &SledOptions::cache(1 << 20)).unwrap();
        open_ticket(&store, "a:c:1", "t2", 20);
        open_ticket(&store, "a:c:10", "t3", 5);
        open_ticket(&store, "a:c:1", "t1", 10);
        let ids = |conversation| -> Vec<String> {
            let tickets = store.tickets_of(conversation).unwrap();
            tickets.into_iter().map(|t| t.id).collect()
        };
        assert_eq!(ids("a:c:1"), ["t1", "t2"]);
        assert_eq!(ids("a:c:10"), ["t3"]);
        assert!(ids("a:c").is_empty());
    }

    /// Tickets stored before the index existed are indexed once at open.
    #[test]
    fn tickets_written_before_the_index_are_indexed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), &SledOptions::cache(1 << 20)).unwrap();
            let ticket = Ticket {
                id: "old".into(),
                conversation_id: "a:c:1".into(),
                title: "before".into(),
                category: "order".into(),
                comment: String::new(),
                created_at_ms: 7,
            };
            store.tickets.insert("old", to_json(&ticket)).unwrap();
            store.db.remove("schema:tickets_by_conversation").unwrap();
            store.db.flush().unwrap();
        }
        let store = reopen(dir.path());
        let tickets = store.tickets_of("a:c:1").unwrap();
        assert_eq!(tickets.len(), 1);
        assert_eq!(tickets[0].title, "before");
    }
}
