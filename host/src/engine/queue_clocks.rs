//! A conversation's clocks while it is with people: the queue's welcome and
//! position messages, and its timeouts (see the README's queue table).
//!
//! Each clock is a durable timer ([`QueueCheck`]) scheduled by the turn
//! that starts it and carrying the moment it started from. When it fires,
//! the check runs against the conversation as it is then: if that moment
//! has passed (a newer message, another agent), the timer just goes.
//! So a restart keeps every clock, and nothing has to cancel them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{Engine, Next, Turn};
use crate::flow::model::{Queue, Text};
use crate::model::{Ending, Position, QueueCheck, TimerKind};
use crate::templates;

/// Recent waits kept per queue for the estimate.
const RECENT_WAITS: usize = 20;

/// How long the last conversations of each queue waited for an agent (in
/// memory: after a restart the estimate starts from the cap again).
#[derive(Default)]
pub struct WaitTimes {
    recent: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl WaitTimes {
    pub fn record(&self, queue: &str, waited_ms: u64) {
        let mut recent = self.recent.lock().expect("wait times lock");
        let waits = recent.entry(queue.to_string()).or_default();
        if waits.len() == RECENT_WAITS {
            waits.pop_front();
        }
        waits.push_back(waited_ms);
    }

    /// The wait to tell the customer at `position`: the mean recent wait
    /// times the position, never above `cap_ms`; the cap itself while
    /// nothing is known.
    pub fn estimate_ms(&self, queue: &str, position: u64, cap_ms: u64) -> u64 {
        let recent = self.recent.lock().expect("wait times lock");
        match recent.get(queue).filter(|w| !w.is_empty()) {
            Some(waits) => {
                let mean = waits.iter().sum::<u64>() / waits.len() as u64;
                mean.saturating_mul(position.max(1)).min(cap_ms)
            }
            None => cap_ms,
        }
    }
}

/// A queue's settings in the flow version the turn runs on.
fn queue_settings(turn: &Turn, name: &str) -> Option<Queue> {
    turn.flow.compiled.flow.queues.get(name).cloned()
}

impl Engine {
    /// Starts the clocks the turn's change calls for; every turn passes
    /// here just before it commits.
    pub(super) fn start_queue_clocks(&self, turn: &mut Turn) {
        let now = turn.now_ms;
        let entered = match (&turn.began_at, &turn.state.position) {
            (
                Position::Queued {
                    since_ms: before, ..
                },
                Position::Queued { since_ms, .. },
            ) => before != since_ms,
            (_, Position::Queued { .. }) => true,
            _ => false,
        };
        if let (
            true,
            Position::Queued {
                queue, since_ms, ..
            },
        ) = (entered, &turn.state.position)
        {
            let (queue, since_ms) = (queue.clone(), *since_ms);
            self.waiting_clocks(turn, &queue, since_ms);
        }
        let Position::WithAgent {
            queue, since_ms, ..
        } = turn.state.position.clone()
        else {
            return;
        };
        if let Position::Queued {
            queue: waited_in,
            since_ms: waited_from,
            ..
        } = &turn.began_at
        {
            self.waits
                .record(waited_in, now.saturating_sub(*waited_from));
        }
        let Some(settings) = queue_settings(turn, &queue) else {
            return;
        };
        let newly_assigned = since_ms == now
            && !matches!(&turn.began_at, Position::WithAgent { since_ms: s, .. } if *s == now);
        if newly_assigned && settings.agent_timeout > 0 {
            let check = QueueCheck::AgentFirstReply { since_ms };
            turn.schedule(
                now + settings.agent_timeout * 1000,
                TimerKind::Queue { check },
            );
        }
        if turn.inbound && settings.agent_message_timeout > 0 {
            let check = QueueCheck::AgentAnswer { customer_ms: now };
            let due = now + settings.agent_message_timeout * 1000;
            turn.schedule(due, TimerKind::Queue { check });
        }
        if turn.agent_replied {
            if settings.idle_session_message.is_some() && settings.idle_session_timeout > 0 {
                let check = QueueCheck::CustomerIdle { reply_ms: now };
                let due = now + settings.idle_session_timeout * 1000;
                turn.schedule(due, TimerKind::Queue { check });
            }
            if settings.contact_message_timeout > 0 {
                let check = QueueCheck::CustomerGone { reply_ms: now };
                let due = now + settings.contact_message_timeout * 1000;
                turn.schedule(due, TimerKind::Queue { check });
            }
        }
    }

