//! Moving a deployment from one store to another (`flowhost storage
//! export` and `flowhost storage import`): everything that outlives a
//! restart, as JSON lines, read and written through the store traits, so
//! any store moves to any other (sled to PostgreSQL is the one that
//! matters: see the README's "Storage").
//!
//! What moves: published versions (numbers kept, the last in production),
//! the sandbox, uploaded components, connected accounts (their tokens stay
//! sealed: the new nodes need the same secrets key), agents, conversations
//! with their history and place among queues and agents, each session's
//! saved data and tickets (the sessions the conversations and analytics
//! know of), timers, messages still in the outbox, analytics facts, and
//! the dedupe keys with their times (a webhook Meta delivers again after
//! the move is still a duplicate, and the keys expire when they would
//! have).
//!
//! What does not: the inbox (an export refuses one that is not empty: the
//! server drains it before it stops), records of past sends and echoes,
//! dead letters. Stop every node before an export and start the new ones
//! after the import.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::records::{NewVersion, Placement, PlacementChange, SeenKey, TurnCommit};
use super::{StorageError, Store};
use crate::model::agent::Agent;
use crate::model::connection::Connection;
use crate::model::fact::Record;
use crate::model::version::{FlowVersion, Sandbox, UploadedPlugin};
use crate::model::{
    ConversationState, Effects, HistoryEntry, OutboxMessage, Ticket, TicketDraft, Timer,
};

/// The archive's format; an import refuses another.
pub const FORMAT: u32 = 1;

/// Records read at a time.
const PAGE: usize = 500;

/// One line of an archive (read and written one at a time, so the size
/// of the largest variant costs nothing).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    Header {
        format: u32,
    },
    Version {
        version: FlowVersion,
    },
    Sandbox {
        sandbox: Sandbox,
    },
    Upload {
        record: UploadedPlugin,
        /// The component, base64.
        bytes: String,
    },
    Connection {
        connection: Connection,
        sealed_token: String,
    },
    Agent {
        agent: Agent,
    },
    Conversation {
        state: ConversationState,
        history: Vec<HistoryEntry>,
    },
    Session {
        conversation_id: String,
        data: BTreeMap<String, Value>,
        tickets: Vec<Ticket>,
    },
    Timer {
        timer: Timer,
    },
    Outbox {
        message: OutboxMessage,
    },
    Facts {
        at_ms: u64,
        conversation: String,
        facts: Vec<crate::model::fact::Fact>,
    },
    /// A dedupe key and when its event was accepted: a webhook Meta
    /// delivers again after the move is still known.
    Seen {
        key: String,
        at_ms: u64,
    },
    /// The last line: how many came before it, so a cut archive is known.
    End {
        items: u64,
    },
}

impl Item {
    fn name(&self) -> &'static str {
        match self {
            Item::Header { .. } => "header",
            Item::Version { .. } => "versions",
            Item::Sandbox { .. } => "sandbox",
            Item::Upload { .. } => "uploads",
            Item::Connection { .. } => "connections",
            Item::Agent { .. } => "agents",
            Item::Conversation { .. } => "conversations",
            Item::Session { .. } => "sessions",
            Item::Timer { .. } => "timers",
            Item::Outbox { .. } => "outbox messages",
            Item::Facts { .. } => "turns' facts",
            Item::Seen { .. } => "dedupe keys",
            Item::End { .. } => "end",
        }
    }
}

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("writing the archive: {0}")]
    Write(#[from] std::io::Error),
    #[error("line {line} of the archive: {reason}")]
    Line { line: u64, reason: String },
    #[error("{0}")]
    Refused(String),
}

/// How many items of each kind moved.
pub type Counts = BTreeMap<&'static str, u64>;

