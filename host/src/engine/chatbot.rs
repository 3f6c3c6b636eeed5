//! Third-party chatbots. A chatbot node forwards the customer's messages to
//! its adapter plugin; the bot answers at once (in the adapter's HTTP
//! exchange) or later, by posting to the conversation's callback URL. Both
//! answers are acted on the same way ([`Engine::act_on_bot`]): the messages
//! are sent, and a hand-off moves the conversation to a queue. A bot that
//! cannot be reached, is too slow, or breaks its protocol sends the
//! conversation to the chatbot's fallback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::versions::LiveFlow;
use super::{Engine, EngineError, Next, Turn, TurnReport};
use crate::flow::model::Destination;
use crate::model::{BotStint, ConversationState, Position};
use crate::plugin::{
    BotCallback, BotTurn, CallError, ChatbotInbound, ChatbotSession, CustomFieldValue,
    InboundMessage,
};
use crate::storage::TurnCommit;
use crate::templates;

/// A bot's later answer, accepted at the callback URL and kept in the inbox
/// until its conversation's turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BotAnswer {
    pub chatbot: String,
    /// The conversation's session the callback names.
    pub session: u64,
    pub hash: String,
    pub turn: BotTurn,
}

/// Whether a callback may enter its conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum CallbackVerdict {
    /// The conversation talks to this chatbot now, under this hash.
    Current,
    /// No such conversation, or a hash that is not this chatbot's latest:
    /// forged or stale.
    Refused,
    /// The hash is right, but the conversation has left the chatbot; says
    /// where it is.
    MovedOn(String),
}

/// Hashes handed to bots by turns that have not committed yet, by
/// conversation key. A bot may answer at its callback URL before the turn
/// that called it is written (Rasa's callback channel posts its messages
/// before it answers the call); such a callback is accepted into the inbox,
/// and its turn, which runs after the calling one, checks it again.
#[derive(Default)]
pub(super) struct HandedOut(Arc<Mutex<HashMap<String, BotStint>>>);

impl HandedOut {
    /// Records `stint` of conversation `key` until the guard is dropped
    /// (with the turn).
    fn hand_out(&self, key: String, stint: BotStint) -> HandedOutGuard {
        let hash = stint.hash.clone();
        self.0
            .lock()
            .expect("handed-out lock")
            .insert(key.clone(), stint);
        HandedOutGuard {
            map: self.0.clone(),
            key,
            hash,
        }
    }

    fn holds(&self, key: &str, chatbot: &str, session: u64, hash: &str) -> bool {
        let map = self.0.lock().expect("handed-out lock");
        map.get(key).is_some_and(|stint| {
            crate::server::same_secret(&stint.hash, hash)
                && stint.chatbot == chatbot
                && stint.session == session
        })
    }
}

/// Forgets a handed-out hash when its turn ends, committed or not.
pub(super) struct HandedOutGuard {
    map: Arc<Mutex<HashMap<String, BotStint>>>,
    key: String,
    hash: String,
}

impl Drop for HandedOutGuard {
    fn drop(&mut self) {
        let mut map = self.map.lock().expect("handed-out lock");
        if map.get(&self.key).is_some_and(|s| s.hash == self.hash) {
            map.remove(&self.key);
        }
    }
}

/// Checks a callback for `chatbot` naming `session` and presenting `hash`
/// against the conversation's state (in constant time over the hash).
pub fn verdict(
    state: Option<&ConversationState>,
    chatbot: &str,
    session: u64,
    hash: &str,
) -> CallbackVerdict {
    let Some(state) = state else {
        return CallbackVerdict::Refused;
    };
    let Some(stint) = &state.bot else {
        return CallbackVerdict::Refused;
    };
    let hash_matches = crate::server::same_secret(&stint.hash, hash);
    if !hash_matches || stint.chatbot != chatbot || stint.session != session {
        return CallbackVerdict::Refused;
    }
    if state.session != session {
        return CallbackVerdict::MovedOn(format!("session {session} has ended"));
    }
    match &state.position {
        Position::Chatbot { name, hash } if name == chatbot && hash == &stint.hash => {
            CallbackVerdict::Current
        }
        other => CallbackVerdict::MovedOn(where_it_is(other)),
    }
}

/// Where a conversation is, in words for a bot (no agent names, no data).
fn where_it_is(position: &Position) -> String {
    match position {
        Position::Start => "is no longer with the chatbot".into(),
        Position::Waiting { tree, .. } => format!("is in decision tree `{tree}`"),
        Position::Automessage { name, .. } => format!("is in automessage `{name}`"),
        Position::Chatbot { name, .. } => {
            format!("talks to chatbot `{name}` again, under a new hash")
        }
        Position::Queued { queue, .. } => format!("waits in queue `{queue}`"),
        Position::WithAgent { queue, .. } => format!("is with an agent of queue `{queue}`"),
        Position::Ended => "has ended".into(),
    }
}

