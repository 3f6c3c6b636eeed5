//! The engine: runs each conversation through its connector's flow.
//!
//! A conversation is a state machine kept by storage ([`crate::model`]), moved by
//! events: a customer message, a timer, a chatbot's answer. Each event is a
//! *turn*: the engine loads the conversation, routes it (time conditions,
//! decisions and their actions as plugin calls, automessages, chatbots,
//! queues, terminates), and writes everything the turn changed (state,
//! saved data, tickets, outgoing messages, timers) in one transaction.
//! Turns of one conversation never overlap; different conversations run in
//! parallel.

pub mod agents;
pub mod chatbot;
pub mod clock;
mod decision;
pub mod feed;
mod handover;
pub mod language;
pub mod matcher;
mod queue_clocks;
mod translation;
pub mod versions;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::flow::CompiledFlow;
use crate::flow::model::Destination;
use crate::plugin::{
    ActionContext, Contact, Conversation, InboundMessage, OutgoingMessage, PluginRuntime,
    QuickReply, TemplateSandbox,
};
use crate::registry::PluginRegistry;
use crate::storage::{Placement, PlacementChange, SavedData, Storage, StorageError, TurnCommit};
use crate::templates;
use clock::Clock;

/// The most of a customer's text a turn takes in (Instagram's own limit is
/// 1,000 characters; other channels allow more).
pub const MAX_INBOUND_TEXT_BYTES: usize = 8 * 1024;
/// The longest text one outgoing message may carry: four Instagram sends.
pub const MAX_OUTBOUND_TEXT_BYTES: usize = 4 * 1000;
/// Attachments one message may carry, in or out.
pub const MAX_ATTACHMENTS: usize = 10;

/// Cuts `text` to at most `max` bytes at a character boundary, marking the
/// cut with an ellipsis; true if it was cut.
fn cut_at_char(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let ellipsis = '…';
    let mut end = max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(ellipsis);
    true
}
use crate::model::{
    ConversationState, Ending, OutboxMessage, Position, Timer, TimerKind, TimerRef,
    conversation_key,
};