    /// The clocks of a conversation that just started waiting in `queue`.
    fn waiting_clocks(&self, turn: &mut Turn, queue: &str, since_ms: u64) {
        let Some(settings) = queue_settings(turn, queue) else {
            return;
        };
        let now = turn.now_ms;
        if turn.state.people_since_ms.is_none() {
            turn.state.people_since_ms = Some(now);
            if settings.session_timeout > 0 {
                let check = QueueCheck::SessionLimit;
                let due = now + settings.session_timeout * 1000;
                turn.schedule(due, TimerKind::Queue { check });
            }
        }
        if settings.message_timeout > 0 {
            let check = QueueCheck::WaitLimit { since_ms };
            let due = now + settings.message_timeout * 1000;
            turn.schedule(due, TimerKind::Queue { check });
        }
        if settings.position_message.is_some() && settings.position_interval > 0 {
            let check = QueueCheck::Announce { since_ms };
            let due = now + settings.position_interval * 1000;
            turn.schedule(due, TimerKind::Queue { check });
        }
    }

    /// The welcome and the first position message, on entering a queue
    /// from the flow.
    pub(super) async fn greet_in_queue(&self, turn: &mut Turn, queue: &str) {
        let Some(settings) = queue_settings(turn, queue) else {
            return;
        };
        if let Some(welcome) = &settings.welcome_message {
            let context = self.queue_context(turn, queue, None).await;
            let what = format!("queues.{queue}.welcome_message");
            self.send_queue_text(turn, welcome, context, &what).await;
        }
        if let Some(message) = &settings.position_message {
            let context = self.queue_context(turn, queue, Some(turn.now_ms)).await;
            let what = format!("queues.{queue}.position_message");
            self.send_queue_text(turn, message, context, &what).await;
        }
    }

    /// A queue timer fired: what it does, or `None` if its moment passed.
    pub(super) async fn queue_timer(&self, turn: &mut Turn, check: QueueCheck) -> Option<Next> {
        let position = turn.state.position.clone();
        let queue = position.queue()?.to_string();
        let settings = queue_settings(turn, &queue)?;
        let waiting_since = match &position {
            Position::Queued { since_ms, .. } => Some(*since_ms),
            _ => None,
        };
        let with_agent = match &position {
            Position::WithAgent {
                agent, since_ms, ..
            } => Some((agent.clone(), *since_ms)),
            _ => None,
        };
        let customer_quiet_since = |reply_ms: u64, state: &crate::model::ConversationState| {
            state.agent_reply_ms == Some(reply_ms) && state.customer_ms.is_none_or(|c| c < reply_ms)
        };
        match check {
            QueueCheck::Announce { since_ms } if waiting_since == Some(since_ms) => {
                let message = settings.position_message.as_ref()?;
                let context = self.queue_context(turn, &queue, Some(since_ms)).await;
                let what = format!("queues.{queue}.position_message");
                self.send_queue_text(turn, message, context, &what).await;
                let check = QueueCheck::Announce { since_ms };
                let due = turn.now_ms + settings.position_interval.max(1) * 1000;
                turn.schedule(due, TimerKind::Queue { check });
                Some(Next::Stay)
            }
            QueueCheck::WaitLimit { since_ms } if waiting_since == Some(since_ms) => {
                turn.route(format!(
                    "waited {} s in queue `{queue}` without an agent",
                    settings.message_timeout
                ));
                Some(Next::Go(settings.when_timeout.clone()?, String::new()))
            }
            QueueCheck::SessionLimit => {
                if let Some(message) = &settings.session_timeout_message {
                    let context = self.queue_context(turn, &queue, None).await;
                    let what = format!("queues.{queue}.session_timeout_message");
                    self.send_queue_text(turn, message, context, &what).await;
                }
                let answered = turn.state.agent_reply_ms.is_some();
                self.end_with_people(turn, &queue, "session-timeout", answered);
                Some(Next::Stay)
            }
            QueueCheck::AgentFirstReply { since_ms } => {
                let (agent, since) = with_agent?;
                let replied = turn.state.agent_reply_ms.is_some_and(|r| r >= since);
                if since != since_ms || replied {
                    return None;
                }
                let why = format!("{agent} did not answer within {} s", settings.agent_timeout);
                self.give_back(turn, &queue, &agent, why);
                Some(Next::Stay)
            }
            QueueCheck::AgentAnswer { customer_ms } => {
                let (agent, _) = with_agent?;
                let unanswered = turn.state.customer_ms == Some(customer_ms)
                    && turn.state.agent_reply_ms.is_none_or(|r| r < customer_ms);
                if !unanswered {
                    return None;
                }
                let why = format!(
                    "{agent} left the customer's message unanswered for {} s",
                    settings.agent_message_timeout
                );
                self.give_back(turn, &queue, &agent, why);
                Some(Next::Stay)
            }
            QueueCheck::CustomerIdle { reply_ms } => {
                with_agent.as_ref()?;
                if !customer_quiet_since(reply_ms, &turn.state) {
                    return None;
                }
                let message = settings.idle_session_message.as_ref()?;
                let context = self.queue_context(turn, &queue, None).await;
                let what = format!("queues.{queue}.idle_session_message");
                self.send_queue_text(turn, message, context, &what).await;
                Some(Next::Stay)
            }
            QueueCheck::CustomerGone { reply_ms } => {
                with_agent.as_ref()?;
                if !customer_quiet_since(reply_ms, &turn.state) {
                    return None;
                }
                self.end_with_people(turn, &queue, "contact-timeout", true);
                Some(Next::Stay)
            }
            _ => None,
        }
    }