/// Writes everything `store` keeps to `out`, one item a line.
pub async fn export(
    store: &dyn Store,
    out: &mut (dyn Write + Send),
) -> Result<Counts, ArchiveError> {
    if !store.inbox(None, 1).await?.is_empty() {
        return Err(ArchiveError::Refused(
            "the inbox still holds events: start the server on this store until it has \
             handled them, stop it, then export"
                .into(),
        ));
    }
    let mut writer = Writer {
        out,
        counts: Counts::new(),
    };
    writer.put(&Item::Header { format: FORMAT })?;
    let mut versions = store.flow_versions(usize::MAX).await?;
    versions.reverse();
    for version in versions {
        writer.put(&Item::Version { version })?;
    }
    if let Some(sandbox) = store.sandbox().await? {
        writer.put(&Item::Sandbox { sandbox })?;
    }
    for record in store.uploads().await? {
        let bytes = store
            .upload_bytes(&record.sha256)
            .await?
            .unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD.encode(bytes);
        writer.put(&Item::Upload { record, bytes })?;
    }
    for (connection, sealed_token) in store.connections().await? {
        writer.put(&Item::Connection {
            connection,
            sealed_token,
        })?;
    }
    for agent in store.agents().await? {
        writer.put(&Item::Agent { agent })?;
    }
    let mut sessions = export_conversations(store, &mut writer).await?;
    let facts = export_facts(store, &mut writer).await?;
    sessions.extend(facts);
    for conversation_id in sessions {
        let data = store.load_data(&conversation_id).await?;
        let tickets = store.tickets_of(&conversation_id).await?;
        if !data.is_empty() || !tickets.is_empty() {
            writer.put(&Item::Session {
                conversation_id,
                data,
                tickets,
            })?;
        }
    }
    for timer in store.due_timers(u64::MAX, usize::MAX).await? {
        writer.put(&Item::Timer { timer })?;
    }
    for message in store.outbox(usize::MAX).await? {
        writer.put(&Item::Outbox { message })?;
    }
    export_seen(store, &mut writer).await?;
    let items = writer.counts.values().sum();
    writer.put(&Item::End { items })?;
    writer.out.flush()?;
    Ok(writer.counts)
}

/// Every conversation and its history; returns their sessions' ids.
async fn export_conversations(
    store: &dyn Store,
    writer: &mut Writer<'_>,
) -> Result<BTreeSet<String>, ArchiveError> {
    let mut sessions = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.conversations_after(after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(sessions);
        };
        after = Some(last.key());
        for state in page {
            sessions.insert(state.id());
            let history = store.history(&state.key()).await?;
            writer.put(&Item::Conversation { state, history })?;
        }
    }
}

/// Every remembered dedupe key, with its time.
async fn export_seen(store: &dyn Store, writer: &mut Writer<'_>) -> Result<(), ArchiveError> {
    let mut after: Option<String> = None;
    loop {
        let page = store.seen_after(after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.key.clone());
        for SeenKey { key, at_ms } in page {
            writer.put(&Item::Seen { key, at_ms })?;
        }
    }
}

/// Every turn's facts; returns the sessions they name.
async fn export_facts(
    store: &dyn Store,
    writer: &mut Writer<'_>,
) -> Result<BTreeSet<String>, ArchiveError> {
    let mut turns: Vec<Item> = Vec::new();
    let mut failed: Option<std::io::Error> = None;
    let mut sessions = BTreeSet::new();
    // Facts come grouped by turn: consecutive records of one time and
    // session are one turn's.
    store
        .each_fact(0, u64::MAX, &mut |record: &Record| {
            let same_turn = matches!(turns.last(),
                Some(Item::Facts { at_ms, conversation, .. })
                    if *at_ms == record.at_ms && *conversation == record.conversation);
            if !same_turn {
                if let Some(done) = turns.pop()
                    && let Err(e) = writer.put(&done)
                {
                    failed.get_or_insert(e);
                }
                sessions.insert(record.conversation.clone());
                turns.push(Item::Facts {
                    at_ms: record.at_ms,
                    conversation: record.conversation.clone(),
                    facts: Vec::new(),
                });
            }
            if let Some(Item::Facts { facts, .. }) = turns.last_mut() {
                facts.push(record.fact.clone());
            }
        })
        .await?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if let Some(done) = turns.pop() {
        writer.put(&done)?;
    }
    Ok(sessions)
}

struct Writer<'w> {
    out: &'w mut (dyn Write + Send),
    counts: Counts,
}

impl Writer<'_> {
    fn put(&mut self, item: &Item) -> Result<(), std::io::Error> {
        serde_json::to_writer(&mut *self.out, item)?;
        self.out.write_all(b"\n")?;
        if !matches!(item, Item::Header { .. } | Item::End { .. }) {
            *self.counts.entry(item.name()).or_default() += 1;
        }
        Ok(())
    }
}

