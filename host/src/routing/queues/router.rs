//! The router: offers each waiting conversation to agents, in queue
//! priority order and longest waiting first, and acts when an offer lapses
//! or nobody is online.
//!
//! It keeps no state of its own beyond when it last looked at each queue:
//! waiting conversations, their offers and the agents' counters are all in
//! storage, changed through engine turns and `Storage::modify_agent`. So a
//! restart loses nothing; offers that were ringing at the stop ring again,
//! for a full ring time, when the router first runs.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Notify, watch};

use super::strategy::{Candidate, choose};
use crate::engine::agents::RouterAction;
use crate::engine::feed::News;
use crate::engine::{Engine, EngineError};
use crate::flow::model::Queue;
use crate::model::Offer;
use crate::model::agent::{Agent, AgentStatus};
use crate::storage::WaitingIn;

/// The finest granularity of the router's clock.
const TICK: Duration = Duration::from_millis(250);

pub struct Router {
    engine: Arc<Engine>,
    wake: Notify,
    /// When each queue was last looked at (`period_to_check`).
    checked: Mutex<HashMap<String, u64>>,
}

/// A waiting conversation as the router sees it.
struct Waiting {
    key: String,
    queue: String,
    since_ms: u64,
    offer: Option<Offer>,
    passed: Vec<String>,
    last_agent: Option<String>,
}

/// The agents and how busy each is, for one pass.
struct Desk {
    agents: HashMap<String, Agent>,
    /// Conversations answered plus offers ringing, per agent.
    busy: HashMap<String, u32>,
}

impl Router {
    pub fn new(engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Router {
            engine,
            wake: Notify::new(),
            checked: Mutex::default(),
        })
    }

    /// Asks for a pass now (an agent came online, declined, closed ...).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut first = true;
        while !*stop.borrow() {
            if let Err(e) = self.pass(first).await {
                tracing::error!("routing waiting conversations: {e}");
            }
            first = false;
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One look at every queue that is due (`period_to_check`). `first`
    /// is the pass after a start: offers still ringing ring again, for a
    /// full ring time. (The server runs it in [`Router::run`]; tests call
    /// it on an injected clock.)
    pub async fn pass(&self, first: bool) -> Result<(), EngineError> {
        let now = self.engine.now_ms();
        let flow = &self.engine.flow().flow;
        let storage = self.engine.storage();
        let due: HashMap<String, bool> = {
            let checked = self.checked.lock().expect("router lock");
            let due = |queue: &str, settings: &Queue| {
                let last = checked.get(queue).copied();
                first || last.is_none_or(|last| now >= last + settings.period_to_check * 1000)
            };
            flow.queues
                .iter()
                .map(|(name, settings)| (name.clone(), due(name, settings)))
                .collect()
        };
        let index = storage.waiting().await?;
        let any_due = index
            .iter()
            .any(|(_, w)| due.get(&w.queue).copied().unwrap_or(false));
        if !any_due {
            return Ok(());
        }
        // The index says all the router needs, offers included (those of
        // every queue count toward their agents' capacity), so a pass reads
        // no conversation; it loads one only in the turn that changes it.
        let mut waiting: Vec<Waiting> = index.into_iter().map(waiting_of).collect();
        let mut desk = self.desk(&waiting, now).await?;
        waiting.sort_by_key(|w| {
            let priority = flow.queues.get(&w.queue).map_or(0, |q| q.priority);
            (Reverse(priority), w.since_ms)
        });
        for entry in waiting {
            let Some(settings) = flow.queues.get(&entry.queue) else {
                continue;
            };
            // Another node's conversation (several nodes on one store): it
            // is routed there; it still counted toward agents' capacity.
            if !storage.owns(&entry.key) {
                continue;
            }
            if !due.get(&entry.queue).copied().unwrap_or(false) {
                continue;
            }
            self.route(entry, settings, &mut desk, first, now).await?;
        }
        let mut checked = self.checked.lock().expect("router lock");
        for (queue, was_due) in due {
            if was_due {
                checked.insert(queue, now);
            }
        }
        Ok(())
    }

    async fn desk(&self, waiting: &[Waiting], now: u64) -> Result<Desk, EngineError> {
        let storage = self.engine.storage();
        let mut agents = HashMap::new();
        let mut busy = HashMap::new();
        for agent in storage.agents().await? {
            busy.insert(
                agent.id.clone(),
                storage.assigned_to(&agent.id).await?.len() as u32,
            );
            agents.insert(agent.id.clone(), agent);
        }
        for offer in waiting.iter().filter_map(|w| w.offer.as_ref()) {
            if offer.until_ms > now {
                for agent in &offer.agents {
                    *busy.entry(agent.clone()).or_default() += 1;
                }
            }
        }
        Ok(Desk { agents, busy })
    }

    /// Moves one waiting conversation along: its offer still rings, lapses,
    /// or a new one is made; or it leaves an empty queue.
    async fn route(
        &self,
        mut entry: Waiting,
        queue: &Queue,
        desk: &mut Desk,
        first: bool,
        now: u64,
    ) -> Result<(), EngineError> {
        let ring_ms = queue.agent_ring_time * 1000;
        if let Some(offer) = entry.offer.take() {
            if offer.until_ms > now {
                if first {
                    let agents = offer.agents.clone();
                    self.offer(&entry.key, agents, now + ring_ms, desk, now)
                        .await?;
                }
                return Ok(());
            }
            if self
                .engine
                .router_turn(&entry.key, RouterAction::Lapse)
                .await?
                .is_some()
            {
                entry.passed.extend(offer.agents.iter().cloned());
                for agent in &offer.agents {
                    self.missed(agent, queue, desk, now).await?;
                }
            }
        }
        let online: Vec<&Agent> = desk
            .agents
            .values()
            .filter(|a| a.status == AgentStatus::Online && a.serves(&entry.queue).is_some())
            .collect();
        if online.is_empty() {
            if let (true, Some(destination)) = (queue.leave_when_empty, &queue.when_empty) {
                let action = RouterAction::LeaveEmpty(destination.clone());
                self.engine.router_turn(&entry.key, action).await?;
            }
            return Ok(());
        }
        let candidates = candidates(&online, &entry, queue, desk);
        let chosen = choose(
            queue.ring_strategy,
            queue.sticky_fallback,
            &candidates,
            entry.last_agent.as_deref(),
            uuid::Uuid::new_v4().as_u64_pair().0,
        );
        if !chosen.is_empty() {
            self.offer(&entry.key, chosen, now + ring_ms, desk, now)
                .await?;
        }
        Ok(())
    }

    async fn offer(
        &self,
        key: &str,
        agents: Vec<String>,
        until_ms: u64,
        desk: &mut Desk,
        now: u64,
    ) -> Result<(), EngineError> {
        let action = RouterAction::Offer {
            agents: agents.clone(),
            until_ms,
        };
        if self.engine.router_turn(key, action).await?.is_none() {
            return Ok(());
        }
        for id in agents {
            *desk.busy.entry(id.clone()).or_default() += 1;
            let updated = self
                .engine
                .storage()
                .modify_agent(&id, move |agent| agent.last_offer_ms = now)
                .await?;
            if let Some(agent) = updated {
                desk.agents.insert(id, agent);
            }
        }
        Ok(())
    }

    /// Counts an offer `agent` let lapse; enough in a row set them away.
    async fn missed(
        &self,
        agent: &str,
        queue: &Queue,
        desk: &mut Desk,
        now: u64,
    ) -> Result<(), EngineError> {
        if let Some(busy) = desk.busy.get_mut(agent) {
            *busy = busy.saturating_sub(1);
        }
        let limit = queue.away_after_missed_offers;
        let updated = self
            .engine
            .storage()
            .modify_agent(agent, move |agent| {
                agent.missed_offers += 1;
                if limit > 0 && agent.missed_offers >= limit && agent.status == AgentStatus::Online
                {
                    agent.status = AgentStatus::Away;
                    agent.status_since_ms = now;
                }
            })
            .await?;
        if let Some(agent) = updated {
            if agent.status == AgentStatus::Away && agent.status_since_ms == now {
                tracing::info!(agent = %agent.id, "set away after {} missed offers", agent.missed_offers);
                self.engine.feed().publish(status_news(&agent)).await;
            }
            desk.agents.insert(agent.id.clone(), agent);
        }
        Ok(())
    }
}