impl Engine {
    /// Enters chatbot `name`: a fresh callback hash, and the start message
    /// if the node sends one.
    pub(super) async fn enter_chatbot(&self, turn: &mut Turn, name: &str) -> Next {
        let hash = uuid::Uuid::new_v4().simple().to_string();
        turn.set_position(Position::Chatbot {
            name: name.to_string(),
            hash: hash.clone(),
        });
        let stint = BotStint {
            chatbot: name.to_string(),
            hash: hash.clone(),
            session: turn.state.session,
        };
        let guard = self.handed_out.hand_out(turn.state.key(), stint.clone());
        turn.handed_out.push(guard);
        turn.state.bot = Some(stint);
        if turn.flow.compiled.flow.chatbots[name].send_start_message {
            let start = ChatbotInbound {
                id: uuid::Uuid::now_v7().to_string(),
                is_start: true,
                ..Default::default()
            };
            let next = self.talk_to_chatbot(turn, name, &hash, start).await;
            if !matches!(next, Next::Stay) {
                return next;
            }
        }
        // The message that brought the customer here is the bot's to
        // answer, unless a decision already took it as its answer.
        let unanswered = turn.inbound && turn.began_at == Position::Start;
        match turn.state.last_message.clone().filter(|_| unanswered) {
            Some(message) => {
                let inbound = inbound_of(&message);
                self.talk_to_chatbot(turn, name, &hash, inbound).await
            }
            None => Next::Stay,
        }
    }

    /// Sends one inbound to the chatbot's adapter and acts on its answer.
    pub(super) async fn talk_to_chatbot(
        &self,
        turn: &mut Turn,
        name: &str,
        hash: &str,
        mut inbound: ChatbotInbound,
    ) -> Next {
        let flow = turn.flow.compiled.clone();
        let bot = &flow.flow.chatbots[name];
        let Some(adapter) = turn.flow.plugins.get(&bot.adapter) else {
            turn.error(format!(
                "chatbot `{name}`: no adapter plugin `{}`; taking the fallback",
                bot.adapter
            ));
            return fallback(turn, name, bot, "no_adapter");
        };
        let session = self.bot_session(turn, name, hash).await;
        if !bot.send_attachments {
            inbound.attachments.clear();
        }
        let budget = Duration::from_secs(bot.timeout_seconds);
        let answer = self
            .runtime
            .run_chatbot(
                &adapter,
                turn.context(),
                &bot.adapter_config(),
                &session,
                &inbound,
                budget,
            )
            .await;
        match answer {
            Ok(answer) => self.act_on_bot(turn, name, answer),
            Err(error) => {
                turn.error(format!(
                    "chatbot `{name}` ({}): {error}; taking the fallback",
                    error.code()
                ));
                fallback(turn, name, bot, error.code())
            }
        }
    }

    /// What the adapter is told of the bot-side session: the callback URL
    /// and the custom fields, rendered now.
    async fn bot_session(&self, turn: &Turn, name: &str, hash: &str) -> ChatbotSession {
        let bot = &turn.flow.compiled.flow.chatbots[name];
        let context = turn.template_context();
        let mut custom_fields = Vec::with_capacity(bot.custom_fields.len());
        for field in &bot.custom_fields {
            let value = templates::render(
                self.runtime.templates(),
                &field.value,
                &context,
                templates::MAX_RENDERED_BYTES,
            )
            .await;
            custom_fields.push(CustomFieldValue {
                name: field.name.clone(),
                title: field.title.clone(),
                value: value.ok().filter(|v| !v.is_empty()),
            });
        }
        ChatbotSession {
            response_url: callback_url(
                &self.settings.callback_base_url,
                name,
                &turn.state.id(),
                hash,
            ),
            hash: hash.to_string(),
            custom_fields,
        }
    }