/// Writes the archive `open` reads into `store`, which must be empty (no
/// version published, no agent, no conversation, no account). The archive
/// is read twice: once to check every line, so a cut or damaged archive
/// changes nothing, then to write it.
pub async fn import<R: BufRead>(
    store: &dyn Store,
    mut open: impl FnMut() -> std::io::Result<R>,
) -> Result<Counts, ArchiveError> {
    refuse_unless_empty(store).await?;
    let mut checking = Lines::new(open()?);
    while checking.next_item()?.is_some() {}
    let mut lines = Lines::new(open()?);
    let mut counts = Counts::new();
    // Dedupe keys are many and small: written a page at a time.
    let mut seen = Vec::new();
    while let Some((number, item)) = lines.next_item()? {
        let name = item.name();
        *counts.entry(name).or_default() += 1;
        if let Item::Seen { key, at_ms } = item {
            seen.push(SeenKey { key, at_ms });
            if seen.len() == PAGE {
                store.remember_seen(std::mem::take(&mut seen)).await?;
            }
            continue;
        }
        put(store, item).await.map_err(|e| match e {
            ArchiveError::Refused(reason) => ArchiveError::Line {
                line: number,
                reason,
            },
            e => e,
        })?;
    }
    if !seen.is_empty() {
        store.remember_seen(seen).await?;
    }
    Ok(counts)
}

/// An archive's items, its header, order and end checked on the way.
struct Lines<R> {
    input: R,
    line: String,
    number: u64,
    items: u64,
    ended: bool,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Self {
        Lines {
            input,
            line: String::new(),
            number: 0,
            items: 0,
            ended: false,
        }
    }

    /// The next item and its line number; `None` after the last line.
    fn next_item(&mut self) -> Result<Option<(u64, Item)>, ArchiveError> {
        loop {
            self.line.clear();
            if self.input.read_line(&mut self.line)? == 0 {
                return match self.ended {
                    true => Ok(None),
                    false => Err(ArchiveError::Refused(format!(
                        "the archive ends after line {} without its last line: it was cut short",
                        self.number
                    ))),
                };
            }
            self.number += 1;
            let line = self.number;
            let at = |reason: String| ArchiveError::Line { line, reason };
            if self.ended {
                return Err(at("a line after the archive's last".into()));
            }
            let item: Item = serde_json::from_str(&self.line).map_err(|e| at(e.to_string()))?;
            match (item, line) {
                (Item::Header { format }, 1) if format == FORMAT => {}
                (Item::Header { format }, 1) => {
                    return Err(at(format!("format {format}; this flowhost reads {FORMAT}")));
                }
                (_, 1) => return Err(at("not a flowhost archive: no header".into())),
                (Item::Header { .. }, _) => return Err(at("a second header".into())),
                (Item::End { items }, _) if items == self.items => self.ended = true,
                (Item::End { items }, _) => {
                    let read = self.items;
                    return Err(at(format!("{items} items announced, {read} read")));
                }
                (item, _) => {
                    self.items += 1;
                    return Ok(Some((line, item)));
                }
            }
        }
    }
}

async fn refuse_unless_empty(store: &dyn Store) -> Result<(), ArchiveError> {
    let occupied = store.production().await?.is_some()
        || !store.agents().await?.is_empty()
        || !store.connections().await?.is_empty()
        || !store.conversations_after(None, 1).await?.is_empty();
    if occupied {
        return Err(ArchiveError::Refused(
            "the store to import into is not empty (it has versions, agents, accounts or \
             conversations): import into a new one"
                .into(),
        ));
    }
    Ok(())
}

