//! A conversation as the engine keeps it: one customer of one account, in
//! its current session, and where it stands in the flow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::{Attachment, Contact, InboundMessage};
use super::timer::TimerRef;

/// Where a conversation is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "at")]
pub enum Position {
    /// Nothing has happened yet in this session.
    Start,
    /// Waiting for the customer's answer at a decision.
    Waiting { tree: String, decision: String },
    /// Sending delayed messages; `timers` are the pending ones.
    Automessage {
        name: String,
        entered_ms: u64,
        timers: Vec<TimerRef>,
    },
    /// Talking to a third-party chatbot.
    Chatbot { name: String, hash: String },
    /// Waiting in a queue for a human agent.
    Queued {
        queue: String,
        since_ms: u64,
        /// The offer ringing now, if any.
        #[serde(default)]
        offer: Option<Offer>,
        /// Agents who declined it or let it lapse (offered again only
        /// when nobody else is left).
        #[serde(default)]
        passed: Vec<String>,
    },
    /// Answered by a human agent.
    WithAgent {
        queue: String,
        agent: String,
        since_ms: u64,
    },
    /// Terminated; the next message starts a new session.
    Ended,
}

/// A waiting conversation offered to agents until `until_ms`; the first of
/// them to accept takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub agents: Vec<String>,
    pub at_ms: u64,
    pub until_ms: u64,
}

impl Position {
    /// The queue a conversation waits in or is answered from.
    pub fn queue(&self) -> Option<&str> {
        match self {
            Position::Queued { queue, .. } | Position::WithAgent { queue, .. } => Some(queue),
            _ => None,
        }
    }

    /// The agent answering the conversation.
    pub fn agent(&self) -> Option<&str> {
        match self {
            Position::WithAgent { agent, .. } => Some(agent),
            _ => None,
        }
    }
}

/// How the session ended (a terminate setup), as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ending {
    pub terminate: String,
    pub cause: String,
    pub queue: Option<String>,
    pub answered: bool,
    pub at_ms: u64,
}

/// One line of a conversation's history, for agents and for debugging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at_ms: u64,
    /// `in`, `out`, `route`, `action`, `error`, `note`.
    pub kind: String,
    pub text: String,
    /// What a message carried besides its text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The language of a `translation` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// History lines one turn keeps in memory (a routing loop cannot grow it).
pub const HISTORY_LIMIT: usize = 200;
/// Turns of history kept per customer (all sessions); older ones are dropped.
pub const HISTORY_TURNS: u64 = 100;

/// A conversation: one customer of one account, in its current session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Key of the account in the flow.
    pub account: String,
    /// The customer's channel-scoped id.
    pub customer: String,
    /// Counts sessions: a new one starts after a terminate.
    pub session: u64,
    pub contact: Contact,
    pub started_at_ms: u64,
    pub position: Position,
    pub language: String,
    /// Named results of actions (a request's response, ...).
    pub results: BTreeMap<String, Value>,
    pub last_message: Option<InboundMessage>,
    /// When the customer last wrote (for the 24-hour window).
    pub last_inbound_ms: Option<u64>,
    /// Lines this turn added to the history. The history itself is stored
    /// apart, line by line (`Storage::history`), so a turn writes only its
    /// own lines rather than rewriting the whole history.
    #[serde(skip)]
    pub history: Vec<HistoryEntry>,
    /// Turns that wrote history for this customer (all sessions): the
    /// number of the next one.
    #[serde(default)]
    pub history_len: u64,
    pub ending: Option<Ending>,
    /// The agent who last answered this customer (for `sticky` queues).
    #[serde(default)]
    pub last_agent: Option<String>,
    /// Messages the customer wrote while waiting or with an agent that the
    /// agent has not read yet (reset when the agent reads or replies).
    #[serde(default)]
    pub unread: u32,
    /// When this session first reached a queue: its session timeout runs
    /// from here, and a conversation an agent gives back waits from here.
    #[serde(default)]
    pub people_since_ms: Option<u64>,
    /// When an agent last replied (engine time).
    #[serde(default)]
    pub agent_reply_ms: Option<u64>,
    /// When flowhost took in the customer's last message (engine time; the
    /// queue's timeouts count from it).
    #[serde(default)]
    pub customer_ms: Option<u64>,
    /// Someone outside flowhost answers this customer now (an aggregator's
    /// agent, another Meta app): the bot keeps quiet until they give it back.
    #[serde(default)]
    pub held_by: Option<String>,
    /// The chatbot this customer last talked to, kept after the
    /// conversation leaves it, so a late callback is told it moved on
    /// rather than that its hash is wrong.
    #[serde(default)]
    pub bot: Option<BotStint>,
    /// The flow version this session runs on (0: the flow the engine was
    /// started with, before versions were stored).
    #[serde(default)]
    pub flow_version: u64,
}