    /// Sends what the bot said and follows its hand-off, if any. The same
    /// for an answer in the HTTP exchange and one through the callback.
    fn act_on_bot(&self, turn: &mut Turn, name: &str, answer: BotTurn) -> Next {
        let flow = turn.flow.compiled.clone();
        let bot = &flow.flow.chatbots[name];
        let limit = turn
            .flow
            .plugins
            .get(&bot.adapter)
            .map_or(0, |adapter| adapter.limits().max_messages as usize);
        if answer.replies.len() > limit {
            turn.error(format!(
                "chatbot `{name}` answered with {} messages; the first {limit} (its max_messages) are sent",
                answer.replies.len()
            ));
        }
        for reply in answer.replies.into_iter().take(limit) {
            turn.send(reply);
        }
        let Some(named) = answer.handoff_queue else {
            return Next::Stay;
        };
        match bot.handoff_queue(&named, &flow.flow.queues) {
            Some(queue) => {
                let labels = [("chatbot", name.to_string()), ("queue", queue.to_string())];
                metrics::counter!(crate::telemetry::CHATBOT_HANDOFFS, &labels).increment(1);
                turn.count(crate::analytics::Fact::ChatbotHandoff {
                    chatbot: name.to_string(),
                    queue: queue.to_string(),
                });
                turn.route(format!(
                    "chatbot `{name}` hands the conversation to queue `{queue}`"
                ));
                Next::Go(Destination::Queue(queue.to_string()), String::new())
            }
            None => {
                turn.error(format!(
                    "chatbot `{name}` handed off to `{named}`, which is neither a queue of this flow nor one of the chatbot's queue_aliases; taking the fallback"
                ));
                fallback(turn, name, bot, "unknown_queue")
            }
        }
    }

    /// The flow chatbot `name`'s callbacks for the conversation under `key`
    /// are read with: the conversation's own version, so a chatbot removed
    /// from production still answers the sessions that began with it; else
    /// production. `None`: neither has the chatbot.
    pub async fn callback_flow(&self, name: &str, key: Option<&str>) -> Option<Arc<LiveFlow>> {
        if let Some(key) = key
            && let Ok(Some(state)) = self.storage.conversation(key).await
        {
            let flow = self.flow_for(&state).await;
            if flow.compiled.flow.chatbots.contains_key(name) {
                return Some(flow);
            }
        }
        let production = self.flows.production();
        production
            .compiled
            .flow
            .chatbots
            .contains_key(name)
            .then_some(production)
    }

    /// Reads a body posted to chatbot `name`'s callback URL with its
    /// adapter, as configured in `flow` (see [`Engine::callback_flow`]).
    pub async fn parse_callback(
        &self,
        flow: &LiveFlow,
        name: &str,
        body: &[u8],
    ) -> Result<BotCallback, CallError> {
        let bot =
            flow.compiled
                .flow
                .chatbots
                .get(name)
                .ok_or_else(|| CallError::BotUnavailable {
                    reason: format!("the flow has no chatbot `{name}`"),
                })?;
        let adapter = flow
            .plugins
            .get(&bot.adapter)
            .ok_or_else(|| CallError::BotUnavailable {
                reason: format!("no adapter plugin `{}`", bot.adapter),
            })?;
        self.runtime
            .parse_chatbot_callback(&adapter, &bot.adapter_config(), body)
            .await
    }

    /// Reads whether a callback may enter its conversation (for the
    /// callback endpoint, before it accepts the body).
    pub async fn check_callback(
        &self,
        key: &str,
        chatbot: &str,
        session: u64,
        hash: &str,
    ) -> Result<CallbackVerdict, EngineError> {
        // The hashes of turns under way first: such a turn drops its hash
        // only once its commit is readable, so one of the two checks sees
        // it (read storage first, and the turn could commit and drop the
        // hash between the read and this check).
        if self.handed_out.holds(key, chatbot, session, hash) {
            return Ok(CallbackVerdict::Current);
        }
        let state = self.storage.conversation(key).await?;
        Ok(verdict(state.as_ref(), chatbot, session, hash))
    }

    /// A bot's later answer from the inbox (`receipt`), in its
    /// conversation's lane. The conversation may have moved on since the
    /// callback was accepted: then the answer is dropped, and its history
    /// says so.
    pub async fn handle_bot_answer(
        &self,
        key: &str,
        answer: BotAnswer,
        receipt: u64,
    ) -> Result<Option<TurnReport>, EngineError> {
        self.in_lane(key, self.bot_answer_turn(key, answer, receipt))
            .await
    }

    async fn bot_answer_turn(
        &self,
        key: &str,
        answer: BotAnswer,
        receipt: u64,
    ) -> Result<Option<TurnReport>, EngineError> {
        let now = self.clock.now_ms();
        let consumed = TurnCommit {
            inbox_remove: vec![receipt],
            ..TurnCommit::default()
        };
        let state = self.storage.conversation(key).await?;
        let verdict = verdict(
            state.as_ref(),
            &answer.chatbot,
            answer.session,
            &answer.hash,
        );
        let Some(state) = state.filter(|_| verdict != CallbackVerdict::Refused) else {
            self.storage.commit_turn(consumed, now).await?;
            return Ok(None);
        };
        let mut turn = self.begin(state, consumed, now).await?;
        match verdict {
            CallbackVerdict::Current => {
                turn.route(format!("chatbot `{}` answered later", answer.chatbot));
                let next = self.act_on_bot(&mut turn, &answer.chatbot, answer.turn);
                self.follow(&mut turn, next).await;
            }
            CallbackVerdict::MovedOn(where_it_is) => turn.error(format!(
                "a late answer of chatbot `{}` was dropped: the conversation {where_it_is}",
                answer.chatbot
            )),
            CallbackVerdict::Refused => unreachable!("filtered above"),
        }
        self.commit(turn).await.map(Some)
    }
}