/// Writes one item (other than dedupe keys, which `import` writes in pages).
async fn put(store: &dyn Store, item: Item) -> Result<(), ArchiveError> {
    match item {
        Item::Version { version } => put_version(store, version).await?,
        Item::Sandbox { sandbox } => store.put_sandbox(sandbox).await?,
        Item::Upload { record, bytes } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(bytes)
                .map_err(|e| ArchiveError::Refused(format!("the component's bytes: {e}")))?;
            store.put_upload(record, bytes).await?;
        }
        Item::Connection {
            connection,
            sealed_token,
        } => store.put_connection(connection, sealed_token).await?,
        Item::Agent { agent } => store.put_agent(agent).await?,
        Item::Conversation { state, history } => put_conversation(store, state, history).await?,
        Item::Session {
            conversation_id,
            data,
            tickets,
        } => put_session(store, conversation_id, data, tickets).await?,
        Item::Timer { timer } => {
            let turn = TurnCommit {
                timers_add: vec![timer],
                ..TurnCommit::default()
            };
            store.commit_turn(turn, 0).await?;
        }
        Item::Outbox { message } => {
            let turn = TurnCommit {
                conversation_id: message.conversation.clone(),
                outbox: vec![message],
                ..TurnCommit::default()
            };
            store.commit_turn(turn, 0).await?;
        }
        Item::Facts {
            at_ms,
            conversation,
            facts,
        } => {
            let turn = TurnCommit {
                conversation_id: conversation,
                facts,
                ..TurnCommit::default()
            };
            store.commit_turn(turn, at_ms).await?;
        }
        // Dedupe keys are written a page at a time by `import`.
        Item::Seen { .. } | Item::Header { .. } | Item::End { .. } => {}
    }
    Ok(())
}

/// Publishes `version` after the ones before it: it gets its number back.
async fn put_version(store: &dyn Store, version: FlowVersion) -> Result<(), ArchiveError> {
    let new = NewVersion {
        document: version.document,
        applied_by: version.applied_by,
        applied_at_ms: version.applied_at_ms,
        comment: version.comment,
        origin: version.origin,
        expected_production: version.number.saturating_sub(1),
        rebase_sandbox: false,
        plugins: version.plugins,
    };
    match store.publish(new).await? {
        Ok(published) if published.number == version.number => Ok(()),
        Ok(published) => Err(ArchiveError::Refused(format!(
            "version {} was published as {}: the archive's versions must run 1, 2, 3, …",
            version.number, published.number
        ))),
        Err(moved) => Err(ArchiveError::Refused(format!(
            "version {} follows {}, but the store has {}",
            version.number, moved.expected, moved.current
        ))),
    }
}

/// The conversation, its history, and its place among queues and agents.
async fn put_conversation(
    store: &dyn Store,
    state: ConversationState,
    history: Vec<HistoryEntry>,
) -> Result<(), ArchiveError> {
    let placement = PlacementChange {
        before: Placement::default(),
        after: Placement::of(&state.position, &state.last_agent),
        closed_by: None,
    };
    let turn = TurnCommit {
        conversation_id: state.id(),
        // The lines come back as one turn's, the last before the next.
        history_from: state.history_len.saturating_sub(1),
        history,
        placement: Some(placement),
        state: Some(state),
        ..TurnCommit::default()
    };
    store.commit_turn(turn, 0).await?;
    Ok(())
}

