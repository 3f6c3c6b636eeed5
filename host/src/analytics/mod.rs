//! Contact-center analytics. A turn records the facts a supervisor counts
//! (a session started, a decision left by a target, a wait ended) in the
//! same storage batch as the turn itself, so each fact is written exactly
//! once, even when a turn runs again after a crash. Reports are computed
//! from those facts ([`report`]), never from logs.

pub mod csv;
pub mod report;

use jiff::civil::Date;
use jiff::tz::TimeZone;

pub use crate::model::fact::{Fact, QueueExit, Record};
use crate::model::{ConversationState, Position};
use crate::storage::{Storage, StorageError};
use report::{Report, Tally};

/// The longest period one report covers, in days.
pub const MAX_DAYS: i32 = 366;

/// The facts a turn's change of position makes: `before` is where the
/// conversation was when the turn began, `state` where the turn leaves it.
/// Facts that only the turn's steps know (decisions, chatbots, replies) are
/// recorded where they happen.
pub fn facts_of_move(
    before: &Position,
    state: &ConversationState,
    connector: &str,
    now_ms: u64,
) -> Vec<Fact> {
    let after = &state.position;
    let mut facts = Vec::new();
    if *before == Position::Start && *after != Position::Start {
        facts.push(Fact::Started {
            connector: connector.to_string(),
        });
    }
    if let Some(fact) = left_queue(before, after, connector, now_ms) {
        facts.push(fact);
    }
    if let Position::WithAgent {
        agent,
        queue,
        since_ms,
    } = before
        && after.agent() != Some(agent.as_str())
    {
        facts.push(Fact::Handled {
            agent: agent.clone(),
            queue: queue.clone(),
            handle_ms: now_ms.saturating_sub(*since_ms),
        });
    }
    if let (None, Position::Queued { queue, .. }) = (before.queue(), after) {
        facts.push(Fact::HandedToQueue {
            connector: connector.to_string(),
            queue: queue.clone(),
        });
    }
    if *before != Position::Ended
        && *after == Position::Ended
        && let Some(ending) = &state.ending
    {
        facts.push(Fact::Ended {
            connector: connector.to_string(),
            terminate: ending.terminate.clone(),
            answered: ending.answered,
            reached_people: state.people_since_ms.is_some(),
        });
    }
    facts
}

/// The end of a wait, if the turn ended one.
fn left_queue(before: &Position, after: &Position, connector: &str, now_ms: u64) -> Option<Fact> {
    let Position::Queued {
        queue, since_ms, ..
    } = before
    else {
        return None;
    };
    let exit = match after {
        Position::Queued { queue: still, .. } if still == queue => return None,
        Position::Queued { .. } => QueueExit::Moved,
        Position::WithAgent { .. } => QueueExit::Taken,
        _ => QueueExit::Abandoned,
    };
    Some(Fact::LeftQueue {
        connector: connector.to_string(),
        queue: queue.clone(),
        waited_ms: now_ms.saturating_sub(*since_ms),
        exit,
    })
}

/// The days a report covers, in a time zone.
#[derive(Clone, Debug)]
pub struct Period {
    pub from: Date,
    pub to: Date,
    pub zone: TimeZone,
    pub zone_name: String,
}

impl Period {
    /// The period a request asks for: `from` and `to` as `YYYY-MM-DD`
    /// (both included; by default the last 7 days up to today), `tz` an
    /// IANA zone name (by default `default_zone`). The error says which
    /// parameter is wrong and why.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        tz: Option<&str>,
        default_zone: &str,
        now_ms: u64,
    ) -> Result<Period, String> {
        let zone_name = tz.unwrap_or(default_zone).to_string();
        let zone = TimeZone::get(&zone_name)
            .map_err(|_| format!("`tz`: `{zone_name}` is not a known IANA time zone"))?;
        let date = |name: &str, value: &str| {
            value
                .parse::<Date>()
                .map_err(|_| format!("`{name}`: `{value}` is not a date (YYYY-MM-DD)"))
        };
        let to = match to {
            Some(value) => date("to", value)?,
            None => report::day_of(now_ms, &zone),
        };
        let from = match from {
            Some(value) => date("from", value)?,
            None => to.saturating_sub(jiff::Span::new().days(6)),
        };
        let days = (to - from).get_days() + 1;
        if days < 1 {
            return Err(format!("`from` ({from}) is after `to` ({to})"));
        }
        if days > MAX_DAYS {
            return Err(format!(
                "the period has {days} days; a report covers at most {MAX_DAYS}"
            ));
        }
        Ok(Period {
            from,
            to,
            zone,
            zone_name,
        })
    }

    /// Its first millisecond, and the first after it.
    fn bounds_ms(&self) -> (u64, u64) {
        let after = self.to.tomorrow().unwrap_or(self.to);
        (
            report::start_of(self.from, &self.zone),
            report::start_of(after, &self.zone),
        )
    }
}

