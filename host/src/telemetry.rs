//! Prometheus metrics, recorded with the `metrics` facade where things
//! happen and rendered at `GET /metrics`. Every name is declared here, with
//! its unit and meaning, so the list is the documentation.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Webhook deliveries, by `channel` and `outcome` (`accepted`,
/// `duplicate`, `refused`, `unreadable`, `no_flow`, `failed`).
pub const WEBHOOKS: &str = "flowhost_webhooks_total";
/// Events a delivery carried and the inbox took, by `channel`.
pub const EVENTS_ACCEPTED: &str = "flowhost_events_accepted_total";
/// Turns committed, by the `position` the conversation is left at.
pub const TURNS: &str = "flowhost_turns_total";
/// A turn's time from loading the conversation to its commit, seconds.
pub const TURN_SECONDS: &str = "flowhost_turn_seconds";
/// Plugin calls, by `plugin` and `outcome` (`ok` or the error's code).
pub const PLUGIN_CALLS: &str = "flowhost_plugin_calls_total";
/// A plugin call's time, seconds, by `plugin`.
pub const PLUGIN_CALL_SECONDS: &str = "flowhost_plugin_call_seconds";
/// Send API attempts, by `account` and `outcome` (`sent`, `retry`,
/// `failed`, `uncertain`).
pub const SENDS: &str = "flowhost_sends_total";
/// Chatbot callbacks, by `chatbot` and `outcome` (`accepted`, `duplicate`,
/// `refused`, `moved_on`, `unreadable`, `busy`, `rate_limited`).
pub const CHATBOT_CALLBACKS: &str = "flowhost_chatbot_callbacks_total";
/// Conversations a chatbot sent to its fallback, by `chatbot` and `reason`
/// (the adapter error's code).
pub const CHATBOT_FALLBACKS: &str = "flowhost_chatbot_fallbacks_total";
/// Hand-offs from a chatbot to a queue, by `chatbot` and `queue`.
pub const CHATBOT_HANDOFFS: &str = "flowhost_chatbot_handoffs_total";
/// Flushes of the storage's group commit since start.
pub const STORAGE_FLUSHES: &str = "flowhost_storage_flushes_total";
/// Durable writes those flushes answered (writes per flush = batch size).
pub const STORAGE_DURABLE_WRITES: &str = "flowhost_storage_durable_writes_total";
/// Requests the storage thread ran since start (each a round trip).
pub const STORAGE_REQUESTS: &str = "flowhost_storage_requests_total";
/// The most writes one flush answered since start.
pub const STORAGE_LARGEST_BATCH: &str = "flowhost_storage_largest_batch";
/// Bytes the database takes on disk.
pub const STORAGE_BYTES: &str = "flowhost_storage_bytes";
/// Inbound events accepted and not yet handled (counted up to
/// `BACKLOG_CAP`).
pub const INBOX_EVENTS: &str = "flowhost_inbox_events";
/// Age of the oldest event in the inbox by the channel's timestamp,
/// seconds (0 when the inbox is empty).
pub const INBOX_OLDEST_AGE: &str = "flowhost_inbox_oldest_age_seconds";
/// Replies waiting to be sent (counted up to `BACKLOG_CAP`).
pub const OUTBOX_MESSAGES: &str = "flowhost_outbox_messages";
/// Conversations waiting in each queue, by `queue`.
pub const QUEUE_WAITING: &str = "flowhost_queue_waiting";
/// How long the longest-waiting conversation of each queue has waited,
/// seconds, by `queue`.
pub const QUEUE_OLDEST_WAIT: &str = "flowhost_queue_oldest_wait_seconds";
/// Agents by `status` (`online`, `away`, `offline`, `break`).
pub const AGENTS: &str = "flowhost_agents";
/// Always 1, with the `version` label.
pub const BUILD_INFO: &str = "flowhost_build_info";

/// Latency buckets from half a millisecond to half a minute: turns and
/// plugin calls are milliseconds, a slow bot or API seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls reuse it) and
/// returns the handle `/metrics` renders.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        metrics::describe_counter!(WEBHOOKS, "Webhook deliveries, by channel and outcome");
        metrics::describe_counter!(EVENTS_ACCEPTED, "Events accepted into the inbox");
        metrics::describe_counter!(TURNS, "Turns committed, by resulting position");
        metrics::describe_histogram!(TURN_SECONDS, metrics::Unit::Seconds, "Turn latency");
        metrics::describe_counter!(PLUGIN_CALLS, "Plugin calls, by plugin and outcome");
        metrics::describe_histogram!(
            PLUGIN_CALL_SECONDS,
            metrics::Unit::Seconds,
            "Plugin call latency"
        );
        metrics::describe_counter!(SENDS, "Send attempts, by account and outcome");
        metrics::describe_counter!(CHATBOT_CALLBACKS, "Chatbot callbacks, by outcome");
        metrics::describe_counter!(CHATBOT_FALLBACKS, "Chatbot fallbacks, by reason");
        metrics::describe_counter!(CHATBOT_HANDOFFS, "Chatbot hand-offs to queues");
        metrics::describe_gauge!(INBOX_EVENTS, "Inbound events waiting for their turn");
        metrics::describe_gauge!(OUTBOX_MESSAGES, "Replies waiting to be sent");
        metrics::describe_gauge!(
            INBOX_OLDEST_AGE,
            metrics::Unit::Seconds,
            "Age of the oldest waiting inbound event"
        );
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// The most inbox events or outbox messages a scrape counts: a scrape
/// costs at most this much of the storage thread.
pub const BACKLOG_CAP: usize = 10_000;

