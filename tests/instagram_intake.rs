//! Instagram webhooks into the running server: verification, signatures,
//! durable and deduplicated intake, and the flow answering into the outbox.
//! (Sending the outbox through the Send API is not built yet.)

use std::time::{Duration, Instant};

use flowhost::app::Server;
use flowhost::channels::instagram::signature::sign;
use flowhost::config::ServerConfig;
use flowhost::engine::state::Position;
use flowhost::plugin::{HttpPolicy, PluginSettings};
use serde_json::{Value, json};

const IG_ID: &str = "17841400000000001";
const SECRET: &str = "test-app-secret";

/// The example flow, always open, with literal secrets.
async fn start(dir: &std::path::Path) -> Server {
    let flow = include_str!("../examples/shop-support.yaml")
        .replace(
            "next: { time_condition: business-hours }",
            "next: { decision_tree: support }",
        )
        .replace("env:SHOP_IG_APP_SECRET", SECRET)
        .replace("env:SHOP_IG_VERIFY_TOKEN", "verify-me");
    let flow_path = dir.join("flow.yaml");
    std::fs::write(&flow_path, flow).unwrap();
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        flow: Some(flow_path),
        admin_token: Some("admin".into()),
        ..ServerConfig::default()
    };
    config.runtime.max_concurrent_calls = 8;
    config.runtime.cache_dir = Some(flowhost_tests::shared_cache_dir());
    config.plugins.insert(
        "request".into(),
        PluginSettings {
            http: HttpPolicy {
                allowed_hosts: vec!["127.0.0.1".into()],
                allow_private_networks: true,
            },
            ..Default::default()
        },
    );
    flowhost::app::start(config)
        .await
        .expect("the server starts")
}

fn webhook(items: Vec<Value>) -> Vec<u8> {
    json!({"object": "instagram", "entry": [{"id": IG_ID, "time": 1_700_000_000_000u64, "messaging": items}]}).to_string().into_bytes()
}

fn message(customer: &str, mid: &str, ts: u64, body: Value) -> Value {
    json!({"sender": {"id": customer}, "recipient": {"id": IG_ID}, "timestamp": ts, "message": {"mid": mid}})
        .as_object()
        .cloned()
        .map(|mut item| {
            item["message"].as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
            Value::Object(item)
        })
        .unwrap()
}

async fn post(server: &Server, body: &[u8], signature: Option<String>) -> (u16, Duration) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/instagram", server.addr))
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    let started = Instant::now();
    let status = request.send().await.unwrap().status().as_u16();
    (status, started.elapsed())
}

/// Waits until the outbox holds `n` messages for `customer`.
async fn replies(server: &Server, customer: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let texts: Vec<String> = server
            .storage
            .outbox()
            .unwrap()
            .into_iter()
            .filter(|m| m.recipient == customer)
            .filter_map(|m| m.message.text)
            .collect();
        if texts.len() >= n || Instant::now() > deadline {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_verification_answers_the_challenge_only_to_the_right_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let url = |token: &str| {
        format!(
            "http://{}/webhooks/instagram?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            server.addr
        )
    };
    let ok = reqwest::get(url("verify-me")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(reqwest::get(url("guess")).await.unwrap().status(), 403);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_message_is_acknowledged_at_once_and_answered_once_even_if_delivered_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let body = webhook(vec![message(
        "IGSID-7",
        "mid.1",
        1_700_000_000_100,
        json!({"text": "hello, I need some help"}),
    )]);

    let (status, took) = post(&server, &body, Some(sign(SECRET.as_bytes(), &body))).await;
    assert_eq!(status, 200);
    eprintln!("webhook acknowledged in {took:?}");
    // Meta sends no name; the flow greets without one.
    let welcome = replies(&server, "IGSID-7", 1).await;
    assert_eq!(welcome, ["Hi there! How can we help you today?"]);

    // Meta retries: the same delivery again is acknowledged and dropped.
    let (status, _) = post(&server, &body, Some(sign(SECRET.as_bytes(), &body))).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(server.storage.inbox(10).unwrap().is_empty());
    assert_eq!(
        replies(&server, "IGSID-7", 0).await.len(),
        1,
        "a duplicate delivery was answered"
    );

    // Our own message echoed back never re-enters the flow.
    let echo = webhook(vec![
        json!({"sender": {"id": IG_ID}, "recipient": {"id": "IGSID-7"}, "timestamp": 1_700_000_000_200u64,
        "message": {"mid": "mid.echo", "text": "Hi! How can we help you today?", "is_echo": true}}),
    ]);
    assert_eq!(
        post(&server, &echo, Some(sign(SECRET.as_bytes(), &echo)))
            .await
            .0,
        200
    );
    // A quick reply moves the conversation on.
    let tap = webhook(vec![message(
        "IGSID-7",
        "mid.2",
        1_700_000_000_300,
        json!({"text": "Order status", "quick_reply": {"payload": "order-status"}}),
    )]);
    assert_eq!(
        post(&server, &tap, Some(sign(SECRET.as_bytes(), &tap)))
            .await
            .0,
        200
    );
    let said = replies(&server, "IGSID-7", 2).await;
    assert_eq!(said.len(), 2, "{said:?}");
    assert_eq!(said[1], "Please type your 6-digit order number.");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_wrongly_signed_webhooks_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let body = webhook(vec![message(
        "IGSID-8",
        "mid.9",
        1_700_000_000_100,
        json!({"text": "hello"}),
    )]);
    assert_eq!(post(&server, &body, None).await.0, 401);
    assert_eq!(
        post(&server, &body, Some(sign(b"not-the-secret", &body)))
            .await
            .0,
        403
    );
    let mut tampered = body.clone();
    let signature = sign(SECRET.as_bytes(), &body);
    tampered.extend_from_slice(b" ");
    assert_eq!(post(&server, &tampered, Some(signature)).await.0, 403);

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(server.storage.inbox(10).unwrap().is_empty());
    assert!(server.storage.outbox().unwrap().is_empty());
    assert!(
        server
            .storage
            .conversation(&flowhost::engine::state::conversation_key(
                "shop-ig", "IGSID-8"
            ))
            .unwrap()
            .is_none()
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_conversation_are_handled_in_timestamp_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    // One batch, delivered out of order: the greeting is older than the tap.
    let body = webhook(vec![
        message(
            "IGSID-9",
            "mid.b",
            1_700_000_000_500,
            json!({"text": "Order status", "quick_reply": {"payload": "order-status"}}),
        ),
        message(
            "IGSID-9",
            "mid.a",
            1_700_000_000_100,
            json!({"text": "hello, good afternoon"}),
        ),
    ]);
    assert_eq!(
        post(&server, &body, Some(sign(SECRET.as_bytes(), &body)))
            .await
            .0,
        200
    );
    let said = replies(&server, "IGSID-9", 2).await;
    assert!(said[0].contains("How can we help you today?"), "{said:?}");
    assert_eq!(said[1], "Please type your 6-digit order number.");
    let state = server
        .storage
        .conversation(&flowhost::engine::state::conversation_key(
            "shop-ig", "IGSID-9",
        ))
        .unwrap()
        .unwrap();
    assert_eq!(
        state.position,
        Position::Waiting {
            tree: "support".into(),
            decision: "ask-order".into()
        }
    );
    server.stop().await.unwrap();
}