/// Settings of the engine beyond the flow.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Public base URL of this server, for chatbots' `response_url`.
    pub callback_base_url: String,
    /// Routing steps one event may take before the engine stops it (a
    /// guard against loops through conditional targets).
    pub max_hops: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            callback_base_url: "http://127.0.0.1:8080".into(),
            max_hops: 50,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no account named `{0}` has a connector in this flow")]
    NoConnector(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What one turn did.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TurnReport {
    pub conversation_id: String,
    /// Messages the turn put in the outbox, in order.
    pub messages: Vec<OutboxMessage>,
    pub position: Position,
    pub ending: Option<Ending>,
    /// Errors and notes of the turn (a failed action, an unmatched answer).
    pub notes: Vec<String>,
}

/// The work of one event, gathered before it is committed.
struct Turn {
    state: ConversationState,
    /// Saved data with the turn's own writes.
    data: BTreeMap<String, Value>,
    commit: TurnCommit,
    now_ms: u64,
    hops: u32,
    notes: Vec<String>,
    /// The flow version this turn runs on (with its `vars`).
    flow: Arc<versions::LiveFlow>,
    /// `instagram` or `connexease`.
    channel: &'static str,
    /// The conversation's position when the turn began.
    began_at: Position,
    /// Whether the event was a customer's message.
    inbound: bool,
    /// Whether an agent replied in this turn.
    agent_replied: bool,
    /// Callback hashes this turn gave bots, valid until it ends.
    handed_out: Vec<chatbot::HandedOutGuard>,
    /// When the turn began (for its latency).
    started: std::time::Instant,
}

impl Turn {
    fn context(&self) -> ActionContext {
        ActionContext {
            conversation: Conversation {
                id: self.state.id(),
                channel: self.channel.into(),
                account_id: self.state.account.clone(),
                started_at_ms: self.state.started_at_ms,
            },
            contact: self.state.contact.clone(),
            last_message: self.state.last_message.clone(),
            data: self.data.clone(),
            language: self.state.language.clone(),
            results: {
                let mut results = self.state.results.clone();
                // The flow's `vars`, also under the name `config`.
                results.insert("vars".into(), self.flow.vars.clone());
                results.insert("config".into(), self.flow.vars.clone());
                results
            },
        }
    }

    fn template_context(&self) -> Value {
        self.context().template_context()
    }

    /// A customer's text longer than [`MAX_INBOUND_TEXT_BYTES`] is cut, so
    /// it cannot make every action's input too large; the flow goes on.
    fn cut_inbound(&mut self, message: &mut InboundMessage) {
        let Some(text) = &mut message.text else {
            return;
        };
        let before = text.len();
        if cut_at_char(text, MAX_INBOUND_TEXT_BYTES) {
            self.error(format!(
                "the customer's message of {before} bytes was cut to {MAX_INBOUND_TEXT_BYTES} bytes"
            ));
        }
        message.attachments.truncate(MAX_ATTACHMENTS);
    }

    /// Queues a message for the customer. A text longer than
    /// [`MAX_OUTBOUND_TEXT_BYTES`] is cut (and the turn says so), so one
    /// message is never more than a few Send API calls.
    fn send(&mut self, mut message: OutgoingMessage) {
        if let Some(text) = &mut message.text {
            let before = text.len();
            if cut_at_char(text, MAX_OUTBOUND_TEXT_BYTES) {
                self.error(format!(
                    "a message of {before} bytes was cut to {MAX_OUTBOUND_TEXT_BYTES} bytes"
                ));
            }
        }
        if message.attachments.len() > MAX_ATTACHMENTS {
            self.error(format!(
                "a message with {} attachments keeps the first {MAX_ATTACHMENTS}",
                message.attachments.len()
            ));
            message.attachments.truncate(MAX_ATTACHMENTS);
        }
        if message.id.is_empty() {
            message.id = uuid::Uuid::now_v7().to_string();
        }
        let summary = message
            .text
            .clone()
            .unwrap_or_else(|| format!("({} attachments)", message.attachments.len()));
        self.state
            .note_message(self.now_ms, "out", summary, &message.attachments);
        self.commit.outbox.push(OutboxMessage {
            id: message.id.clone(),
            conversation: self.state.key(),
            conversation_id: self.state.id(),
            account: self.state.account.clone(),
            recipient: self.state.customer.clone(),
            message,
            created_ms: self.now_ms,
            sender: "bot".into(),
            sent_parts: 0,
            window_from_ms: None,
        });
    }

    /// Renders a text in the customer's language and sends it.
    async fn send_text(
        &mut self,
        templates: &TemplateSandbox,
        text: &crate::flow::model::Text,
        quick_replies: Vec<QuickReply>,
        what: &str,
    ) {
        let source = text.for_language(&self.state.language);
        let context = self.template_context();
        match templates::render(templates, source, &context, templates::MAX_RENDERED_BYTES).await {
            Ok(rendered) => self.send(OutgoingMessage {
                text: Some(rendered),
                quick_replies,
                ..Default::default()
            }),
            Err(e) => self.error(format!("{what}: {e}")),
        }
    }

    fn error(&mut self, text: String) {
        tracing::warn!(
            conversation = %crate::plugin::capabilities::escape_controls(&self.state.id()),
            "{}",
            crate::plugin::capabilities::escape_controls(&text)
        );
        self.state.note(self.now_ms, "error", text.clone());
        self.notes.push(text);
    }

    fn route(&mut self, text: String) {
        self.state.note(self.now_ms, "route", text);
    }

    /// Records `fact` for analytics, with this turn.
    fn count(&mut self, fact: crate::analytics::Fact) {
        self.commit.facts.push(fact);
    }

    /// A durable timer for this conversation's session.
    fn schedule(&mut self, due_ms: u64, kind: TimerKind) -> TimerRef {
        let timer = Timer {
            id: uuid::Uuid::now_v7().to_string(),
            conversation: self.state.key(),
            session: self.state.session,
            due_ms,
            kind,
        };
        let reference = timer.reference();
        self.commit.timers_add.push(timer);
        reference
    }

    /// Moves to `position`, cancelling the timers of the one it leaves.
    fn set_position(&mut self, position: Position) {
        if let Position::Automessage { timers, .. } = &self.state.position {
            self.commit.timers_remove.extend(timers.iter().cloned());
        }
        self.state.position = position;
    }
}

/// The `default_queue` of the connector of `account` in `flow`.
fn default_queue_of(flow: &CompiledFlow, account: &str) -> Option<String> {
    let connector = flow.connector_of_account.get(account)?;
    flow.flow.connectors[connector].default_queue.clone()
}

/// Where routing goes next.
enum Next {
    /// Follow a destination; the string is the decision tree it is inside
    /// (for `decision:` destinations).
    Go(Destination, String),
    /// Wait for the customer, a timer or an agent.
    Stay,
}

pub struct Engine {
    /// Production and the older versions sessions still run on.
    flows: versions::Flows,
    runtime: Arc<PluginRuntime>,
    registry: Arc<PluginRegistry>,
    /// Uploaded plugins, for versions that pin some (none in a bare engine).
    uploads: Option<Arc<crate::publishing::uploads::Uploads>>,
    storage: Storage,
    clock: Arc<dyn Clock>,
    settings: EngineSettings,
    /// One lock per conversation with a turn under way.
    lanes: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What agents are told about the conversations they see.
    feed: Arc<feed::Feed>,
    /// Recent waits per queue, for the estimate told to customers.
    waits: queue_clocks::WaitTimes,
    /// Callback hashes of chatbot calls whose turns are under way.
    handed_out: chatbot::HandedOut,
}

impl Engine {
    pub fn new(
        flow: Arc<CompiledFlow>,
        runtime: Arc<PluginRuntime>,
        registry: Arc<PluginRegistry>,
        storage: Storage,
        clock: Arc<dyn Clock>,
        settings: EngineSettings,
    ) -> Self {
        let feed = Arc::new(feed::Feed::for_store(&storage));
        Engine {
            flows: versions::Flows::new(versions::LiveFlow::new(
                0,
                flow,
                crate::registry::PluginSet::base(registry.clone()),
            )),
            runtime,
            registry,
            uploads: None,
            storage,
            clock,
            settings,
            lanes: Default::default(),
            feed,
            waits: Default::default(),
            handed_out: Default::default(),
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn feed(&self) -> &Arc<feed::Feed> {
        &self.feed
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The channel an account is on, for the plugins' context.
    fn channel_of(flow: &CompiledFlow, account: &str) -> &'static str {
        match flow.flow.accounts.get(account) {
            Some(crate::flow::model::Account::Connexease { .. }) => "connexease",
            _ => "instagram",
        }
    }

    /// Runs `f` with the conversation's lane held, so turns of one
    /// conversation are strictly one after the other.
    async fn in_lane<T>(&self, key: &str, f: impl std::future::Future<Output = T>) -> T {
        let lane = self
            .lanes
            .lock()
            .expect("lanes lock")
            .entry(key.to_string())
            .or_default()
            .clone();
        // `account:customer` (the key's separator is a NUL).
        let readable_key = key.replace('\0', ":");
        let customer = crate::plugin::capabilities::escape_controls(&readable_key);
        let span = tracing::info_span!(
            "turn",
            conversation = %customer,
            flow_version = tracing::field::Empty,
        );
        let result = {
            let _turn = lane.lock().await;
            tracing::Instrument::instrument(f, span).await
        };
        let mut lanes = self.lanes.lock().expect("lanes lock");
        if Arc::strong_count(&lane) == 2 {
            lanes.remove(key);
        }
        result
    }

    /// A customer's message to `account` (the flow's account key).
    pub async fn handle_message(
        &self,
        account: &str,
        contact: Contact,
        message: InboundMessage,
    ) -> Result<TurnReport, EngineError> {
        let key = conversation_key(account, &contact.id);
        self.in_lane(
            &key,
            self.message_turn(account, &key, contact, message, None),
        )
        .await
    }

    /// Like [`Engine::handle_message`] for an event from the inbox: the
    /// turn also removes the inbox entry `receipt`, in the same transaction.
    pub async fn handle_inbound(
        &self,
        account: &str,
        contact: Contact,
        message: InboundMessage,
        receipt: u64,
    ) -> Result<TurnReport, EngineError> {
        let key = conversation_key(account, &contact.id);
        let turn = self.message_turn(account, &key, contact, message, Some(receipt));
        self.in_lane(&key, turn).await
    }

    async fn message_turn(
        &self,
        account: &str,
        key: &str,
        contact: Contact,
        mut message: InboundMessage,
        receipt: Option<u64>,
    ) -> Result<TurnReport, EngineError> {
        let now = self.clock.now_ms();
        let (state, data) = self
            .session_for(account, key, &contact, now)
            .await?
            .ok_or_else(|| EngineError::NoConnector(account.to_string()))?;
        let commit = TurnCommit {
            inbox_remove: receipt.into_iter().collect(),
            ..TurnCommit::default()
        };
        let mut turn = self.begin_with(state, data, commit, now).await?;
        let flow = turn.flow.compiled.clone();
        let Some(connector_key) = flow.connector_of_account.get(account) else {
            return Err(EngineError::NoConnector(account.to_string()));
        };
        let connector = &flow.flow.connectors[connector_key];
        turn.inbound = true;
        if contact.name.is_some() {
            turn.state.contact = contact;
        }
        turn.cut_inbound(&mut message);

        if !message.attachments.is_empty()
            && connector.attachments == crate::flow::model::AttachmentPolicy::None
        {
            turn.error(format!(
                "connector `{connector_key}` does not accept attachments; {} dropped",
                message.attachments.len()
            ));
            message.attachments.clear();
        }
        let text = message.text.clone().unwrap_or_default();
        let summary = if text.is_empty() {
            format!("({} attachments)", message.attachments.len())
        } else {
            text.clone()
        };
        turn.state
            .note_message(now, "in", summary, &message.attachments);
        // The 24-hour window runs from the customer's message as the channel
        // stamped it (a late delivery does not reopen it).
        let written_at = if message.timestamp_ms > 0 {
            message.timestamp_ms
        } else {
            now
        };
        turn.state.last_inbound_ms = Some(turn.state.last_inbound_ms.unwrap_or(0).max(written_at));
        turn.state.last_message = Some(message.clone());
        turn.state.customer_ms = Some(now);
        self.update_language(&mut turn, &text);

        let next = match turn.state.position.clone() {
            // Someone outside flowhost answers: keep the message, say nothing.
            _ if turn.state.held_by.is_some() => Next::Stay,
            Position::Start => {
                turn.route(format!("connector `{connector_key}`"));
                Next::Go(connector.next.clone(), String::new())
            }
            Position::Waiting { tree, decision } => {
                self.answer(&mut turn, &tree, &decision, &message).await
            }
            Position::Chatbot { name, hash } => {
                let inbound = chatbot::inbound_of(&message);
                self.talk_to_chatbot(&mut turn, &name, &hash, inbound).await
            }
            Position::Automessage { .. } => Next::Stay,
            // Kept for the agent, who sees what came since they last read.
            Position::Queued { .. } | Position::WithAgent { .. } => {
                turn.state.unread = turn.state.unread.saturating_add(1);
                Next::Stay
            }
            Position::Ended => unreachable!("an ended conversation starts a new session"),
        };
        if matches!(turn.state.position, Position::WithAgent { .. }) {
            self.translate_inbound(&mut turn, &text).await;
        }
        self.follow(&mut turn, next).await;
        self.commit(turn).await
    }

    /// The customer's conversation as a message finds it: the session under
    /// way, with its saved data (read in the same request), or a new one
    /// after an ending or a session timeout (the timeout of the session's
    /// own flow version), whose data is left to [`Engine::begin`]. `None`:
    /// the account has no connector.
    async fn session_for(
        &self,
        account: &str,
        key: &str,
        contact: &Contact,
        now: u64,
    ) -> Result<Option<(ConversationState, Option<SavedData>)>, EngineError> {
        let previous = self.storage.conversation_with_data(key).await?;
        let flow = match &previous {
            Some((previous, _)) => self.flow_for(previous).await,
            None => self.flows.production(),
        };
        let Some(connector) = flow.compiled.connector_of_account.get(account) else {
            return Ok(None);
        };
        let timeout_s = flow.compiled.flow.connectors[connector].session_timeout_seconds;
        let timed_out = |s: &ConversationState| {
            now.saturating_sub(s.last_inbound_ms.unwrap_or(s.started_at_ms))
                > timeout_s.saturating_mul(1000)
        };
        Ok(Some(match previous {
            Some((previous, data))
                if previous.position != Position::Ended && !timed_out(&previous) =>
            {
                (previous, Some(data))
            }
            Some((previous, _)) if previous.position != Position::Ended => {
                let mut next = previous.next_session(contact.clone(), now);
                next.note(
                    now,
                    "note",
                    format!(
                        "session {} timed out after {timeout_s} s without a message",
                        previous.session
                    ),
                );
                (next, None)
            }
            Some((previous, _)) => (previous.next_session(contact.clone(), now), None),
            None => {
                let language = &flow.compiled.flow.default_language;
                let state = ConversationState::new(account, contact.clone(), 1, language, now);
                (state, None)
            }
        }))
    }

    /// The conversation's connector's `default_queue`, when the flow cannot
    /// go on; without one it stays where it is.
    fn to_default_queue(&self, turn: &mut Turn) -> Next {
        match default_queue_of(&turn.flow.compiled, &turn.state.account) {
            Some(queue) => {
                turn.route(format!("to the connector's default queue `{queue}`"));
                Next::Go(Destination::Queue(queue), String::new())
            }
            None => Next::Stay,
        }
    }

    pub(crate) fn default_queue_of(&self, account: &str) -> Option<String> {
        default_queue_of(&self.flow(), account)
    }

    /// A turn on `state`: its saved data loaded, `commit` to fill.
    async fn begin(
        &self,
        state: ConversationState,
        commit: TurnCommit,
        now_ms: u64,
    ) -> Result<Turn, EngineError> {
        self.begin_with(state, None, commit, now_ms).await
    }

    /// [`Engine::begin`] with the saved data, where it was read with the
    /// state (`None`: read it now).
    async fn begin_with(
        &self,
        mut state: ConversationState,
        data: Option<SavedData>,
        mut commit: TurnCommit,
        now_ms: u64,
    ) -> Result<Turn, EngineError> {
        let data = match data {
            Some(data) => data,
            None => self.storage.load_data(&state.id()).await?,
        };
        commit.conversation_id = state.id();
        let flow = self.flow_for(&state).await;
        state.flow_version = flow.version;
        tracing::Span::current().record("flow_version", flow.version);
        Ok(Turn {
            commit,
            channel: Self::channel_of(&flow.compiled, &state.account),
            flow,
            began_at: state.position.clone(),
            state,
            data,
            now_ms,
            hops: 0,
            notes: Vec::new(),
            inbound: false,
            agent_replied: false,
            handed_out: Vec::new(),
            started: std::time::Instant::now(),
        })
    }

    /// The language: saved data's `language` wins; else detection from
    /// the text, among the flow's languages; else, for a session's first
    /// message, a greeting's language.
    fn update_language(&self, turn: &mut Turn, text: &str) {
        if let Some(pinned) = turn.data.get("language").and_then(Value::as_str) {
            turn.state.language = pinned.to_string();
        } else if let Some(detected) = language::detect(text, &turn.flow.compiled.flow.languages) {
            turn.state.language = detected;
        } else if turn.began_at == Position::Start
            && let Some(greeted) = language::greeting(text, &turn.flow.compiled.flow.languages)
        {
            // Too short to detect, but a greeting: the first message says
            // enough to answer in the customer's language from the start.
            turn.state.language = greeted;
        }
    }

    /// Fires every timer that is due, one after another; returns what each
    /// turn did. (The server's intake runs timers in their conversations'
    /// lanes instead; this is for `chat` and tests.)
    pub async fn fire_due_timers(&self) -> Result<Vec<TurnReport>, EngineError> {
        let mut reports = Vec::new();
        for timer in self.storage.due_timers(self.clock.now_ms(), 256).await? {
            if let Some(report) = self.handle_timer(timer).await? {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    /// A due timer: its turn, or `None` when it no longer applies (it is
    /// then removed).
    pub async fn handle_timer(&self, timer: Timer) -> Result<Option<TurnReport>, EngineError> {
        let conversation = timer.conversation.clone();
        self.in_lane(&conversation, self.timer_turn(timer)).await
    }

    async fn timer_turn(&self, timer: Timer) -> Result<Option<TurnReport>, EngineError> {
        let key = timer.reference();
        let stale = TurnCommit {
            timers_remove: vec![key.clone()],
            ..TurnCommit::default()
        };
        let now = self.clock.now_ms();
        let Some(state) = self.storage.conversation(&timer.conversation).await? else {
            self.storage.commit_turn(stale, now).await?;
            return Ok(None);
        };
        if state.session != timer.session || state.held_by.is_some() {
            self.storage.commit_turn(stale, now).await?;
            return Ok(None);
        }
        let commit = TurnCommit {
            timers_remove: vec![key.clone()],
            ..TurnCommit::default()
        };
        let mut turn = self.begin(state, commit, now).await?;
        let next = match timer.kind {
            TimerKind::Queue { check } => self.queue_timer(&mut turn, check).await,
            kind => self.automessage_timer(&mut turn, &key, kind).await,
        };
        match next {
            Some(next) => {
                self.follow(&mut turn, next).await;
                self.commit(turn).await.map(Some)
            }
            None => {
                self.storage.commit_turn(stale, now).await?;
                Ok(None)
            }
        }
    }

    /// An automessage's timer: the next message, or leaving; `None` if the
    /// conversation has left that automessage.
    async fn automessage_timer(
        &self,
        turn: &mut Turn,
        key: &TimerRef,
        kind: TimerKind,
    ) -> Option<Next> {
        let current = match &mut turn.state.position {
            Position::Automessage { name, timers, .. } if timers.contains(key) => {
                timers.retain(|k| k != key);
                name.clone()
            }
            _ => return None,
        };
        let flow = turn.flow.compiled.clone();
        let automessage = &flow.flow.automessages[&current];
        Some(match kind {
            TimerKind::AutomessageSend { index, .. } => {
                if let Some(message) = automessage.messages.get(index) {
                    turn.send_text(
                        self.runtime.templates(),
                        &message.text,
                        Vec::new(),
                        &format!("automessages.{current}.messages[{index}]"),
                    )
                    .await;
                }
                Next::Stay
            }
            TimerKind::AutomessageNext { .. } => Next::Go(automessage.next.clone(), String::new()),
            TimerKind::Queue { .. } => Next::Stay,
        })
    }

    /// Follows destinations until the conversation waits.
    async fn follow(&self, turn: &mut Turn, mut next: Next) {
        while let Next::Go(destination, tree) = next {
            turn.hops += 1;
            if turn.hops > self.settings.max_hops {
                turn.error(format!("stopped after {} routing steps in one event (a loop?); the conversation stays where it was", self.settings.max_hops));
                return;
            }
            next = self.enter(turn, destination, &tree).await;
        }
    }

    async fn enter(&self, turn: &mut Turn, destination: Destination, tree: &str) -> Next {
        let compiled = turn.flow.compiled.clone();
        let flow = &compiled.flow;
        turn.route(destination.to_string());
        match destination {
            Destination::Decision(decision) => self.run_decision(turn, tree, &decision).await,
            Destination::DecisionTree(name) => {
                let start = flow.decision_trees[&name].start.clone();
                self.run_decision(turn, &name, &start).await
            }
            Destination::TimeCondition(name) => {
                let condition = &flow.time_conditions[&name];
                let at = jiff::Timestamp::from_millisecond(turn.now_ms as i64)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                let open = compiled.schedules[&condition.time_group].is_open(at);
                turn.route(format!(
                    "time group `{}` is {}",
                    condition.time_group,
                    if open { "open" } else { "closed" }
                ));
                Next::Go(
                    if open {
                        condition.open.clone()
                    } else {
                        condition.closed.clone()
                    },
                    String::new(),
                )
            }
            Destination::Automessage(name) => self.start_automessage(turn, &name).await,
            Destination::Chatbot(name) => self.enter_chatbot(turn, &name).await,
            Destination::Queue(name) => {
                // The message that brought the customer here is the
                // first the agent should read.
                if turn.inbound && turn.began_at.queue().is_none() {
                    turn.state.unread = turn.state.unread.saturating_add(1);
                }
                turn.set_position(Position::Queued {
                    queue: name.clone(),
                    since_ms: turn.now_ms,
                    offer: None,
                    passed: Vec::new(),
                });
                self.greet_in_queue(turn, &name).await;
                Next::Stay
            }
            Destination::Terminate(name) => {
                let terminate = &flow.terminates[&name];
                if let Some(text) = &terminate.auto_response {
                    turn.send_text(
                        self.runtime.templates(),
                        text,
                        Vec::new(),
                        &format!("terminates.{name}.auto_response"),
                    )
                    .await;
                }
                turn.state.ending = Some(Ending {
                    terminate: name.clone(),
                    cause: terminate.cause.clone(),
                    queue: terminate.queue.clone(),
                    answered: terminate.answered,
                    at_ms: turn.now_ms,
                });
                turn.set_position(Position::Ended);
                Next::Stay
            }
        }
    }

    /// Schedules an automessage's messages, each timed from now; messages
    /// due at once are sent at once.
    async fn start_automessage(&self, turn: &mut Turn, name: &str) -> Next {
        let flow = turn.flow.compiled.clone();
        let automessage = &flow.flow.automessages[name];
        let entered = turn.now_ms;
        let mut timers = Vec::new();
        let mut timer = |due_ms: u64, kind: TimerKind| timers.push(turn.schedule(due_ms, kind));
        let mut immediate = Vec::new();
        for (index, message) in automessage.messages.iter().enumerate() {
            if message.delay_seconds == 0 {
                immediate.push(index);
            } else {
                timer(
                    entered + message.delay_seconds * 1000,
                    TimerKind::AutomessageSend {
                        automessage: name.to_string(),
                        index,
                    },
                );
            }
        }
        let last = automessage
            .messages
            .iter()
            .map(|m| m.delay_seconds)
            .max()
            .unwrap_or(0)
            + automessage.then_after_seconds;
        let leaves_at_once = last == 0;
        if !leaves_at_once {
            timer(
                entered + last * 1000,
                TimerKind::AutomessageNext {
                    automessage: name.to_string(),
                },
            );
        }
        turn.set_position(Position::Automessage {
            name: name.to_string(),
            entered_ms: entered,
            timers,
        });
        for index in immediate {
            turn.send_text(
                self.runtime.templates(),
                &automessage.messages[index].text,
                Vec::new(),
                &format!("automessages.{name}.messages[{index}]"),
            )
            .await;
        }
        if leaves_at_once {
            Next::Go(automessage.next.clone(), String::new())
        } else {
            Next::Stay
        }
    }

    async fn commit(&self, mut turn: Turn) -> Result<TurnReport, EngineError> {
        self.start_queue_clocks(&mut turn);
        let change = placement_change(&turn.began_at, &turn.state, turn.now_ms);
        let connector = turn
            .flow
            .compiled
            .connector_of_account
            .get(&turn.state.account);
        let moves = crate::analytics::facts_of_move(
            &turn.began_at,
            &turn.state,
            connector.map_or("", String::as_str),
            turn.now_ms,
        );
        turn.commit.facts.extend(moves);
        let news = feed::news_of(&turn.began_at, &turn.state, turn.inbound);
        let Turn {
            state,
            mut commit,
            notes,
            started,
            handed_out,
            ..
        } = turn;
        commit.placement = change;
        let report = TurnReport {
            conversation_id: state.id(),
            messages: commit.outbox.clone(),
            position: state.position.clone(),
            ending: state.ending.clone(),
            notes,
        };
        let mut state = state;
        commit.history = std::mem::take(&mut state.history);
        commit.history_from = state.history_len;
        if !commit.history.is_empty() {
            state.history_len += 1;
        }
        for message in &mut commit.outbox {
            message.window_from_ms = state.last_inbound_ms;
        }
        commit.state = Some(state);
        self.storage
            .commit_turn(commit, self.clock.now_ms())
            .await?;
        // Only now that the state with the hashes can be read: see
        // `Engine::check_callback`.
        drop(handed_out);
        if let Some(news) = news {
            self.feed.publish(news).await;
        }
        observe_turn(&report, started);
        Ok(report)
    }
}

/// Counts and times a committed turn, and logs it in one line (no message
/// text: it is customer data).
fn observe_turn(report: &TurnReport, started: std::time::Instant) {
    use crate::telemetry::{TURN_SECONDS, TURNS, position_label};
    let position = position_label(&report.position);
    let elapsed = started.elapsed();
    metrics::counter!(TURNS, "position" => position).increment(1);
    metrics::histogram!(TURN_SECONDS).record(elapsed);
    tracing::info!(
        conversation = %crate::plugin::capabilities::escape_controls(&report.conversation_id),
        position,
        replies = report.messages.len(),
        ms = elapsed.as_secs_f64() * 1000.0,
        "turn"
    );
}

/// The index change a turn makes, if its placement changed.
fn placement_change(
    before: &Position,
    state: &ConversationState,
    now_ms: u64,
) -> Option<PlacementChange> {
    let after = &state.position;
    let closed_by = match (before, after) {
        (Position::WithAgent { agent, .. }, Position::Ended) => Some((agent.clone(), now_ms)),
        _ => None,
    };
    let last_agent = &state.last_agent;
    let (before, after) = (
        Placement::of(before, last_agent),
        Placement::of(after, last_agent),
    );
    (before != after).then_some(PlacementChange {
        before,
        after,
        closed_by,
    })
}
