//! What an operator sees: `/metrics` after a scripted set of conversations
//! through the webhook path, and `/readyz` turning not ready while the
//! Graph API refuses every send and ready again when it recovers.
//!
//! One test binary with one test: the metrics recorder is per process, so
//! counters here are this script's alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

const IG_ID: &str = "17841400000000201";
const SECRET: &str = "observability-secret";

fn flow(graph: &str) -> String {
    format!(
        r#"
default_language: en
accounts:
  shop-ig:
    channel: instagram
    ig_user_id: "{IG_ID}"
    access_token: graph-token
    api_base_url: {graph}
    app_secret: {SECRET}
    verify_token: verify-me
connectors:
  dm: {{ title: DMs, account: shop-ig, next: {{ decision_tree: menu }} }}
decision_trees:
  menu:
    start: ask
    decisions:
      ask:
        actions:
          - action: save-data
            config: {{ key: seen, value: true }}
        prompt: {{ text: "Type sales to reach a person." }}
        targets:
          - {{ when: pattern, pattern: "^sales$", go: {{ queue: sales }} }}
queues:
  sales: {{ name: Sales, welcome_message: {{ text: "You are in line." }} }}
"#
    )
}

/// A Graph API stand-in that answers 500 while `down` is set.
async fn graph(down: Arc<AtomicBool>) -> (Arc<std::sync::Mutex<Vec<Value>>>, String) {
    let sent: Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let log = sent.clone();
    let router = axum::Router::new().route(
        "/v23.0/{ig_id}/messages",
        post(move |Json(body): Json<Value>| {
            let (log, down) = (log.clone(), down.clone());
            async move {
                if down.load(Ordering::SeqCst) {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
                }
                let mut log = log.lock().unwrap();
                log.push(body.clone());
                Json(json!({"recipient_id": body["recipient"]["id"], "message_id": format!("m{}", log.len())}))
                    .into_response()
            }
        }),
    );
    (
        sent,
        format!("http://{}", flowhost_tests::serve(router).await),
    )
}