/// The report of `period`, added up from the stored facts.
pub async fn report(storage: &Storage, period: &Period) -> Result<Report, StorageError> {
    let (from_ms, to_ms) = period.bounds_ms();
    let mut tally = Tally::default();
    storage
        .each_fact(from_ms, to_ms, |record| tally.add(record, &period.zone))
        .await?;
    Ok(tally.finish(period.from, period.to, &period.zone_name))
}

/// Removes facts older than `retention_days`, at start and then daily,
/// until `stopped` turns true.
pub async fn prune_daily(
    storage: Storage,
    retention_days: u64,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    use crate::engine::clock::{Clock, SystemClock};
    const DAY_MS: u64 = 24 * 3_600_000;
    loop {
        let before_ms = SystemClock
            .now_ms()
            .saturating_sub(retention_days.saturating_mul(DAY_MS));
        match storage.prune_facts(before_ms).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, retention_days, "analytics facts pruned"),
            Err(e) => tracing::warn!("pruning analytics facts: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(DAY_MS)) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ending;
    use crate::plugin::Contact;

    fn state(position: Position) -> ConversationState {
        let mut state = ConversationState::new("acct", Contact::default(), 1, "en", 1_000);
        state.position = position;
        state
    }

    fn queued(queue: &str, since_ms: u64) -> Position {
        Position::Queued {
            queue: queue.into(),
            since_ms,
            offer: None,
            passed: Vec::new(),
        }
    }

    #[test]
    fn a_session_that_reaches_a_queue_starts_and_is_handed_over() {
        let after = state(queued("sales", 2_000));
        let facts = facts_of_move(&Position::Start, &after, "ig", 2_000);
        assert_eq!(
            facts,
            [
                Fact::Started {
                    connector: "ig".into()
                },
                Fact::HandedToQueue {
                    connector: "ig".into(),
                    queue: "sales".into()
                }
            ]
        );
    }

    #[test]
    fn taking_a_waiting_conversation_ends_its_wait() {
        let after = state(Position::WithAgent {
            queue: "sales".into(),
            agent: "ayse".into(),
            since_ms: 9_000,
        });
        let facts = facts_of_move(&queued("sales", 2_000), &after, "ig", 9_000);
        assert_eq!(
            facts,
            [Fact::LeftQueue {
                connector: "ig".into(),
                queue: "sales".into(),
                waited_ms: 7_000,
                exit: QueueExit::Taken
            }]
        );
    }

    #[test]
    fn an_agent_closing_records_the_handling_and_the_ending() {
        let before = Position::WithAgent {
            queue: "sales".into(),
            agent: "ayse".into(),
            since_ms: 9_000,
        };
        let mut after = state(Position::Ended);
        after.people_since_ms = Some(2_000);
        after.ending = Some(Ending {
            terminate: "agent:ayse".into(),
            cause: "solved".into(),
            queue: Some("sales".into()),
            answered: true,
            at_ms: 15_000,
        });
        let facts = facts_of_move(&before, &after, "ig", 15_000);
        assert_eq!(
            facts,
            [
                Fact::Handled {
                    agent: "ayse".into(),
                    queue: "sales".into(),
                    handle_ms: 6_000
                },
                Fact::Ended {
                    connector: "ig".into(),
                    terminate: "agent:ayse".into(),
                    answered: true,
                    reached_people: true
                }
            ]
        );
    }

    #[test]
    fn a_period_defaults_to_the_last_week_and_says_what_is_wrong() {
        // 2026-11-22 22:30 UTC: already the 23rd in Istanbul.
        let now_ms = 1_795_386_600_000;
        let week = Period::parse(None, None, None, "Europe/Istanbul", now_ms).unwrap();
        assert_eq!(
            (week.from.to_string(), week.to.to_string()),
            ("2026-11-17".into(), "2026-11-23".into())
        );
        let error = |from, to, tz| Period::parse(from, to, tz, "UTC", now_ms).unwrap_err();
        assert!(error(Some("2026-13-01"), None, None).starts_with("`from`:"));
        assert!(error(None, None, Some("Mars/Olympus")).starts_with("`tz`:"));
        assert!(error(Some("2026-11-20"), Some("2026-11-19"), None).contains("after"));
        assert!(error(Some("2024-01-01"), Some("2026-01-01"), None).contains("at most 366"));
    }

    #[test]
    fn staying_in_a_queue_or_moving_within_the_flow_records_nothing() {
        let still = state(queued("sales", 2_000));
        assert!(facts_of_move(&queued("sales", 2_000), &still, "ig", 5_000).is_empty());
        let waiting = state(Position::Waiting {
            tree: "menu".into(),
            decision: "main".into(),
        });
        let before = Position::Waiting {
            tree: "menu".into(),
            decision: "other".into(),
        };
        assert!(facts_of_move(&before, &waiting, "ig", 5_000).is_empty());
    }
}