/// One visit to a chatbot node: its callback hash, fresh on every entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BotStint {
    pub chatbot: String,
    pub hash: String,
    pub session: u64,
}

impl ConversationState {
    pub fn new(account: &str, contact: Contact, session: u64, language: &str, now_ms: u64) -> Self {
        ConversationState {
            account: account.to_string(),
            customer: contact.id.clone(),
            session,
            contact,
            started_at_ms: now_ms,
            position: Position::Start,
            language: language.to_string(),
            results: BTreeMap::new(),
            last_message: None,
            last_inbound_ms: None,
            history: Vec::new(),
            history_len: 0,
            ending: None,
            last_agent: None,
            unread: 0,
            people_since_ms: None,
            agent_reply_ms: None,
            customer_ms: None,
            held_by: None,
            bot: None,
            flow_version: 0,
        }
    }

    /// The customer's next session: a fresh start in the same language,
    /// its history continuing this one's.
    pub fn next_session(&self, contact: Contact, now_ms: u64) -> Self {
        let mut next = Self::new(
            &self.account,
            contact,
            self.session + 1,
            &self.language,
            now_ms,
        );
        next.history_len = self.history_len;
        next.last_agent = self.last_agent.clone();
        next.held_by = self.held_by.clone();
        next.bot = self.bot.clone();
        next
    }

    /// The storage key of the customer's conversation (all sessions).
    pub fn key(&self) -> String {
        conversation_key(&self.account, &self.customer)
    }

    /// The id of this session's conversation.
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.account, self.customer, self.session)
    }

    /// Notes a message with what it carried.
    pub fn note_message(
        &mut self,
        at_ms: u64,
        kind: &str,
        text: String,
        attachments: &[Attachment],
    ) {
        self.note(at_ms, kind, text);
        if let Some(last) = self.history.last_mut() {
            last.attachments = attachments.to_vec();
        }
    }

    /// Notes a translation of the line before, in `language`.
    pub fn note_translation(&mut self, at_ms: u64, text: String, language: &str) {
        self.note(at_ms, "translation", text);
        if let Some(last) = self.history.last_mut() {
            last.language = Some(language.to_string());
        }
    }

    pub fn note(&mut self, at_ms: u64, kind: &str, text: impl Into<String>) {
        self.history.push(HistoryEntry {
            at_ms,
            kind: kind.into(),
            text: text.into(),
            attachments: Vec::new(),
            language: None,
        });
        if self.history.len() > HISTORY_LIMIT {
            let excess = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..excess);
        }
    }
}

/// `account \0 customer`.
pub fn conversation_key(account: &str, customer: &str) -> String {
    format!("{account}\u{0}{customer}")
}

/// Reads a conversation id (`account:customer:session`, as
/// [`ConversationState::id`] writes it) into its parts. The account key
/// may hold colons; customer ids never do.
pub fn parse_conversation_id(id: &str) -> Option<(&str, &str, u64)> {
    let mut parts = id.rsplitn(3, ':');
    let session = parts.next()?.parse().ok()?;
    let customer = parts.next().filter(|c| !c.is_empty())?;
    let account = parts.next().filter(|a| !a.is_empty())?;
    Some((account, customer, session))
}

/// A customer's thread taken by someone outside flowhost, or given back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "handover")]
pub enum Handover {
    /// An agent of the aggregator, or another Meta app, took the thread.
    Taken { by: String },
    /// They gave it back: the bot answers the next message again.
    Returned,
    /// They closed it: the next message starts a new session.
    Closed,
}
