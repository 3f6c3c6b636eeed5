//! Events from people and the queue router: offers, accepting, replying,
//! transferring and closing. Each is a turn like a customer's message (the
//! conversation's lane held, loaded, changed, committed at once), so an
//! agent's reply and a customer's message never race.

use super::{Engine, EngineError, Next, Turn, TurnReport};
use crate::flow::model::{Destination, ManagementAccess};
use crate::model::agent::Agent;
use crate::model::{ConversationState, Ending, OutboxMessage, Position};
use crate::plugin::OutgoingMessage;
use crate::storage::TurnCommit;

/// A human agent may answer within 7 days of the customer's last message
/// (Instagram's HUMAN_AGENT tag).
pub const HUMAN_AGENT_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;

/// What an agent does to a conversation.
#[derive(Clone, Debug)]
pub enum AgentAction {
    /// Takes a conversation offered to them.
    Accept,
    /// Passes on an offer.
    Decline,
    /// Takes a waiting conversation by hand (the capacity check, with the
    /// queue's extra chats, is the caller's).
    Pickup,
    /// A supervisor takes a conversation of a queue they manage.
    TakeOver,
    Reply(OutgoingMessage),
    /// The agent has read the customer's messages.
    Read,
    Transfer(TransferTo),
    /// Ends the session as a terminate would.
    Close {
        cause: String,
        answered: bool,
    },
}

#[derive(Clone, Debug)]
pub enum TransferTo {
    Queue(String),
    /// The connector's `default_queue` (the "default department").
    DefaultQueue,
    /// Another agent (whose eligibility the caller checked).
    Agent(String),
    /// Back into the flow: a decision tree, a chatbot, ...
    Flow(Destination),
}

/// What the router does to a waiting conversation.
#[derive(Clone, Debug)]
pub enum RouterAction {
    /// Rings `agents` until `until_ms` (replacing an offer that lapsed or
    /// that a restart interrupted).
    Offer { agents: Vec<String>, until_ms: u64 },
    /// The offer's time ran out.
    Lapse,
    /// No agent is online: the queue's `when_empty` destination.
    LeaveEmpty(Destination),
}