/// Every sample of the text format as `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_a_scripted_day_and_readiness_follows_the_graph_api() {
    let down = Arc::new(AtomicBool::new(false));
    let (sent, graph_url) = graph(down.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = flowhost_tests::server_config(dir.path(), &flow(&graph_url));
    let server = flowhost::app::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let deliver = |customer: &'static str, mid: &'static str, text: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let message = json!({"mid": mid, "text": text});
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            flowhost_tests::instagram::deliver_message(
                &http, &base, SECRET, IG_ID, customer, message, now,
            )
            .await
        }
    };

    // The script: two customers, one delivery repeated, one forged.
    assert_eq!(deliver("c1", "m-1", "hello").await, 200);
    assert_eq!(
        deliver("c1", "m-1", "hello").await,
        200,
        "a duplicate is acknowledged"
    );
    assert_eq!(deliver("c2", "m-2", "hi").await, 200);
    assert_eq!(deliver("c1", "m-3", "sales").await, 200);
    let forged = http
        .post(format!("{base}/webhooks/instagram"))
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(r#"{"object":"instagram","entry":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // c1: prompt, then the queue's welcome; c2: prompt.
    eventually("three replies were sent", || async {
        (sent.lock().unwrap().len() == 3).then_some(())
    })
    .await;

    let scrape = |token: Option<&'static str>| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut request = http.get(format!("{base}/metrics"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(scrape(None).await.0, 401);
    assert_eq!(scrape(Some("not-the-token")).await.0, 401);
    let metrics = eventually("the turns were counted", || async {
        let (status, text) = scrape(Some(flowhost_tests::ADMIN_TOKEN)).await;
        assert_eq!(status, 200);
        let samples = samples(&text);
        let turns: f64 = samples
            .iter()
            .filter(|(k, _)| k.starts_with("flowhost_turns_total"))
            .map(|(_, v)| v)
            .sum();
        (turns == 3.0).then_some(samples)
    })
    .await;
    let at = |key: &str| {
        metrics
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in {metrics:#?}"))
    };
    assert_eq!(
        at(r#"flowhost_webhooks_total{channel="instagram",outcome="accepted"}"#),
        3.0
    );
    assert_eq!(
        at(r#"flowhost_webhooks_total{channel="instagram",outcome="duplicate"}"#),
        1.0
    );
    assert_eq!(
        at(r#"flowhost_webhooks_total{channel="instagram",outcome="refused"}"#),
        1.0
    );
    assert_eq!(
        at(r#"flowhost_events_accepted_total{channel="instagram"}"#),
        3.0
    );
    assert_eq!(at(r#"flowhost_turns_total{position="waiting"}"#), 2.0);
    assert_eq!(at(r#"flowhost_turns_total{position="queued"}"#), 1.0);
    assert_eq!(at(r#"flowhost_turn_seconds_count"#), 3.0);
    assert_eq!(
        at(r#"flowhost_plugin_calls_total{plugin="save-data",outcome="ok"}"#),
        2.0
    );
    assert_eq!(
        at(r#"flowhost_plugin_call_seconds_count{plugin="save-data"}"#),
        2.0
    );
    assert_eq!(
        at(r#"flowhost_sends_total{account="shop-ig",outcome="sent"}"#),
        3.0
    );
    assert_eq!(at(r#"flowhost_build_info{version="0.1.0"}"#), 1.0);
    // c1 waits in sales; nobody is an agent yet.
    assert_eq!(at(r#"flowhost_queue_waiting{queue="sales"}"#), 1.0);
    assert!(at(r#"flowhost_queue_oldest_wait_seconds{queue="sales"}"#) >= 0.0);
    assert_eq!(at(r#"flowhost_agents{status="online"}"#), 0.0);
    assert!(at("flowhost_storage_flushes_total") >= 1.0);
    assert!(at("flowhost_storage_durable_writes_total") >= at("flowhost_storage_flushes_total"));
    assert!(at("flowhost_storage_bytes") > 0.0);
    // Everything was handled and sent.
    assert_eq!(at("flowhost_inbox_events"), 0.0);
    assert_eq!(at("flowhost_inbox_oldest_age_seconds"), 0.0);
    assert_eq!(at("flowhost_outbox_messages"), 0.0);
    // Millisecond-scale buckets.
    assert!(
        metrics.contains_key(r#"flowhost_turn_seconds_bucket{le="0.001"}"#),
        "{metrics:#?}"
    );

    // The Graph API refuses every send: not ready, saying why; then back.
    let readyz = || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let response = http.get(format!("{base}/readyz")).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(readyz().await, (200, "ready".to_string()));
    down.store(true, Ordering::SeqCst);
    assert_eq!(deliver("c3", "m-4", "hello").await, 200);
    let (_, why) = eventually("readiness failed", || async {
        let (status, body) = readyz().await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert!(
        why.contains("account `shop-ig`: the last 5 send attempts failed"),
        "{why}"
    );
    assert!(why.contains("HTTP 500"), "{why}");
    // c3's prompt waits in the outbox while its send is retried (16
    // attempts, minutes of back-off, before it would fail for good).
    let (_, text) = scrape(Some(flowhost_tests::ADMIN_TOKEN)).await;
    assert_eq!(samples(&text)["flowhost_outbox_messages"], 1.0, "{text}");
    down.store(false, Ordering::SeqCst);
    eventually("ready again", || async {
        (readyz().await.0 == 200).then_some(())
    })
    .await;
    let (_, text) = scrape(Some(flowhost_tests::ADMIN_TOKEN)).await;
    let samples = samples(&text);
    assert!(samples[r#"flowhost_sends_total{account="shop-ig",outcome="retry"}"#] >= 5.0);
    eventually("the outbox emptied", || async {
        let (_, text) = scrape(Some(flowhost_tests::ADMIN_TOKEN)).await;
        (self::samples(&text)["flowhost_outbox_messages"] == 0.0).then_some(())
    })
    .await;
    server.stop().await.unwrap();
}
