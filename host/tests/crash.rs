//! The server process is killed with SIGKILL right after it acknowledged a
//! batch of webhooks, then restarted on the same data directory: every
//! message is processed and every reply delivered exactly once.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use flowhost::channels::instagram::signature::sign;
use serde_json::{Value, json};

const IG_ID: &str = "17841400000000001";
const SECRET: &str = "crash-secret";
const CUSTOMERS: usize = 20;

/// A Send API stand-in counting the messages each customer receives.
async fn graph() -> (Arc<Mutex<BTreeMap<String, Vec<String>>>>, String) {
    let received: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Default::default();
    let log = received.clone();
    let router = axum::Router::new().route(
        "/v23.0/{ig_id}/messages",
        post(move |Json(body): Json<Value>| {
            let log = log.clone();
            async move {
                let customer = body["recipient"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let text = body["message"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut log = log.lock().unwrap();
                let count = log.values().map(Vec::len).sum::<usize>();
                log.entry(customer.clone()).or_default().push(text);
                Json(json!({"recipient_id": customer, "message_id": format!("m_{count}")}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (received, format!("http://{addr}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("flowhost starts")
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = reqwest::get(format!("{base}/readyz")).await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_acknowledging_a_batch_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (received, graph_url) = graph().await;
    let flow = include_str!("../../examples/shop-support.yaml")
        .replace(
            "next: { time_condition: business-hours }",
            "next: { decision_tree: support }",
        )
        .replace("env:SHOP_IG_APP_SECRET", SECRET)
        .replace("env:SHOP_IG_VERIFY_TOKEN", "verify-me")
        .replace(
            "access_token: env:SHOP_IG_ACCESS_TOKEN",
            &format!("access_token: token\n    api_base_url: {graph_url}"),
        );
    std::fs::write(dir.path().join("flow.yaml"), flow).unwrap();
    let port = free_port();
    let config = dir.path().join("flowhost.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\ndata_dir: {data}\nflow: {flow}\nadmin_token: crash-test-admin-token-0123456789abcdef\nruntime:\n  cache_dir: {cache}\n",
            data = dir.path().join("data").display(),
            flow = dir.path().join("flow.yaml").display(),
            cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash-plugin-cache").display(),
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");

    let mut server = spawn(&config);
    wait_ready(&base).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let items: Vec<Value> = (0..CUSTOMERS)
        .map(|i| json!({"sender": {"id": format!("IGSID-{i}")}, "recipient": {"id": IG_ID}, "timestamp": now,
            "message": {"mid": format!("mid.{i}"), "text": "hello, I have a question"}}))
        .collect();
    let body =
        json!({"object": "instagram", "entry": [{"id": IG_ID, "time": now, "messaging": items}]})
            .to_string();
    let response = reqwest::Client::new()
        .post(format!("{base}/webhooks/instagram"))
        .header(
            "X-Hub-Signature-256",
            sign(SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    server.wait().unwrap();
    let before_restart: usize = received.lock().unwrap().values().map(Vec::len).sum();

    let mut server = spawn(&config);
    wait_ready(&base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().len() < CUSTOMERS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let status = server.wait().unwrap();

    let received = received.lock().unwrap().clone();
    eprintln!(
        "{before_restart} replies went out before the kill; {} customers answered in all",
        received.len()
    );
    assert_eq!(
        received.len(),
        CUSTOMERS,
        "some accepted message was never answered"
    );
    for (customer, texts) in received.iter() {
        assert_eq!(
            texts,
            &["Hi there! How can we help you today?"],
            "{customer} got {texts:?}"
        );
    }
    assert!(status.success(), "the graceful stop failed: {status}");
    let storage = flowhost::storage::Storage::open(&dir.path().join("data").join("db")).unwrap();
    assert!(storage.inbox(None, 10).await.unwrap().is_empty());
    assert!(storage.outbox(usize::MAX).await.unwrap().is_empty());
    assert!(
        storage.failed_messages().await.unwrap().is_empty(),
        "{:?}",
        storage.failed_messages().await.unwrap()
    );
}