/// Why an agent's action was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no conversation `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "the customer last wrote {days} days ago; Instagram lets a human agent answer within 7 days, so nothing was sent"
    )]
    WindowClosed { days: u64 },
    #[error("the reply could not be translated, so nothing was sent: {0}")]
    Translation(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Applies `action` of `agent` to the conversation `key`.
    pub async fn agent_turn(
        &self,
        key: &str,
        agent: &Agent,
        action: AgentAction,
    ) -> Result<TurnReport, Refusal> {
        self.in_lane(key, self.agent_event(key, agent, action))
            .await
    }

    /// Applies the router's `action`; `None` if the conversation no longer
    /// waits (the router's view was stale).
    pub async fn router_turn(
        &self,
        key: &str,
        action: RouterAction,
    ) -> Result<Option<TurnReport>, EngineError> {
        self.in_lane(key, self.router_event(key, action)).await
    }

    async fn load_turn(&self, key: &str) -> Result<Option<Turn>, EngineError> {
        let Some(state) = self.storage.conversation(key).await? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        Ok(Some(self.begin(state, TurnCommit::default(), now).await?))
    }

    async fn agent_event(
        &self,
        key: &str,
        agent: &Agent,
        mut action: AgentAction,
    ) -> Result<TurnReport, Refusal> {
        let Some(mut turn) = self.load_turn(key).await? else {
            return Err(Refusal::NotFound(key.to_string()));
        };
        if let AgentAction::Transfer(TransferTo::DefaultQueue) = &action {
            let queue = self.default_queue_of(&turn.state.account).ok_or_else(|| {
                Refusal::Conflict("this conversation's connector names no default_queue".into())
            })?;
            action = AgentAction::Transfer(TransferTo::Queue(queue));
        }
        if let AgentAction::Transfer(to) = &action {
            Self::check_transfer(&turn.flow.compiled, to)?;
        }
        let access = turn
            .state
            .position
            .queue()
            .and_then(|q| turn.flow.compiled.flow.queues.get(q))
            .map(|q| q.agent_management_access)
            .unwrap_or_default();
        let mut original = None;
        if let AgentAction::Reply(message) = &mut action {
            // Refused before any translator runs for it.
            may_reply(&turn, agent, access)?;
            original = self
                .translate_reply(&mut turn, &agent.language, message)
                .await?;
            self.sign_reply(&turn, agent, message).await;
        }
        let was_with = turn.state.position.agent().map(String::from);
        let next = apply_agent_action(&mut turn, agent, access, action)?;
        if let Some(original) = original {
            turn.state
                .note_translation(turn.now_ms, original, &agent.language);
        }
        self.translate_for_new_agent(&mut turn, agent, was_with)
            .await;
        self.follow(&mut turn, next).await;
        Ok(self.commit(turn).await?)
    }

    /// When the action gave the conversation to an agent, what the customer
    /// wrote while waiting, in that agent's language.
    async fn translate_for_new_agent(
        &self,
        turn: &mut Turn,
        actor: &Agent,
        was_with: Option<String>,
    ) {
        let Some(now_with) = turn.state.position.agent().map(String::from) else {
            return;
        };
        if was_with.as_ref() == Some(&now_with) {
            return;
        }
        let language = if now_with == actor.id {
            actor.language.clone()
        } else {
            match self.storage.agent(&now_with).await {
                Ok(Some(agent)) => agent.language,
                _ => return,
            }
        };
        self.translate_waiting(turn, &language).await;
    }

    /// Puts the queue's `user_name` (rendered for this agent) before the
    /// reply's text, so the customer knows who writes.
    async fn sign_reply(&self, turn: &Turn, agent: &Agent, message: &mut OutgoingMessage) {
        let Some(template) = turn
            .state
            .position
            .queue()
            .and_then(|q| turn.flow.compiled.flow.queues.get(q))
            .and_then(|q| q.user_name.as_ref())
        else {
            return;
        };
        let context = serde_json::json!({"agent": {"id": agent.id, "name": agent.name}});
        let rendered = crate::templates::render(
            self.runtime.templates(),
            template,
            &context,
            crate::templates::MAX_RENDERED_BYTES,
        )
        .await;
        match (rendered, &mut message.text) {
            (Ok(name), Some(text)) if !name.trim().is_empty() => {
                *text = format!("{}: {text}", name.trim());
            }
            (Ok(_), _) => {}
            (Err(e), _) => tracing::warn!("user_name of the queue: {e}"),
        }
    }

    /// A transfer goes to a queue or a step of the conversation's flow.
    fn check_transfer(
        compiled: &crate::flow::CompiledFlow,
        to: &TransferTo,
    ) -> Result<(), Refusal> {
        let flow = &compiled.flow;
        let exists = match to {
            TransferTo::Queue(name) => flow.queues.contains_key(name),
            TransferTo::Agent(_) | TransferTo::DefaultQueue => true,
            TransferTo::Flow(destination) => match destination {
                Destination::DecisionTree(name) => flow.decision_trees.contains_key(name),
                Destination::Chatbot(name) => flow.chatbots.contains_key(name),
                Destination::Automessage(name) => flow.automessages.contains_key(name),
                Destination::TimeCondition(name) => flow.time_conditions.contains_key(name),
                Destination::Terminate(name) => flow.terminates.contains_key(name),
                Destination::Queue(name) => flow.queues.contains_key(name),
                Destination::Decision(_) => false,
            },
        };
        if exists {
            Ok(())
        } else {
            Err(Refusal::NotFound(format!(
                "no such destination in this flow: {to:?}"
            )))
        }
    }

    async fn router_event(
        &self,
        key: &str,
        action: RouterAction,
    ) -> Result<Option<TurnReport>, EngineError> {
        let Some(mut turn) = self.load_turn(key).await? else {
            return Ok(None);
        };
        let Position::Queued {
            queue,
            since_ms,
            offer,
            mut passed,
        } = turn.state.position.clone()
        else {
            return Ok(None);
        };
        let now = turn.now_ms;
        let next = match action {
            RouterAction::Offer { agents, until_ms } => {
                turn.route(format!("offered to {}", agents.join(", ")));
                let offer = crate::model::Offer {
                    agents,
                    at_ms: now,
                    until_ms,
                };
                turn.state.position = Position::Queued {
                    queue,
                    since_ms,
                    offer: Some(offer),
                    passed,
                };
                Next::Stay
            }
            RouterAction::Lapse => {
                let Some(offer) = offer.filter(|o| o.until_ms <= now) else {
                    return Ok(None);
                };
                turn.route(format!("offer to {} lapsed", offer.agents.join(", ")));
                passed.extend(offer.agents);
                turn.state.position = Position::Queued {
                    queue,
                    since_ms,
                    offer: None,
                    passed,
                };
                Next::Stay
            }
            RouterAction::LeaveEmpty(destination) => {
                turn.route(format!("no agent of queue `{queue}` is online"));
                Next::Go(destination, String::new())
            }
        };
        self.follow(&mut turn, next).await;
        self.commit(turn).await.map(Some)
    }
}