    /// The agent gives the conversation back: it waits again, from when it
    /// first reached people, so it is near the front; the agent is passed.
    fn give_back(&self, turn: &mut Turn, queue: &str, agent: &str, why: String) {
        turn.route(format!("{why}; back to queue `{queue}`"));
        turn.set_position(Position::Queued {
            queue: queue.to_string(),
            since_ms: turn.state.people_since_ms.unwrap_or(turn.now_ms),
            offer: None,
            passed: vec![agent.to_string()],
        });
    }

    fn end_with_people(&self, turn: &mut Turn, queue: &str, cause: &str, answered: bool) {
        if let Some(agent) = turn.state.position.agent() {
            turn.state.last_agent = Some(agent.to_string());
        }
        turn.route(format!("ended by queue `{queue}`: {cause}"));
        turn.state.ending = Some(Ending {
            terminate: format!("queue:{queue}"),
            cause: cause.to_string(),
            queue: Some(queue.to_string()),
            answered,
            at_ms: turn.now_ms,
        });
        turn.set_position(Position::Ended);
    }

    /// The template context of a queue text: the conversation's, plus
    /// `queue` (its name, and with `since_ms` the customer's place and
    /// estimated wait).
    async fn queue_context(&self, turn: &Turn, queue: &str, since_ms: Option<u64>) -> Value {
        let mut context = turn.template_context();
        let settings = queue_settings(turn, queue);
        let mut info = json!({
            "key": queue,
            "name": settings.as_ref().map(|q| q.name.clone()).unwrap_or_default(),
        });
        if let Some(since_ms) = since_ms {
            let ahead = match self.storage.waiting().await {
                Ok(waiting) => waiting
                    .iter()
                    .filter(|(_, w)| w.queue == queue && w.since_ms < since_ms)
                    .count() as u64,
                Err(e) => {
                    tracing::warn!("counting the queue `{queue}`: {e}");
                    0
                }
            };
            let position = ahead + 1;
            let cap_ms = settings.map_or(0, |q| q.hold_estimation_upper_limit * 1000);
            let estimate_ms = self.waits.estimate_ms(queue, position, cap_ms);
            info["position"] = json!(position);
            info["estimated_wait_minutes"] = json!(estimate_ms.div_ceil(60_000));
        }
        if let Some(root) = context.as_object_mut() {
            root.insert("queue".into(), info);
        }
        context
    }

    async fn send_queue_text(&self, turn: &mut Turn, text: &Text, context: Value, what: &str) {
        let source = text.for_language(&turn.state.language);
        let templates = self.runtime.templates();
        match templates::render(templates, source, &context, templates::MAX_RENDERED_BYTES).await {
            Ok(rendered) => turn.send(crate::plugin::OutgoingMessage {
                text: Some(rendered),
                ..Default::default()
            }),
            Err(e) => turn.error(format!("{what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_grows_with_the_place_and_stops_at_the_cap() {
        let waits = WaitTimes::default();
        assert_eq!(
            waits.estimate_ms("q", 3, 600_000),
            600_000,
            "nothing known: the cap"
        );
        waits.record("q", 60_000);
        waits.record("q", 120_000);
        assert_eq!(waits.estimate_ms("q", 1, 600_000), 90_000);
        assert_eq!(waits.estimate_ms("q", 3, 600_000), 270_000);
        assert_eq!(waits.estimate_ms("q", 30, 600_000), 600_000);
        assert_eq!(waits.estimate_ms("other", 1, 5_000), 5_000);
    }
}