/// A session's saved data, then its tickets, each at the time it was made.
async fn put_session(
    store: &dyn Store,
    conversation_id: String,
    data: BTreeMap<String, Value>,
    tickets: Vec<Ticket>,
) -> Result<(), ArchiveError> {
    let turn = TurnCommit {
        conversation_id: conversation_id.clone(),
        effects: Effects {
            data_changes: data.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            ..Effects::default()
        },
        ..TurnCommit::default()
    };
    store.commit_turn(turn, 0).await?;
    for ticket in tickets {
        let draft = TicketDraft {
            id: ticket.id,
            title: ticket.title,
            category: ticket.category,
            comment: ticket.comment,
        };
        let turn = TurnCommit {
            conversation_id: conversation_id.clone(),
            effects: Effects {
                tickets: vec![draft],
                ..Effects::default()
            },
            ..TurnCommit::default()
        };
        store.commit_turn(turn, ticket.created_at_ms).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::model::agent::{AgentStatus, Membership, Role};
    use crate::model::connection::ConnectionStatus;
    use crate::model::fact::Fact;
    use crate::model::version::VersionOrigin;
    use crate::model::{Contact, OutgoingMessage, Position, TimerKind};
    use crate::storage::{PostgresBackend, Storage};

    fn version(number: u64) -> NewVersion {
        NewVersion {
            document: json!({"queues": {}, "n": number}),
            applied_by: "admin".into(),
            applied_at_ms: number,
            comment: format!("version {number}"),
            origin: VersionOrigin::Sandbox,
            expected_production: number - 1,
            rebase_sandbox: false,
            plugins: BTreeMap::from([("echo".into(), "ab".repeat(32))]),
        }
    }

    /// Conversation `n`, of `customer` (whose id may hold any byte) in
    /// their second session, with history, saved data and a ticket in each
    /// session, a timer, a message waiting to be sent and facts.
    async fn conversation(store: &Storage, n: u32, customer: &str, position: Position) {
        let contact = Contact {
            id: customer.into(),
            ..Contact::default()
        };
        let mut state = ConversationState::new("acct", contact, 2, "en", 1_000);
        state.position = position;
        state.last_agent = Some("ana".into());
        state.history_len = 3;
        let earlier = format!("acct:{customer}:1");
        for (session, at) in [(earlier, 500), (state.id(), 1_500)] {
            let turn = TurnCommit {
                conversation_id: session.clone(),
                effects: Effects {
                    data_changes: BTreeMap::from([("order".into(), Some(json!(at)))]),
                    tickets: vec![TicketDraft {
                        id: format!("ticket-{n}-{at}"),
                        title: "late".into(),
                        category: "order".into(),
                        comment: "where is it".into(),
                    }],
                    ..Effects::default()
                },
                facts: vec![Fact::Started {
                    connector: "dm".into(),
                }],
                ..TurnCommit::default()
            };
            store.commit_turn(turn, at).await.unwrap();
        }
        let message = OutboxMessage {
            id: format!("message-{n}"),
            conversation: state.key(),
            conversation_id: state.id(),
            account: "acct".into(),
            recipient: customer.into(),
            message: OutgoingMessage {
                id: format!("message-{n}"),
                text: Some("hello".into()),
                ..OutgoingMessage::default()
            },
            created_ms: 1_600,
            sender: "bot".into(),
            sent_parts: 0,
            window_from_ms: Some(1_000),
        };
        let timer = Timer {
            id: format!("timer-{n}"),
            conversation: state.key(),
            session: 2,
            due_ms: 9_000,
            kind: TimerKind::AutomessageNext {
                automessage: "later".into(),
            },
        };
        let line = HistoryEntry {
            at_ms: 1_500,
            kind: "in".into(),
            text: "hi".into(),
            attachments: Vec::new(),
            language: None,
        };
        let turn = TurnCommit {
            conversation_id: state.id(),
            placement: Some(PlacementChange {
                after: Placement::of(&state.position, &state.last_agent),
                ..PlacementChange::default()
            }),
            state: Some(state),
            history: vec![line.clone(), line],
            history_from: 2,
            outbox: vec![message],
            timers_add: vec![timer],
            ..TurnCommit::default()
        };
        store.commit_turn(turn, 1_600).await.unwrap();
    }

    /// One of everything an archive carries.
    async fn fill(store: &Storage) {
        store.publish(version(1)).await.unwrap().unwrap();
        store.publish(version(2)).await.unwrap().unwrap();
        let sandbox = Sandbox {
            document: json!({"draft": true}),
            based_on: 2,
            updated_at_ms: 3,
            test_contacts: vec!["tester".into()],
            plugins: BTreeMap::new(),
        };
        store.put_sandbox(sandbox).await.unwrap();
        let upload = UploadedPlugin {
            sha256: "ab".repeat(32),
            name: "echo".into(),
            kind: "action".into(),
            version: "1.0.0".into(),
            contract: "0.3.0".into(),
            size_bytes: 5,
            uploaded_at_ms: 4,
        };
        store
            .put_upload(upload, b"\0asm\x01".to_vec())
            .await
            .unwrap();
        let connection = Connection {
            ig_user_id: "17841400000000001".into(),
            username: "shop".into(),
            token_issued_at_ms: 5,
            token_expires_at_ms: 6,
            permissions: vec!["instagram_business_manage_messages".into()],
            subscribed_fields: vec!["messages".into()],
            connected_at_ms: 5,
            connected_by: "admin".into(),
            status: ConnectionStatus::Connected,
        };
        store
            .put_connection(connection, "sealed".into())
            .await
            .unwrap();
        let agent = Agent {
            id: "ana".into(),
            name: "Ana".into(),
            role: Role::Supervisor,
            language: "en".into(),
            queues: vec![Membership {
                queue: "sales".into(),
                priority: 1,
            }],
            status: AgentStatus::Online,
            status_since_ms: 7,
            token_sha256: "cd".repeat(32),
            last_activity_ms: 8,
            last_offer_ms: 9,
            missed_offers: 1,
        };
        store.put_agent(agent).await.unwrap();
        let queued = Position::Queued {
            queue: "sales".into(),
            since_ms: 1_400,
            offer: None,
            passed: vec!["bo".into()],
        };
        conversation(store, 1, "waits", queued).await;
        let answered = Position::WithAgent {
            queue: "sales".into(),
            agent: "ana".into(),
            since_ms: 1_450,
        };
        conversation(store, 2, "talks\0to-ana", answered).await;
        // More dedupe keys than a page, their events handled.
        let events = (0..=PAGE).map(|n| delivered(&format!("ig:m\0{n:04}")));
        let accepted = store.accept_inbound(events.collect(), 1_500).await;
        assert_eq!(accepted.unwrap(), PAGE + 1);
        for (seq, _) in store.inbox(None, usize::MAX).await.unwrap() {
            store.remove_from_inbox(seq).await.unwrap();
        }
    }

    fn delivered(key: &str) -> crate::storage::InboundEvent {
        crate::storage::InboundEvent {
            dedupe_key: key.into(),
            conversation: "acct\0waits".into(),
            record: key.as_bytes().to_vec(),
        }
    }

    fn sorted_lines(archive: &[u8]) -> Vec<String> {
        let mut lines: Vec<String> = String::from_utf8_lossy(archive)
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    }

    /// Issue 14, item 7: a sled store moves to PostgreSQL whole (exported
    /// again from there, it gives the same archive, and the placement index
    /// is rebuilt); a cut archive changes nothing; a store that is not
    /// empty takes none.
    #[tokio::test]
    async fn a_sled_store_moves_to_postgres_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sled = Storage::open(dir.path()).unwrap();
        fill(&sled).await;
        let mut archive = Vec::new();
        let counts = export(&*sled, &mut archive).await.unwrap();
        let expected = [
            ("agents", 1),
            ("connections", 1),
            ("conversations", 2),
            ("dedupe keys", PAGE as u64 + 1),
            ("outbox messages", 2),
            ("sandbox", 1),
            ("sessions", 4),
            ("timers", 2),
            ("turns' facts", 4),
            ("uploads", 1),
            ("versions", 2),
        ];
        assert_eq!(counts, Counts::from(expected));

        let settings = crate::storage::postgres::tests::fresh_database().await;
        let postgres = PostgresBackend::connect(&settings).await.unwrap();
        let postgres = Storage::over(Arc::new(postgres));
        let last_line = archive[..archive.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap();
        for (cut, why) in [
            (&archive[..last_line + 1], "cut short"),
            (&archive[..archive.len() - 5], "EOF while parsing"),
        ] {
            let refused = import(&*postgres, || Ok(cut)).await.unwrap_err();
            assert!(refused.to_string().contains(why), "{refused}");
        }
        assert!(postgres.flow_versions(10).await.unwrap().is_empty());

        let imported = import(&*postgres, || Ok(archive.as_slice())).await;
        assert_eq!(imported.unwrap(), counts);
        let mut again = Vec::new();
        export(&*postgres, &mut again).await.unwrap();
        assert_eq!(sorted_lines(&again), sorted_lines(&archive));
        assert_eq!(
            postgres.waiting().await.unwrap(),
            sled.waiting().await.unwrap()
        );
        let answering = postgres.assigned_to("ana").await.unwrap();
        assert_eq!(answering, ["acct\0talks\0to-ana"]);
        assert_eq!(postgres.production().await.unwrap().unwrap().number, 2);

        let refused = import(&*postgres, || Ok(archive.as_slice())).await;
        assert!(refused.unwrap_err().to_string().contains("not empty"));

        // A webhook delivered again after the move is still a duplicate.
        let again = vec![delivered(&format!("ig:m\0{:04}", 7)), delivered("ig:m-new")];
        assert_eq!(postgres.accept_inbound(again, 2_000).await.unwrap(), 1);
    }
}
