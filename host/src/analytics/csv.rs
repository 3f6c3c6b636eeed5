//! A report's sections as CSV, one table per section, for spreadsheets.

use super::report::{Report, Spread};

/// The sections a report has, as `/admin/analytics/{section}.csv` names
/// them.
pub const SECTIONS: &[&str] = &["connectors", "decisions", "chatbots", "queues", "agents"];

/// Section `section` of `report` as CSV (header first); `None` for an
/// unknown section.
pub fn section(report: &Report, section: &str) -> Option<String> {
    let (header, rows): (&[&str], Vec<Vec<String>>) = match section {
        "connectors" => (
            &[
                "connector",
                "day",
                "started",
                "answered",
                "unanswered",
                "ended_by_bot",
                "handed_to_queue",
                "missed",
            ],
            report
                .connectors
                .iter()
                .map(|c| {
                    let mut row = vec![c.connector.clone(), c.day.clone()];
                    row.extend(
                        [
                            c.started,
                            c.answered,
                            c.unanswered,
                            c.ended_by_bot,
                            c.handed_to_queue,
                            c.missed,
                        ]
                        .map(|n| n.to_string()),
                    );
                    row
                })
                .collect(),
        ),
        "decisions" => (
            &[
                "tree",
                "decision",
                "entered",
                "target",
                "left_by_target",
                "dropped",
            ],
            report
                .decisions
                .iter()
                .flat_map(|d| {
                    let head = [d.tree.clone(), d.decision.clone(), d.entered.to_string()];
                    let mut rows: Vec<Vec<String>> = d
                        .left_by
                        .iter()
                        .map(|(target, n)| {
                            let mut row = head.to_vec();
                            row.extend([target.clone(), n.to_string(), String::new()]);
                            row
                        })
                        .collect();
                    let mut dropped = head.to_vec();
                    dropped.extend([String::new(), String::new(), d.dropped.to_string()]);
                    rows.push(dropped);
                    rows
                })
                .collect(),
        ),
        "chatbots" => (
            &["chatbot", "handoffs", "fallbacks", "fallback_reasons"],
            report
                .chatbots
                .iter()
                .map(|c| {
                    let reasons: Vec<String> = c
                        .fallback_reasons
                        .iter()
                        .map(|(reason, n)| format!("{reason}={n}"))
                        .collect();
                    vec![
                        c.chatbot.clone(),
                        c.handoffs.to_string(),
                        c.fallbacks.to_string(),
                        reasons.join(" "),
                    ]
                })
                .collect(),
        ),
        "queues" => (
            &[
                "queue",
                "taken",
                "moved",
                "abandoned",
                "wait_p50_ms",
                "wait_p90_ms",
                "abandoned_after_p50_ms",
                "handle_p50_ms",
                "handle_p90_ms",
            ],
            report
                .queues
                .iter()
                .map(|q| {
                    let mut row = vec![
                        q.queue.clone(),
                        q.taken.to_string(),
                        q.moved.to_string(),
                        q.abandoned.to_string(),
                    ];
                    row.extend(percentiles(&q.wait_ms));
                    row.push(optional(q.abandoned_after_ms.p50));
                    row.extend(percentiles(&q.handle_ms));
                    row
                })
                .collect(),
        ),
        "agents" => (
            &[
                "agent",
                "handled",
                "first_response_p50_ms",
                "first_response_p90_ms",
                "handle_p50_ms",
                "handle_p90_ms",
            ],
            report
                .agents
                .iter()
                .map(|a| {
                    let mut row = vec![a.agent.clone(), a.handled.to_string()];
                    row.extend(percentiles(&a.first_response_ms));
                    row.extend(percentiles(&a.handle_ms));
                    row
                })
                .collect(),
        ),
        _ => return None,
    };
    let mut out = line(header.iter().map(|h| h.to_string()));
    for row in rows {
        out.push_str(&line(row.into_iter()));
    }
    Some(out)
}

fn percentiles(spread: &Spread) -> [String; 2] {
    [optional(spread.p50), optional(spread.p90)]
}

fn optional(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn line(fields: impl Iterator<Item = String>) -> String {
    let fields: Vec<String> = fields.map(|f| field(&f)).collect();
    fields.join(",") + "\r\n"
}

/// One field, quoted when it must be (RFC 4180), and with a leading `'`
/// when a spreadsheet would take it for a formula.
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::report::QueueFigures;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn a_queue_row_has_a_value_for_every_column() {
        let report = Report {
            queues: vec![QueueFigures {
                queue: "sales".into(),
                taken: 2,
                wait_ms: Spread {
                    count: 2,
                    p50: Some(1_000),
                    p90: Some(3_000),
                    max: Some(3_000),
                },
                ..QueueFigures::default()
            }],
            ..Report::default()
        };
        let csv = section(&report, "queues").unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].split(',').count(),
            lines[1].split(',').count(),
            "{csv}"
        );
        assert_eq!(lines[1], "sales,2,0,0,1000,3000,,,");
        assert!(section(&report, "nope").is_none());
    }
}