/// The checks and the change of one agent action, before routing.
fn apply_agent_action(
    turn: &mut Turn,
    agent: &Agent,
    access: ManagementAccess,
    action: AgentAction,
) -> Result<Next, Refusal> {
    let now = turn.now_ms;
    let me = agent.id.clone();
    match action {
        AgentAction::Accept => {
            let (queue, offered) = match &turn.state.position {
                Position::Queued {
                    queue,
                    offer: Some(offer),
                    ..
                } => (
                    queue.clone(),
                    offer.agents.contains(&me) && offer.until_ms > now,
                ),
                Position::WithAgent { agent, .. } if *agent == me => {
                    return Err(Refusal::Conflict(
                        "you already have this conversation".into(),
                    ));
                }
                Position::WithAgent { .. } => {
                    return Err(Refusal::Conflict(
                        "another agent accepted this conversation first".into(),
                    ));
                }
                _ => return Err(Refusal::Conflict("this conversation is not waiting".into())),
            };
            if !offered {
                return Err(Refusal::Conflict(
                    "this conversation is not (or no longer) offered to you".into(),
                ));
            }
            assign(turn, &queue, &me, "accepted by");
        }
        AgentAction::Decline => {
            let Position::Queued {
                offer: Some(offer),
                passed,
                ..
            } = &mut turn.state.position
            else {
                return Err(Refusal::Conflict("nothing is offered to you here".into()));
            };
            if !offer.agents.contains(&me) {
                return Err(Refusal::Conflict("nothing is offered to you here".into()));
            }
            offer.agents.retain(|a| *a != me);
            passed.push(me.clone());
            if offer.agents.is_empty()
                && let Position::Queued { offer, .. } = &mut turn.state.position
            {
                *offer = None;
            }
            turn.route(format!("declined by {me}"));
        }
        AgentAction::Pickup => {
            let Position::Queued { queue, .. } = turn.state.position.clone() else {
                return Err(Refusal::Conflict("this conversation is not waiting".into()));
            };
            if agent.serves(&queue).is_none() {
                return Err(Refusal::Forbidden(format!(
                    "you do not serve queue `{queue}`"
                )));
            }
            assign(turn, &queue, &me, "picked up by");
        }
        AgentAction::TakeOver => {
            let Some(queue) = turn.state.position.queue().map(String::from) else {
                return Err(Refusal::Conflict(
                    "this conversation is not with people".into(),
                ));
            };
            if !agent.manages(&queue, access) {
                return Err(Refusal::Forbidden(format!(
                    "queue `{queue}` lets {} take over its conversations",
                    access_holders(access)
                )));
            }
            assign(turn, &queue, &me, "taken over by");
        }
        AgentAction::Reply(message) => {
            may_reply(turn, agent, access)?;
            count_first_reply(turn, &me);
            turn.state.unread = 0;
            turn.state.agent_reply_ms = Some(now);
            turn.agent_replied = true;
            turn.send(message);
            if let Some(OutboxMessage { sender, .. }) = turn.commit.outbox.last_mut() {
                *sender = "agent".into();
            }
        }
        AgentAction::Read => {
            may_act(&turn.state, agent, access)?;
            turn.state.unread = 0;
        }
        AgentAction::Transfer(to) => {
            let queue = may_act(&turn.state, agent, access)?;
            match to {
                TransferTo::Queue(target) => {
                    turn.route(format!("transferred by {me} to queue `{target}`"));
                    return Ok(Next::Go(Destination::Queue(target), String::new()));
                }
                TransferTo::Agent(other) => {
                    assign(turn, &queue, &other, &format!("transferred by {me} to"));
                }
                TransferTo::DefaultQueue => unreachable!("resolved to its queue before"),
                TransferTo::Flow(destination) => {
                    turn.route(format!("transferred by {me} back to the flow"));
                    turn.set_position(Position::Start);
                    return Ok(Next::Go(destination, String::new()));
                }
            }
        }
        AgentAction::Close { cause, answered } => {
            let queue = may_act(&turn.state, agent, access)?;
            turn.route(format!("closed by {me}: {cause}"));
            turn.state.ending = Some(Ending {
                terminate: format!("agent:{me}"),
                cause,
                queue: Some(queue),
                answered,
                at_ms: now,
            });
            turn.set_position(Position::Ended);
        }
    }
    Ok(Next::Stay)
}