/// The chatbot's fallback, counted by `reason`.
fn fallback(
    turn: &mut Turn,
    name: &str,
    bot: &crate::flow::model::Chatbot,
    reason: &'static str,
) -> Next {
    let labels = [
        ("chatbot", name.to_string()),
        ("reason", reason.to_string()),
    ];
    metrics::counter!(crate::telemetry::CHATBOT_FALLBACKS, &labels).increment(1);
    turn.count(crate::analytics::Fact::ChatbotFallback {
        chatbot: name.to_string(),
        reason: reason.to_string(),
    });
    Next::Go(bot.fallback.clone(), String::new())
}

/// A customer's message as a chatbot adapter gets it.
pub(super) fn inbound_of(message: &InboundMessage) -> ChatbotInbound {
    ChatbotInbound {
        id: message.id.clone(),
        text: message.text.clone(),
        quick_reply: message.payload.clone(),
        attachments: message.attachments.clone(),
        is_start: false,
    }
}

/// The URL a bot posts its later answers to: the chatbot's name in the
/// path, the conversation and its hash in the query.
pub fn callback_url(base: &str, chatbot: &str, conversation: &str, hash: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "{}/chatbots/{}/callback?conversation={}&hash={}",
        base.trim_end_matches('/'),
        encode(chatbot),
        encode(conversation),
        encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Contact;

    fn talking(hash: &str) -> ConversationState {
        let contact = Contact {
            id: "c1".into(),
            ..Default::default()
        };
        let mut state = ConversationState::new("ig", contact, 3, "en", 0);
        state.position = Position::Chatbot {
            name: "bot".into(),
            hash: hash.into(),
        };
        state.bot = Some(BotStint {
            chatbot: "bot".into(),
            hash: hash.into(),
            session: 3,
        });
        state
    }

    #[test]
    fn only_the_current_hash_of_the_current_session_enters() {
        let state = talking("h1");
        assert_eq!(
            verdict(Some(&state), "bot", 3, "h1"),
            CallbackVerdict::Current
        );
        assert_eq!(
            verdict(Some(&state), "bot", 3, "h2"),
            CallbackVerdict::Refused
        );
        assert_eq!(
            verdict(Some(&state), "other", 3, "h1"),
            CallbackVerdict::Refused
        );
        assert_eq!(
            verdict(Some(&state), "bot", 2, "h1"),
            CallbackVerdict::Refused
        );
        assert_eq!(verdict(None, "bot", 3, "h1"), CallbackVerdict::Refused);
    }

    #[test]
    fn a_conversation_that_moved_on_says_where() {
        let mut state = talking("h1");
        state.position = Position::Queued {
            queue: "sales".into(),
            since_ms: 0,
            offer: None,
            passed: Vec::new(),
        };
        assert_eq!(
            verdict(Some(&state), "bot", 3, "h1"),
            CallbackVerdict::MovedOn("waits in queue `sales`".into())
        );
        let next = state.next_session(state.contact.clone(), 1);
        assert_eq!(
            verdict(Some(&next), "bot", 3, "h1"),
            CallbackVerdict::MovedOn("session 3 has ended".into())
        );
    }

    #[test]
    fn a_handed_out_hash_counts_until_its_turn_ends() {
        let handed_out = HandedOut::default();
        let stint = BotStint {
            chatbot: "bot".into(),
            hash: "h1".into(),
            session: 2,
        };
        let guard = handed_out.hand_out("ig\0c1".into(), stint);
        assert!(handed_out.holds("ig\0c1", "bot", 2, "h1"));
        assert!(!handed_out.holds("ig\0c1", "bot", 2, "h2"));
        assert!(!handed_out.holds("ig\0c1", "bot", 1, "h1"));
        drop(guard);
        assert!(!handed_out.holds("ig\0c1", "bot", 2, "h1"));
    }

    #[test]
    fn the_callback_url_escapes_what_it_carries() {
        assert_eq!(
            callback_url("https://fh.example/", "bot", "ig:17:2", "abc"),
            "https://fh.example/chatbots/bot/callback?conversation=ig%3A17%3A2&hash=abc"
        );
    }
}
