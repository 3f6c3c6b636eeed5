//! Concurrent delivery, as Meta and Connexease deliver: 64 connections post
//! 5,000 signed webhooks for 500 conversations on 8 accounts; every 10th
//! conversation's flow calls a slow service. Every webhook is acknowledged,
//! `/healthz` answers throughout, every message is answered exactly once
//! and in order, and the conversations that never touch the slow service
//! are all answered while it still holds every slow one: a slow
//! conversation holds up nobody else. Correctness only; no timings.

use std::time::{Duration, Instant};

use flowhost::plugin::{HttpPolicy, Limits, PluginSettings};
use flowhost_tests::stress::{Channel, HealthWatch, Scenario, StandIns, differences, drive};

const CONVERSATIONS: usize = 500;
const MESSAGES: usize = 10;
const CONNECTIONS: usize = 64;

fn scenario(channel: Channel) -> Scenario {
    Scenario {
        channel,
        accounts: 8,
        conversations: CONVERSATIONS,
        messages: MESSAGES,
        slow_every: 10,
        run: "stress".into(),
    }
}

/// The request plugin may reach the loopback slow service and wait for it
/// as long as the test holds it.
pub fn stress_config(dir: &std::path::Path, flow: &str) -> flowhost::config::ServerConfig {
    let mut config = flowhost_tests::server_config(dir, flow);
    config.runtime.max_concurrent_calls = 96;
    config.intake.max_turns = 96;
    config.plugins.insert(
        "request".into(),
        PluginSettings {
            http: HttpPolicy {
                allowed_hosts: vec!["127.0.0.1".into()],
                allow_private_networks: true,
            },
            limits: Limits {
                call_timeout_ms: 600_000,
                http_timeout_ms: 600_000,
                ..Limits::default()
            },
        },
    );
    config
}

async fn concurrent_delivery(channel: Channel) {
    let scenario = scenario(channel);
    let (stand_ins, api) = StandIns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = stress_config(dir.path(), &scenario.flow_yaml(&api, &api));
    let server = flowhost::app::start(config)
        .await
        .expect("the server starts");
    let base = format!("http://{}", server.addr);
    let health = HealthWatch::start(&base);
    let deadline = Instant::now() + Duration::from_secs(300);

    let all: Vec<usize> = (0..CONVERSATIONS).collect();
    let report = drive(&base, &scenario, all.clone(), CONNECTIONS, deadline).await;
    assert_eq!(
        report.acknowledged,
        CONVERSATIONS * MESSAGES,
        "every webhook is acknowledged"
    );
    assert_eq!(report.refused, 0, "no delivery was refused");

    // The slow service holds every slow conversation at its second message;
    // all the others finish meanwhile.
    let (slow, fast): (Vec<usize>, Vec<usize>) = all.iter().partition(|c| scenario.is_slow(**c));
    let before_gate = fast.len() * MESSAGES + slow.len();
    stand_ins.wait_for_replies(before_gate, deadline).await;
    let replies = stand_ins.replies();
    let wrong = differences(&scenario, fast.iter().copied(), &replies);
    assert!(
        wrong.is_empty(),
        "{} fast conversations wrong, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    for c in &slow {
        assert_eq!(
            replies.get(&scenario.customer(*c)).map(Vec::len),
            Some(1),
            "a slow conversation got past the held service"
        );
    }

    stand_ins.open_gate();
    let total = CONVERSATIONS * MESSAGES;
    stand_ins.wait_for_replies(total, deadline).await;
    // A little longer: anything sent twice would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wrong = differences(&scenario, all.into_iter(), &stand_ins.replies());
    assert!(
        wrong.is_empty(),
        "{} conversations wrong, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    assert_eq!(stand_ins.reply_count(), total, "no reply was sent twice");

    let (probes, failed) = health.finish().await;
    assert!(probes > 0);
    assert_eq!(failed, 0, "/healthz failed {failed} of {probes} probes");
    let stats = server.storage.commit_stats();
    eprintln!(
        "{channel:?}: {} flushes for {} durable writes (largest batch {})",
        stats.flushes, stats.durable_writes, stats.largest_batch
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instagram_under_concurrent_delivery() {
    concurrent_delivery(Channel::Instagram).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connexease_under_concurrent_delivery() {
    concurrent_delivery(Channel::Connexease).await;
}
