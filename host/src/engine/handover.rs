//! Threads taken by someone outside flowhost: an aggregator's own agent
//! (Connexease's `conversation.assigned`, an agent's message) or another
//! Meta app (the handover protocol). While taken, the bot keeps quiet: the
//! customer's messages go into the history and nothing is routed or sent.

use super::{Engine, EngineError, Next, TurnReport};
use crate::model::{ConversationState, Ending, Handover, Position, conversation_key};
use crate::plugin::{Contact, InboundMessage};
use crate::storage::TurnCommit;

impl Engine {
    /// A handover of `contact`'s thread on `account`, from the inbox.
    pub async fn handle_handover(
        &self,
        account: &str,
        contact: Contact,
        message: InboundMessage,
        handover: Handover,
        receipt: u64,
    ) -> Result<TurnReport, EngineError> {
        let key = conversation_key(account, &contact.id);
        let turn = self.handover_turn(account, &key, contact, message, handover, receipt);
        self.in_lane(&key, turn).await
    }

    async fn handover_turn(
        &self,
        account: &str,
        key: &str,
        contact: Contact,
        message: InboundMessage,
        handover: Handover,
        receipt: u64,
    ) -> Result<TurnReport, EngineError> {
        let now = self.clock.now_ms();
        let production = self.flow();
        let language = &production.flow.default_language;
        let state = match self.storage.conversation(key).await? {
            Some(state) => state,
            None => ConversationState::new(account, contact, 1, language, now),
        };
        let commit = TurnCommit {
            inbox_remove: vec![receipt],
            ..TurnCommit::default()
        };
        let mut turn = self.begin(state, commit, now).await?;
        // A message that came with the handover (under Meta's standby).
        if let Some(text) = message.text.filter(|t| !t.is_empty()) {
            turn.state.note(now, "in", text);
            turn.state.customer_ms = Some(now);
            let written = message
                .timestamp_ms
                .max(turn.state.last_inbound_ms.unwrap_or(0));
            turn.state.last_inbound_ms = Some(written);
        }
        match handover {
            // Still taken (a standby message says so again): keep who has it.
            Handover::Taken { .. } if turn.state.held_by.is_some() => {}
            Handover::Taken { by } => {
                turn.route(format!("taken by {by}: the bot keeps quiet"));
                // Out of flowhost's queues, automessages and chatbots:
                // nobody here should answer or be offered it. A decision
                // waiting for an answer stays, to go on from when it is
                // given back.
                if !matches!(
                    turn.state.position,
                    Position::Start | Position::Ended | Position::Waiting { .. }
                ) {
                    turn.set_position(Position::Start);
                }
                turn.state.held_by = Some(by);
            }
            Handover::Returned => {
                turn.route("given back: the bot answers again".into());
                turn.state.held_by = None;
            }
            Handover::Closed => {
                let by = turn
                    .state
                    .held_by
                    .take()
                    .unwrap_or_else(|| "elsewhere".into());
                turn.route(format!("closed by {by}"));
                turn.state.ending = Some(Ending {
                    terminate: "elsewhere".into(),
                    cause: "closed-elsewhere".into(),
                    queue: None,
                    answered: true,
                    at_ms: now,
                });
                turn.set_position(Position::Ended);
            }
        }
        self.follow(&mut turn, Next::Stay).await;
        self.commit(turn).await
    }
}
