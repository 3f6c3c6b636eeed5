//! Ring strategies: which of the eligible agents a waiting conversation is
//! offered to. Pure functions of the candidates, so each strategy is tested
//! on its own with made-up agents.

use crate::flow::model::RingStrategy;

/// An agent who may be offered the conversation now.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: String,
    /// The agent's priority in this queue: higher is offered first.
    pub priority: u8,
    /// Conversations they answer, plus offers ringing for them.
    pub busy: u32,
    /// Start of their idle time.
    pub idle_since_ms: u64,
    /// When they were last offered anything.
    pub last_offer_ms: u64,
}

/// The agents to ring. Only the candidates of the highest priority present
/// are considered; `random` is any number (the caller's randomness).
pub fn choose(
    strategy: RingStrategy,
    fallback: RingStrategy,
    candidates: &[Candidate],
    last_agent: Option<&str>,
    random: u64,
) -> Vec<String> {
    let Some(top) = candidates.iter().map(|c| c.priority).max() else {
        return Vec::new();
    };
    let mut tier: Vec<&Candidate> = candidates.iter().filter(|c| c.priority == top).collect();
    // A stable order first, so every tie breaks the same way.
    tier.sort_by(|a, b| a.id.cmp(&b.id));
    let pick = |c: Option<&&Candidate>| c.map(|c| vec![c.id.clone()]).unwrap_or_default();
    match strategy {
        RingStrategy::Sticky => {
            match last_agent.and_then(|a| candidates.iter().find(|c| c.id == a)) {
                Some(sticky) => vec![sticky.id.clone()],
                None if fallback == RingStrategy::Sticky => Vec::new(),
                None => choose(fallback, fallback, candidates, None, random),
            }
        }
        RingStrategy::RingAll => tier.iter().map(|c| c.id.clone()).collect(),
        RingStrategy::Random => pick(tier.get((random % tier.len() as u64) as usize)),
        RingStrategy::RoundRobin => pick(tier.iter().min_by_key(|c| c.last_offer_ms)),
        RingStrategy::LongestIdle => {
            pick(tier.iter().min_by_key(|c| (c.busy > 0, c.idle_since_ms)))
        }
        RingStrategy::LeastBusy => pick(tier.iter().min_by_key(|c| (c.busy, c.idle_since_ms))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RingStrategy::*;

    fn agent(id: &str, busy: u32, idle_since_ms: u64, last_offer_ms: u64) -> Candidate {
        Candidate {
            id: id.into(),
            priority: 0,
            busy,
            idle_since_ms,
            last_offer_ms,
        }
    }

    fn three() -> Vec<Candidate> {
        vec![
            agent("ana", 2, 100, 300),
            agent("bo", 0, 500, 100),
            agent("cem", 1, 50, 200),
        ]
    }

    #[test]
    fn round_robin_rings_whoever_was_offered_least_recently() {
        assert_eq!(choose(RoundRobin, RoundRobin, &three(), None, 0), ["bo"]);
    }

    #[test]
    fn longest_idle_prefers_free_agents_then_the_longest_idle() {
        assert_eq!(choose(LongestIdle, RoundRobin, &three(), None, 0), ["bo"]);
        let all_busy = vec![agent("ana", 2, 100, 0), agent("cem", 1, 50, 0)];
        assert_eq!(choose(LongestIdle, RoundRobin, &all_busy, None, 0), ["cem"]);
    }

    #[test]
    fn least_busy_rings_the_fewest_conversations() {
        assert_eq!(choose(LeastBusy, RoundRobin, &three(), None, 0), ["bo"]);
        let tie = vec![agent("ana", 1, 100, 0), agent("cem", 1, 50, 0)];
        assert_eq!(choose(LeastBusy, RoundRobin, &tie, None, 0), ["cem"]);
    }

    #[test]
    fn ring_all_rings_everyone_and_random_any_one() {
        assert_eq!(
            choose(RingAll, RoundRobin, &three(), None, 0),
            ["ana", "bo", "cem"]
        );
        let picked: std::collections::BTreeSet<Vec<String>> = (0..3)
            .map(|r| choose(Random, RoundRobin, &three(), None, r))
            .collect();
        assert_eq!(picked.len(), 3, "each agent can be picked");
    }

    #[test]
    fn sticky_rings_the_last_agent_or_falls_back() {
        assert_eq!(choose(Sticky, LeastBusy, &three(), Some("ana"), 0), ["ana"]);
        assert_eq!(choose(Sticky, LeastBusy, &three(), Some("dee"), 0), ["bo"]);
        assert_eq!(choose(Sticky, LeastBusy, &three(), None, 0), ["bo"]);
    }

    #[test]
    fn a_higher_priority_agent_is_rung_first() {
        let mut agents = three();
        agents[0].priority = 5;
        assert_eq!(choose(RingAll, RoundRobin, &agents, None, 0), ["ana"]);
        assert!(choose(RoundRobin, RoundRobin, &[], None, 0).is_empty());
    }
}
