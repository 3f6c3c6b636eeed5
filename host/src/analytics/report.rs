//! The numbers a supervisor reads, added up from recorded [`Fact`]s:
//! per connector and day, per decision, per chatbot, per queue and per
//! agent. Days are calendar days in the report's time zone.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::{Fact, QueueExit, Record};

/// A report's figures.
#[derive(Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub time_zone: String,
    /// Per connector and day (days without a session are left out).
    pub connectors: Vec<ConnectorDay>,
    pub decisions: Vec<DecisionFigures>,
    pub chatbots: Vec<ChatbotFigures>,
    pub queues: Vec<QueueFigures>,
    pub agents: Vec<AgentFigures>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConnectorDay {
    pub connector: String,
    pub day: String,
    pub started: u64,
    /// Ended with the terminate's (or the closing agent's) answered flag.
    pub answered: u64,
    pub unanswered: u64,
    /// Ended by the flow without ever reaching a queue.
    pub ended_by_bot: u64,
    pub handed_to_queue: u64,
    /// Left a queue without an agent taking them.
    pub missed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DecisionFigures {
    pub tree: String,
    pub decision: String,
    pub entered: u64,
    /// How many left by each target.
    pub left_by: BTreeMap<String, u64>,
    /// Entered and not (yet) left: the drop-off.
    pub dropped: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChatbotFigures {
    pub chatbot: String,
    pub handoffs: u64,
    pub fallbacks: u64,
    /// Fallbacks by the adapter error's code.
    pub fallback_reasons: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueFigures {
    pub queue: String,
    /// Waits that ended in the period, and how.
    pub taken: u64,
    pub moved: u64,
    pub abandoned: u64,
    /// Wait before an agent took the conversation.
    pub wait_ms: Spread,
    /// Wait before leaving without an agent.
    pub abandoned_after_ms: Spread,
    /// Time agents spent with the queue's conversations.
    pub handle_ms: Spread,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentFigures {
    pub agent: String,
    pub handled: u64,
    pub first_response_ms: Spread,
    pub handle_ms: Spread,
}

/// Percentiles of a set of durations (nearest rank; none when empty).
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Spread {
    pub count: u64,
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub max: Option<u64>,
}

impl Spread {
    fn of(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        let rank = |p: usize| {
            let index = (samples.len() * p).div_ceil(100).max(1) - 1;
            samples.get(index).copied()
        };
        Spread {
            count: samples.len() as u64,
            p50: rank(50),
            p90: rank(90),
            max: samples.last().copied(),
        }
    }
}

/// Adds records up, one at a time, in any order.
#[derive(Default)]
pub struct Tally {
    connectors: BTreeMap<(String, Date), ConnectorDay>,
    decisions: BTreeMap<(String, String), DecisionFigures>,
    chatbots: BTreeMap<String, ChatbotFigures>,
    queues: BTreeMap<String, (QueueFigures, Samples)>,
    agents: BTreeMap<String, (AgentFigures, Samples)>,
}

/// Durations gathered for a queue's or an agent's percentiles.
#[derive(Default)]
struct Samples {
    wait: Vec<u64>,
    abandoned: Vec<u64>,
    handle: Vec<u64>,
    first_response: Vec<u64>,
}

impl Tally {
    pub fn add(&mut self, record: &Record, zone: &TimeZone) {
        let day = day_of(record.at_ms, zone);
        match &record.fact {
            Fact::Started { connector } => self.connector(connector, day).started += 1,
            Fact::HandedToQueue { connector, .. } => {
                self.connector(connector, day).handed_to_queue += 1
            }
            Fact::Ended {
                connector,
                answered,
                reached_people,
                ..
            } => {
                let figures = self.connector(connector, day);
                *if *answered {
                    &mut figures.answered
                } else {
                    &mut figures.unanswered
                } += 1;
                figures.ended_by_bot += u64::from(!reached_people);
            }
            Fact::DecisionEntered { tree, decision } => self.decision(tree, decision).entered += 1,
            Fact::DecisionLeft {
                tree,
                decision,
                target,
            } => {
                *self
                    .decision(tree, decision)
                    .left_by
                    .entry(target.clone())
                    .or_default() += 1
            }
            Fact::ChatbotHandoff { chatbot, .. } => self.chatbot(chatbot).handoffs += 1,
            Fact::ChatbotFallback { chatbot, reason } => {
                let figures = self.chatbot(chatbot);
                figures.fallbacks += 1;
                *figures.fallback_reasons.entry(reason.clone()).or_default() += 1;
            }
            Fact::LeftQueue {
                connector,
                queue,
                waited_ms,
                exit,
            } => self.left_queue(connector, queue, day, *waited_ms, *exit),
            Fact::FirstReply {
                agent, after_ms, ..
            } => self.agent(agent).1.first_response.push(*after_ms),
            Fact::Handled {
                agent,
                queue,
                handle_ms,
            } => {
                let (figures, samples) = self.agent(agent);
                figures.handled += 1;
                samples.handle.push(*handle_ms);
                self.queue(queue).1.handle.push(*handle_ms);
            }
        }
    }

    fn left_queue(
        &mut self,
        connector: &str,
        queue: &str,
        day: Date,
        waited: u64,
        exit: QueueExit,
    ) {
        let (figures, samples) = self.queue(queue);
        match exit {
            QueueExit::Taken => {
                figures.taken += 1;
                samples.wait.push(waited);
            }
            QueueExit::Moved => figures.moved += 1,
            QueueExit::Abandoned => {
                figures.abandoned += 1;
                samples.abandoned.push(waited);
            }
        }
        if exit == QueueExit::Abandoned {
            self.connector(connector, day).missed += 1;
        }
    }

    fn connector(&mut self, connector: &str, day: Date) -> &mut ConnectorDay {
        self.connectors
            .entry((connector.to_string(), day))
            .or_insert_with(|| ConnectorDay {
                connector: connector.to_string(),
                day: day.to_string(),
                ..ConnectorDay::default()
            })
    }

    fn decision(&mut self, tree: &str, decision: &str) -> &mut DecisionFigures {
        self.decisions
            .entry((tree.to_string(), decision.to_string()))
            .or_insert_with(|| DecisionFigures {
                tree: tree.to_string(),
                decision: decision.to_string(),
                ..DecisionFigures::default()
            })
    }

    fn chatbot(&mut self, chatbot: &str) -> &mut ChatbotFigures {
        self.chatbots
            .entry(chatbot.to_string())
            .or_insert_with(|| ChatbotFigures {
                chatbot: chatbot.to_string(),
                ..ChatbotFigures::default()
            })
    }

    fn queue(&mut self, queue: &str) -> &mut (QueueFigures, Samples) {
        self.queues.entry(queue.to_string()).or_insert_with(|| {
            let figures = QueueFigures {
                queue: queue.to_string(),
                ..QueueFigures::default()
            };
            (figures, Samples::default())
        })
    }

    fn agent(&mut self, agent: &str) -> &mut (AgentFigures, Samples) {
        self.agents.entry(agent.to_string()).or_insert_with(|| {
            let figures = AgentFigures {
                agent: agent.to_string(),
                ..AgentFigures::default()
            };
            (figures, Samples::default())
        })
    }

    /// The report for days `from` to `to` in `zone`, named `zone_name`.
    pub fn finish(self, from: Date, to: Date, zone_name: &str) -> Report {
        Report {
            from: from.to_string(),
            to: to.to_string(),
            time_zone: zone_name.to_string(),
            connectors: self.connectors.into_values().collect(),
            decisions: self
                .decisions
                .into_values()
                .map(|mut d| {
                    d.dropped = d.entered.saturating_sub(d.left_by.values().sum());
                    d
                })
                .collect(),
            chatbots: self.chatbots.into_values().collect(),
            queues: self
                .queues
                .into_values()
                .map(|(mut figures, samples)| {
                    figures.wait_ms = Spread::of(samples.wait);
                    figures.abandoned_after_ms = Spread::of(samples.abandoned);
                    figures.handle_ms = Spread::of(samples.handle);
                    figures
                })
                .collect(),
            agents: self
                .agents
                .into_values()
                .map(|(mut figures, samples)| {
                    figures.first_response_ms = Spread::of(samples.first_response);
                    figures.handle_ms = Spread::of(samples.handle);
                    figures
                })
                .collect(),
        }
    }
}

/// The calendar day of `at_ms` in `zone`.
pub fn day_of(at_ms: u64, zone: &TimeZone) -> Date {
    jiff::Timestamp::from_millisecond(at_ms as i64)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(zone.clone())
        .date()
}

/// The first millisecond of `day` in `zone`.
pub fn start_of(day: Date, zone: &TimeZone) -> u64 {
    day.to_zoned(zone.clone())
        .map(|z| z.timestamp().as_millisecond().max(0) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: u64, fact: Fact) -> Record {
        Record {
            at_ms,
            conversation: "c".into(),
            fact,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let spread = Spread::of((1..=10).rev().collect());
        assert_eq!(
            (spread.count, spread.p50, spread.p90, spread.max),
            (10, Some(5), Some(9), Some(10))
        );
        assert_eq!(Spread::of(vec![]).p50, None);
        assert_eq!(Spread::of(vec![7]).p90, Some(7));
    }

    #[test]
    fn days_split_at_the_zones_midnight() {
        let istanbul = TimeZone::get("Europe/Istanbul").unwrap();
        // 2026-11-22 22:30 UTC is 01:30 on the 23rd in Istanbul (UTC+3).
        let at = jiff::Timestamp::from_second(1_795_386_600).unwrap();
        assert_eq!(at.to_string(), "2026-11-22T22:30:00Z");
        let at_ms = at.as_millisecond() as u64;
        let mut tally = Tally::default();
        let started = Fact::Started {
            connector: "ig".into(),
        };
        tally.add(&record(at_ms, started.clone()), &istanbul);
        tally.add(&record(at_ms, started), &TimeZone::UTC);
        let report = tally.finish(
            jiff::civil::date(2026, 11, 22),
            jiff::civil::date(2026, 11, 23),
            "mixed",
        );
        let days: Vec<_> = report.connectors.iter().map(|c| c.day.as_str()).collect();
        assert_eq!(days, ["2026-11-22", "2026-11-23"]);
        let istanbul_day = jiff::civil::date(2026, 11, 23);
        assert_eq!(start_of(istanbul_day, &istanbul), at_ms - 90 * 60 * 1000);
    }

    #[test]
    fn a_decision_drops_what_it_does_not_pass_on() {
        let mut tally = Tally::default();
        let entered = Fact::DecisionEntered {
            tree: "menu".into(),
            decision: "main".into(),
        };
        for _ in 0..3 {
            tally.add(&record(0, entered.clone()), &TimeZone::UTC);
        }
        let left = Fact::DecisionLeft {
            tree: "menu".into(),
            decision: "main".into(),
            target: "orders".into(),
        };
        tally.add(&record(0, left), &TimeZone::UTC);
        let day = jiff::civil::date(1970, 1, 1);
        let report = tally.finish(day, day, "UTC");
        assert_eq!(report.decisions[0].entered, 3);
        assert_eq!(report.decisions[0].left_by["orders"], 1);
        assert_eq!(report.decisions[0].dropped, 2);
    }
}