/// Whether `agent` may reply now: theirs, and within Instagram's 7 days.
fn may_reply(turn: &Turn, agent: &Agent, access: ManagementAccess) -> Result<(), Refusal> {
    may_act(&turn.state, agent, access)?;
    let last = turn
        .state
        .last_inbound_ms
        .unwrap_or(turn.state.started_at_ms);
    let age = turn.now_ms.saturating_sub(last);
    if age > HUMAN_AGENT_WINDOW_MS {
        return Err(Refusal::WindowClosed {
            days: age / (24 * 3600 * 1000),
        });
    }
    Ok(())
}

/// The conversation's queue, if `agent` answers it (or supervises its queue).
fn may_act(
    state: &ConversationState,
    agent: &Agent,
    access: ManagementAccess,
) -> Result<String, Refusal> {
    match &state.position {
        Position::WithAgent {
            queue, agent: with, ..
        } if *with == agent.id || agent.manages(queue, access) => Ok(queue.clone()),
        Position::WithAgent { .. } => Err(Refusal::Forbidden(
            "another agent answers this conversation".into(),
        )),
        _ => Err(Refusal::Conflict(
            "this conversation is not with an agent".into(),
        )),
    }
}

fn access_holders(access: ManagementAccess) -> &'static str {
    match access {
        ManagementAccess::Supervisors => "only its supervisors",
        ManagementAccess::Agents => "only its agents",
        ManagementAccess::Nobody => "nobody",
    }
}

fn assign(turn: &mut Turn, queue: &str, agent: &str, how: &str) {
    turn.route(format!("{how} {agent}"));
    turn.state.last_agent = Some(agent.to_string());
    turn.set_position(Position::WithAgent {
        queue: queue.to_string(),
        agent: agent.to_string(),
        since_ms: turn.now_ms,
    });
}

/// Counts `agent`'s first reply since they took the conversation.
fn count_first_reply(turn: &mut Turn, agent: &str) {
    let Position::WithAgent {
        agent: with,
        queue,
        since_ms,
    } = &turn.state.position
    else {
        return;
    };
    let replied_since = turn.state.agent_reply_ms.is_some_and(|at| at >= *since_ms);
    if with != agent || replied_since {
        return;
    }
    let fact = crate::analytics::Fact::FirstReply {
        agent: agent.to_string(),
        queue: queue.clone(),
        after_ms: turn.now_ms.saturating_sub(*since_ms),
    };
    turn.count(fact);
}