/// Sets the storage's figures, read at scrape time (they are kept by the
/// storage itself, so nothing is counted twice).
pub async fn observe_storage(storage: &crate::storage::Storage, now_ms: u64) {
    match storage.backlog(BACKLOG_CAP).await {
        Ok(backlog) => {
            metrics::gauge!(INBOX_EVENTS).set(backlog.inbox as f64);
            metrics::gauge!(OUTBOX_MESSAGES).set(backlog.outbox as f64);
            let written_ms = backlog.oldest_event.as_deref().and_then(event_time_ms);
            let age_ms = written_ms.map_or(0, |at| now_ms.saturating_sub(at));
            metrics::gauge!(INBOX_OLDEST_AGE).set(age_ms as f64 / 1000.0);
        }
        Err(e) => tracing::warn!("reading the backlog: {e}"),
    }
    let stats = storage.commit_stats();
    metrics::counter!(STORAGE_FLUSHES).absolute(stats.flushes);
    metrics::counter!(STORAGE_DURABLE_WRITES).absolute(stats.durable_writes);
    metrics::gauge!(STORAGE_LARGEST_BATCH).set(stats.largest_batch as f64);
    metrics::counter!(STORAGE_REQUESTS).absolute(stats.requests);
    match storage.size_on_disk().await {
        Ok(bytes) => metrics::gauge!(STORAGE_BYTES).set(bytes as f64),
        Err(e) => tracing::warn!("reading the database's size: {e}"),
    }
}

/// Sets the queues' and agents' gauges from the waiting index and the
/// agents, read at scrape time. `queues` are the flow's, so an empty queue
/// reads 0 rather than vanishing.
pub async fn observe_people(storage: &crate::storage::Storage, queues: &[String], now_ms: u64) {
    use crate::model::agent::AgentStatus;
    use std::collections::BTreeMap;
    let waiting = match storage.waiting().await {
        Ok(waiting) => waiting,
        Err(e) => return tracing::warn!("reading the waiting index: {e}"),
    };
    let mut by_queue: BTreeMap<&str, (u64, u64)> =
        queues.iter().map(|q| (q.as_str(), (0, 0))).collect();
    for (_, entry) in &waiting {
        if let Some((count, oldest)) = by_queue.get_mut(entry.queue.as_str()) {
            *count += 1;
            *oldest = (*oldest).max(now_ms.saturating_sub(entry.since_ms));
        }
    }
    for (queue, (count, oldest_ms)) in by_queue {
        metrics::gauge!(QUEUE_WAITING, "queue" => queue.to_string()).set(count as f64);
        metrics::gauge!(QUEUE_OLDEST_WAIT, "queue" => queue.to_string())
            .set(oldest_ms as f64 / 1000.0);
    }
    let agents = match storage.agents().await {
        Ok(agents) => agents,
        Err(e) => return tracing::warn!("reading the agents: {e}"),
    };
    let mut by_status: BTreeMap<&str, u64> = ["online", "away", "offline", "break"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for agent in &agents {
        let status = match agent.status {
            AgentStatus::Online => "online",
            AgentStatus::Away => "away",
            AgentStatus::Offline => "offline",
            AgentStatus::Break(_) => "break",
        };
        *by_status.entry(status).or_default() += 1;
    }
    for (status, count) in by_status {
        metrics::gauge!(AGENTS, "status" => status).set(count as f64);
    }
}

/// The position's name, as turn metrics label it.
pub fn position_label(position: &crate::model::Position) -> &'static str {
    use crate::model::Position;
    match position {
        Position::Start => "start",
        Position::Waiting { .. } => "waiting",
        Position::Automessage { .. } => "automessage",
        Position::Chatbot { .. } => "chatbot",
        Position::Queued { .. } => "queued",
        Position::WithAgent { .. } => "with_agent",
        Position::Ended => "ended",
    }
}

/// When the channel says an inbox record's event was written.
fn event_time_ms(record: &[u8]) -> Option<u64> {
    let record: crate::intake::InboxRecord = serde_json::from_slice(record).ok()?;
    (record.message.timestamp_ms > 0).then_some(record.message.timestamp_ms)
}
