//! What flowhost asks of a store, one trait per concern. The sled store
//! ([`super::sled::SledBackend`], embedded, the default) implements them all; a store for several nodes
//! implements the same traits, and `conformance` holds both to the same
//! guarantees. Stores take the time from their caller and own their keys:
//! what crosses these traits is records and typed ids, never encoded bytes.
//!
//! Writes that say *durably* return only once the write would survive a
//! crash; other writes are visible to every later read at once and durable
//! no later than the next durable write (see each store's docs).
//!

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use super::records::*;
use crate::model::agent::Agent;
use crate::model::connection::Connection;
use crate::model::fact::Record;
use crate::model::feed::FeedEvent;
use crate::model::version::{FlowVersion, Sandbox, UploadedPlugin};
use crate::model::{ConversationState, HistoryEntry, OutboxMessage, Ticket, Timer};

/// A change made to an agent in place, atomically (see
/// [`Agents::modify_agent`]).
pub type AgentChange = Box<dyn for<'a> FnOnce(&'a mut Agent) + Send>;

/// A conversation's saved data, by name.
pub type SavedData = BTreeMap<String, Value>;

/// Called with each fact of a period, in time order.
pub type EachFact<'f> = dyn for<'r> FnMut(&'r Record) + Send + 'f;

/// Everything a store provides; what [`super::Storage`] holds.
#[async_trait]
pub trait Store:
    Inbox + Conversations + Timers + Outbox + Agents + Versions + Uploads + Connections + Analytics
{
    /// The inbox's and outbox's depths, each counted up to `cap`.
    async fn backlog(&self, cap: usize) -> Result<Backlog, StorageError>;

    /// Bytes the store takes on disk.
    async fn size_on_disk(&self) -> Result<u64, StorageError>;

    /// Answers once the store takes work (for readiness).
    async fn ping(&self) -> Result<(), StorageError>;

    /// Makes everything written so far durable (before shutdown).
    async fn flush(&self) -> Result<(), StorageError>;

    /// Group-commit figures so far (zeros for a store without one).
    fn commit_stats(&self) -> CommitStats;

    /// Moves each time this node gains conversations (partitions taken
    /// from another node): readers of the inbox start again from its
    /// beginning. Always 0 for a store only one node uses.
    fn ownership_generation(&self) -> u64 {
        0
    }

    /// Whether this node works on `conversation` now (always, where one
    /// node has the store to itself).
    fn owns(&self, conversation: &str) -> bool {
        let _ = conversation;
        true
    }

    /// Nodes sharing this store's conversations, this one included (they
    /// split each account's send limit).
    fn nodes_alive(&self) -> usize {
        1
    }

    /// Woken when another node accepted inbound events (a store shared by
    /// several nodes); `None` where only this process accepts them.
    fn inbox_wake(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// The agents' feed every node shares, where several nodes share the
    /// store (none where one process has it to itself: its feed is in
    /// memory).
    fn shared_feed(&self) -> Option<&dyn SharedFeed> {
        None
    }

    /// Tells the other nodes the base URL this node is reached at (nothing
    /// to do where one node has the store to itself).
    fn advertise(&self, _address: String) {}

    /// The base URL of the node that runs `conversation` now, if that is
    /// another node that said where it is reached.
    async fn owner_address(&self, _conversation: &str) -> Result<Option<String>, StorageError> {
        Ok(None)
    }
}

/// The agents' feed of several nodes: each appends what it has to tell,
/// and each reads everyone's events in one order, so an agent's live
/// stream shows every conversation whichever node it is connected to.
#[async_trait]
pub trait SharedFeed: Send + Sync {
    /// Keeps `event` (its `id` is ignored) and returns the id it got: every
    /// event committed after it gets a larger one, so a reader that asks
    /// for the events after the last id it saw misses none.
    async fn append_feed(&self, event: &FeedEvent, now_ms: u64) -> Result<u64, StorageError>;

    /// Up to `limit` events after `id`, oldest first.
    async fn feed_after(&self, id: u64, limit: usize) -> Result<Vec<FeedEvent>, StorageError>;

    /// The last id given (0 before the first event).
    async fn feed_head(&self) -> Result<u64, StorageError>;

    /// Forgets the events kept before `before_ms`; returns how many.
    async fn prune_feed(&self, before_ms: u64) -> Result<u64, StorageError>;

    /// Woken each time any node appends.
    fn feed_wake(&self) -> std::sync::Arc<tokio::sync::Notify>;
}

/// Inbound events from the channels: accepted once, held until their turn commits.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Accepts inbound events: the new ones join the inbox, duplicates (by
    /// dedupe key) are dropped. Durable on return, so the webhook may
    /// answer 200. Returns how many were new.
    async fn accept_inbound(
        &self,
        events: Vec<InboundEvent>,
        now_ms: u64,
    ) -> Result<usize, StorageError>;

    /// Forgets dedupe keys accepted before `cutoff_ms` (at most `limit`).
    async fn expire_seen(&self, cutoff_ms: u64, limit: usize) -> Result<usize, StorageError>;

    /// Up to `limit` remembered dedupe keys after `after`, in key order
    /// (to move them to another store: `storage::archive`).
    async fn seen_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SeenKey>, StorageError>;

    /// Remembers dedupe keys another store accepted, each with its time, so
    /// a redelivery of their events is a duplicate here too; a key already
    /// remembered keeps its time. Durable on return.
    async fn remember_seen(&self, keys: Vec<SeenKey>) -> Result<(), StorageError>;

    /// Up to `limit` waiting inbound events after sequence `after`.
    async fn inbox(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError>;

    /// One waiting inbound event, by its sequence.
    async fn inbox_record(&self, seq: u64) -> Result<Option<Vec<u8>>, StorageError>;

    /// Removes a handled event that needed no turn.
    async fn remove_from_inbox(&self, seq: u64) -> Result<(), StorageError>;

    /// Sets aside an event whose turn kept failing.
    async fn dead_letter(&self, seq: u64, reason: String, now_ms: u64) -> Result<(), StorageError>;

    /// Begins a start: forgets restart counts of events no longer waiting,
    /// and returns the sequence below which waiting events were accepted by
    /// an earlier run (so their turns may have been cut short by it).
    async fn begin_recovery(&self) -> Result<u64, StorageError>;

    /// Counts a rerun of an event an earlier run left unfinished, durably
    /// before the rerun starts (a rerun that kills the process still counts).
    async fn count_restart(&self, seq: u64) -> Result<u32, StorageError>;

    /// Events set aside, oldest first, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StorageError>;
}

/// Conversations, their saved data, history and tickets; a turn is committed whole.
#[async_trait]
pub trait Conversations: Send + Sync {
    /// The customer's conversation (current session), if any.
    async fn conversation(&self, key: &str) -> Result<Option<ConversationState>, StorageError>;

    /// Up to `limit` conversations whose keys come after `after`, in key
    /// order (to walk them all: `storage::archive`).
    async fn conversations_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationState>, StorageError>;

    /// The customer's conversation (current session) and that session's
    /// saved data: a turn's first read, in one request where the store can.
    async fn conversation_with_data(
        &self,
        key: &str,
    ) -> Result<Option<(ConversationState, SavedData)>, StorageError> {
        let Some(state) = self.conversation(key).await? else {
            return Ok(None);
        };
        let data = self.load_data(&state.id()).await?;
        Ok(Some((state, data)))
    }

    /// A conversation's saved data.
    async fn load_data(&self, conversation_id: &str) -> Result<SavedData, StorageError>;

    /// The last lines of a customer's history (all sessions), oldest first.
    async fn history(&self, conversation: &str) -> Result<Vec<HistoryEntry>, StorageError>;

    /// Applies a whole engine turn atomically (see [`TurnCommit`]); durable
    /// with the next flush (see the module docs).
    async fn commit_turn(&self, turn: TurnCommit, now_ms: u64) -> Result<(), StorageError>;

    /// One ticket, by id.
    async fn ticket(&self, id: &str) -> Result<Option<Ticket>, StorageError>;

    /// Tickets of one conversation, oldest first.
    async fn tickets_of(&self, conversation_id: &str) -> Result<Vec<Ticket>, StorageError>;
}

/// Durable timers, read in the order they fall due (turns add and remove them).
#[async_trait]
pub trait Timers: Send + Sync {
    /// Timers due at or before `now_ms`, earliest first.
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<Timer>, StorageError>;

    /// When the next timer is due.
    async fn next_timer_due(&self) -> Result<Option<u64>, StorageError>;
}

/// Messages waiting for the channel, sends under way, and sends in doubt waiting for their echo.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` messages in the outbox, oldest first.
    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxMessage>, StorageError>;

    /// Up to `limit` of one conversation's waiting messages, oldest first.
    async fn outbox_of(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StorageError>;

    /// Conversations with waiting messages.
    async fn outbox_conversations(&self) -> Result<Vec<String>, StorageError>;

    /// Records that the channel took one more part of `message` under
    /// `channel_id`; the message leaves the outbox with its last part.
    /// Applied, not waited for: lost in a crash, the send is still marked
    /// in flight and is settled as a send in doubt.
    async fn record_sent(
        &self,
        message: OutboxMessage,
        channel_id: String,
        parts: u32,
    ) -> Result<(), StorageError>;

    /// Moves a message the channel refused for good out of the outbox.
    async fn record_failed(
        &self,
        message: OutboxMessage,
        reason: String,
        now_ms: u64,
    ) -> Result<(), StorageError>;

    /// Notes, durably, that a send of `id` is about to start.
    async fn mark_in_flight(&self, id: &str, now_ms: u64) -> Result<(), StorageError>;

    /// The send of `id` ended without delivery (it will be retried).
    async fn clear_in_flight(&self, id: &str) -> Result<(), StorageError>;

    /// Sends that were under way when the process stopped.
    async fn in_flight(&self) -> Result<Vec<String>, StorageError>;

    /// Holds a send in doubt until its echo arrives or its deadline passes;
    /// if its echo came already, records it as sent and returns true.
    async fn begin_settling(&self, settling: Settling) -> Result<bool, StorageError>;

    /// Whether any send may be waiting for its echo; false means
    /// [`Outbox::settling`] would find none (it is set before a send in
    /// doubt is answered as held).
    fn any_settling(&self) -> bool;

    /// Sends waiting for their echo.
    async fn settling(&self) -> Result<Vec<Settling>, StorageError>;

    /// Gives up waiting for `message_id`'s echo: the part is sent again.
    async fn end_settling(&self, message_id: &str) -> Result<(), StorageError>;

    /// An echo of our own message, known to the channel as `channel_id`.
    /// A send we recorded: nothing to do (a read). Otherwise, durably: it
    /// settles the matching send in doubt, or is kept for the send under
    /// way that it may confirm if that send ends in doubt.
    async fn note_echo(&self, echo: Echo, channel_id: &str) -> Result<EchoOutcome, StorageError>;

    /// Forgets kept echoes received before `cutoff_ms`.
    async fn expire_echoes(&self, cutoff_ms: u64) -> Result<usize, StorageError>;

    /// Messages the channel refused for good, oldest first.
    async fn failed_messages(&self) -> Result<Vec<FailedMessage>, StorageError>;

    /// Our outbox id of a message the channel knows as `channel_id`.
    async fn sent_as(&self, channel_id: &str) -> Result<Option<String>, StorageError>;
}

/// Agents, and the placement index turns keep: who waits in which queue, who answers whom.
#[async_trait]
pub trait Agents: Send + Sync {
    /// One agent, by id.
    async fn agent(&self, id: &str) -> Result<Option<Agent>, StorageError>;

    /// Keeps every other node sharing the store from giving `agent` a
    /// conversation until the hold is released, so a capacity check and
    /// the assignment it allows are one step across nodes. (Where one
    /// process has the store, its own lock is enough: a hold of nothing.)
    async fn hold_agent(&self, _agent: &str) -> Result<AgentHold, StorageError> {
        Ok(AgentHold::default())
    }

    /// Every agent.
    async fn agents(&self) -> Result<Vec<Agent>, StorageError>;

    /// The agent whose token hashes to `token_sha256` (hex).
    async fn agent_by_token(&self, token_sha256: &str) -> Result<Option<Agent>, StorageError>;

    /// Saves an agent, durably (an admin's change is answered after it).
    async fn put_agent(&self, agent: Agent) -> Result<(), StorageError>;

    /// Changes an agent in place, atomically with respect to every other
    /// change (the storage thread runs one request at a time); returns the
    /// agent as changed, or `None` if there is no such agent.
    async fn modify_agent(
        &self,
        id: &str,
        change: AgentChange,
    ) -> Result<Option<Agent>, StorageError>;

    /// Removes an agent, durably; whether there was one.
    async fn remove_agent(&self, id: &str) -> Result<bool, StorageError>;

    /// Conversations waiting in a queue, with where and since when.
    async fn waiting(&self) -> Result<Vec<(String, WaitingIn)>, StorageError>;

    /// Conversations `agent` closed, and when, oldest first; entries closed
    /// before `forget_before_ms` are removed on the way.
    async fn closed_by(
        &self,
        agent: &str,
        forget_before_ms: u64,
    ) -> Result<Vec<(String, u64)>, StorageError>;

    /// Conversations `agent` answers.
    async fn assigned_to(&self, agent: &str) -> Result<Vec<String>, StorageError>;
}

/// Published flow versions and the sandbox.
#[async_trait]
pub trait Versions: Send + Sync {
    /// The version in production, if any was published.
    async fn production(&self) -> Result<Option<FlowVersion>, StorageError>;

    /// One published version, by number.
    async fn flow_version(&self, number: u64) -> Result<Option<FlowVersion>, StorageError>;

    /// Versions, newest first, at most `limit`.
    async fn flow_versions(&self, limit: usize) -> Result<Vec<FlowVersion>, StorageError>;

    /// Publishes `new` as the next version and makes it production, durably,
    /// unless production is no longer `new.expected_production`.
    async fn publish(
        &self,
        new: NewVersion,
    ) -> Result<Result<FlowVersion, ProductionMoved>, StorageError>;

    /// The sandbox, if one was saved.
    async fn sandbox(&self) -> Result<Option<Sandbox>, StorageError>;

    /// Replaces the sandbox, durably.
    async fn put_sandbox(&self, sandbox: Sandbox) -> Result<(), StorageError>;

    /// The SHA-256 of the configuration's flow file last imported.
    async fn last_file_import(&self) -> Result<Option<String>, StorageError>;
}

/// Uploaded plugin components, by content hash.
#[async_trait]
pub trait Uploads: Send + Sync {
    /// Keeps an uploaded component and its record, durably. Storing the
    /// same bytes again keeps the first record.
    async fn put_upload(
        &self,
        record: UploadedPlugin,
        bytes: Vec<u8>,
    ) -> Result<UploadedPlugin, StorageError>;

    /// The bytes of the component with this hash, if one was uploaded.
    async fn upload_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Every upload's record, by hash.
    async fn uploads(&self) -> Result<Vec<UploadedPlugin>, StorageError>;
}

/// Connected Instagram accounts and their sealed tokens.
#[async_trait]
pub trait Connections: Send + Sync {
    /// Keeps `connection` and its sealed token, replacing the account's
    /// earlier ones.
    async fn put_connection(
        &self,
        connection: Connection,
        sealed_token: String,
    ) -> Result<(), StorageError>;

    /// Every connected account with its sealed token, by id.
    async fn connections(&self) -> Result<Vec<(Connection, String)>, StorageError>;

    /// Forgets a connected account; whether there was one.
    async fn remove_connection(&self, ig_user_id: &str) -> Result<bool, StorageError>;
}

/// Analytics facts, written with the turns that make them.
#[async_trait]
pub trait Analytics: Send + Sync {
    /// Calls `each` with every fact from `from_ms` to before `to_ms`, in
    /// time order, a page at a time.
    async fn each_fact(
        &self,
        from_ms: u64,
        to_ms: u64,
        each: &mut EachFact<'_>,
    ) -> Result<(), StorageError>;

    /// Removes every fact older than `before_ms`; how many turns' facts.
    async fn prune_facts(&self, before_ms: u64) -> Result<usize, StorageError>;
}