/// The feed event of an agent's status.
pub fn status_news(agent: &Agent) -> News {
    News {
        kind: "status",
        agents: vec![agent.id.clone()],
        queue: None,
        data: json!({
            "agent": agent.id,
            "status": agent.status,
            "since_ms": agent.status_since_ms,
            "missed_offers": agent.missed_offers,
        }),
    }
}

fn waiting_of((key, entry): (String, WaitingIn)) -> Waiting {
    let offer = (!entry.offered_to.is_empty()).then_some(Offer {
        agents: entry.offered_to,
        at_ms: 0,
        until_ms: entry.offer_until_ms,
    });
    Waiting {
        key,
        queue: entry.queue,
        since_ms: entry.since_ms,
        offer,
        passed: entry.passed,
        last_agent: entry.last_agent,
    }
}

/// Online agents of the queue with room for one more conversation, except
/// those who passed on this one (unless everyone has).
fn candidates(online: &[&Agent], entry: &Waiting, queue: &Queue, desk: &Desk) -> Vec<Candidate> {
    let with_room: Vec<&&Agent> = online
        .iter()
        .filter(|a| desk.busy.get(&a.id).copied().unwrap_or(0) < queue.max_concurrent_chats)
        .collect();
    let fresh: Vec<&&Agent> = with_room
        .iter()
        .copied()
        .filter(|a| !entry.passed.contains(&a.id))
        .collect();
    let pool = if fresh.is_empty() { with_room } else { fresh };
    pool.into_iter()
        .map(|agent| Candidate {
            id: agent.id.clone(),
            priority: agent.serves(&entry.queue).map_or(0, |m| m.priority),
            busy: desk.busy.get(&agent.id).copied().unwrap_or(0),
            idle_since_ms: agent.last_activity_ms,
            last_offer_ms: agent.last_offer_ms,
        })
        .collect()
}
