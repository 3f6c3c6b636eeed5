//! Instagram end to end through the running server: webhook verification,
//! signatures, durable and deduplicated intake, the flow answering, and the
//! replies sent through a stand-in of the Graph API's Send API (retries,
//! the 24-hour window).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flowhost::app::Server;
use flowhost::channels::instagram::signature::sign;
use flowhost::model::{Position, conversation_key};
use serde_json::{Value, json};

const IG_ID: &str = "17841400000000001";
const SECRET: &str = "test-app-secret";

/// A stand-in for the Graph API's Send API: records every accepted request
/// and answers 503 to the first `failures` requests.
#[derive(Clone, Default)]
struct Graph {
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    failures: Arc<Mutex<u32>>,
}

impl Graph {
    async fn start(failures: u32) -> (Graph, String) {
        let graph = Graph {
            failures: Arc::new(Mutex::new(failures)),
            ..Graph::default()
        };
        let state = graph.clone();
        let router = axum::Router::new().route(
            "/v23.0/{ig_id}/messages",
            post(
                move |Path(ig_id): Path<String>, headers: HeaderMap, Json(body): Json<Value>| {
                    let state = state.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let mut failures = state.failures.lock().unwrap();
                        if *failures > 0 {
                            *failures -= 1;
                            return (
                                StatusCode::SERVICE_UNAVAILABLE,
                                Json(json!({"error": {"message": "try later", "code": 2}})),
                            );
                        }
                        let mut requests = state.requests.lock().unwrap();
                        requests.push((format!("{ig_id} {auth}"), body.clone()));
                        let id = format!("m_{}", requests.len());
                        (
                            StatusCode::OK,
                            Json(
                                json!({"recipient_id": body["recipient"]["id"], "message_id": id}),
                            ),
                        )
                    }
                },
            ),
        );
        let addr = flowhost_tests::serve(router).await;
        (graph, format!("http://{addr}"))
    }

    fn texts_to(&self, customer: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body["recipient"]["id"] == customer)
            .filter_map(|(_, body)| body["message"]["text"].as_str().map(String::from))
            .collect()
    }

    /// Waits until `n` messages reached `customer`.
    async fn wait_for(&self, customer: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.texts_to(customer).len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.texts_to(customer)
    }
}

/// The example flow, always open, with literal secrets and the Send API at `graph`.
async fn start(dir: &std::path::Path, graph: &str) -> Server {
    start_with_orders(dir, graph, "http://127.0.0.1:9").await
}

async fn start_with_orders(dir: &std::path::Path, graph: &str, orders: &str) -> Server {
    start_with(dir, graph, orders, "").await
}

/// The example flow with `account_extra` added to the account's settings.
async fn start_with(
    dir: &std::path::Path,
    graph: &str,
    orders: &str,
    account_extra: &str,
) -> Server {
    let flow = include_str!("../examples/shop-support.yaml")
        .replace(
            "order_api: http://127.0.0.1:8099",
            &format!("order_api: {orders}"),
        )
        .replace(
            "next: { time_condition: business-hours }",
            "next: { decision_tree: support }",
        )
        .replace("env:SHOP_IG_APP_SECRET", SECRET)
        .replace(
            "env:SHOP_IG_VERIFY_TOKEN",
            &format!("verify-me{account_extra}"),
        )
        .replace(
            "access_token: env:SHOP_IG_ACCESS_TOKEN",
            &format!("access_token: graph-token\n    api_base_url: {graph}"),
        );
    let mut config = flowhost_tests::server_config(dir, &flow);
    config
        .plugins
        .insert("request".into(), flowhost_tests::loopback_request());
    flowhost::app::start(config)
        .await
        .expect("the server starts")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn webhook(items: Vec<Value>) -> Vec<u8> {
    json!({"object": "instagram", "entry": [{"id": IG_ID, "time": now_ms(), "messaging": items}]})
        .to_string()
        .into_bytes()
}

fn message(customer: &str, mid: &str, ts: u64, body: Value) -> Value {
    let mut message = json!({"mid": mid});
    message
        .as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    json!({"sender": {"id": customer}, "recipient": {"id": IG_ID}, "timestamp": ts, "message": message})
}

async fn deliver(server: &Server, body: &[u8], signature: Option<String>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/instagram", server.addr))
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    let started = Instant::now();
    let status = request.send().await.unwrap().status().as_u16();
    eprintln!("webhook answered {status} in {:?}", started.elapsed());
    status
}

fn signed(body: &[u8]) -> Option<String> {
    Some(sign(SECRET.as_bytes(), body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_verification_answers_the_challenge_only_to_the_right_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "http://127.0.0.1:9").await;
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
async fn a_signed_message_is_answered_through_the_send_api_once_even_if_delivered_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(0).await;
    let server = start(dir.path(), &graph_url).await;
    let body = webhook(vec![message(
        "IGSID-7",
        "mid.1",
        now_ms(),
        json!({"text": "hello, I need some help"}),
    )]);
    assert_eq!(deliver(&server, &body, signed(&body)).await, 200);

    // Meta sends no name; the flow greets without one. The reply goes out
    // through the Send API with its quick replies and the account's token.
    assert_eq!(
        graph.wait_for("IGSID-7", 1).await,
        ["Hi there! How can we help you today?"]
    );
    {
        let requests = graph.requests.lock().unwrap();
        let (target, body) = &requests[0];
        assert_eq!(target, &format!("{IG_ID} Bearer graph-token"));
        assert_eq!(body["messaging_type"], "RESPONSE");
        assert_eq!(
            body["message"]["quick_replies"][0],
            json!({"content_type": "text", "title": "Order status", "payload": "order-status"})
        );
    }

    // Meta retries: the same delivery again is acknowledged and dropped.
    assert_eq!(deliver(&server, &body, signed(&body)).await, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(server.storage.inbox(None, 10).await.unwrap().is_empty());
    assert_eq!(
        graph.texts_to("IGSID-7").len(),
        1,
        "a duplicate delivery was answered"
    );

    // Our own message echoed back never re-enters the flow.
    let echo = webhook(vec![
        json!({"sender": {"id": IG_ID}, "recipient": {"id": "IGSID-7"}, "timestamp": now_ms(),
        "message": {"mid": "m_1", "text": "Hi there! How can we help you today?", "is_echo": true}}),
    ]);
    assert_eq!(deliver(&server, &echo, signed(&echo)).await, 200);
    // A quick reply moves the conversation on.
    let tap = webhook(vec![message(
        "IGSID-7",
        "mid.2",
        now_ms(),
        json!({"text": "Order status", "quick_reply": {"payload": "order-status"}}),
    )]);
    assert_eq!(deliver(&server, &tap, signed(&tap)).await, 200);
    let said = graph.wait_for("IGSID-7", 2).await;
    assert_eq!(
        said,
        [
            "Hi there! How can we help you today?",
            "Please type your 6-digit order number."
        ]
    );
    // The sender records the send just after Meta's answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.storage.outbox(usize::MAX).await.unwrap().is_empty() && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.storage.outbox(usize::MAX).await.unwrap().is_empty(),
        "sent messages leave the outbox"
    );
    assert!(
        server.storage.sent_as("m_1").await.unwrap().is_some(),
        "Meta's id of our message is kept for its echo"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_from_the_graph_api_is_retried_and_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(2).await;
    let server = start(dir.path(), &graph_url).await;
    let body = webhook(vec![message(
        "IGSID-5",
        "mid.5",
        now_ms(),
        json!({"text": "hello there, anyone?"}),
    )]);
    assert_eq!(deliver(&server, &body, signed(&body)).await, 200);
    assert_eq!(graph.wait_for("IGSID-5", 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        graph.texts_to("IGSID-5").len(),
        1,
        "delivered more than once"
    );
    assert_eq!(
        *graph.failures.lock().unwrap(),
        0,
        "both 503s came before the success"
    );
    assert!(server.storage.failed_messages().await.unwrap().is_empty());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_reply_outside_the_24_hour_window_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(0).await;
    let server = start(dir.path(), &graph_url).await;
    // Delivered late: the customer wrote 25 hours ago (the channel's timestamp).
    let late = now_ms() - 25 * 3600 * 1000;
    let body = webhook(vec![message(
        "IGSID-6",
        "mid.6",
        late,
        json!({"text": "hello, are you there?"}),
    )]);
    assert_eq!(deliver(&server, &body, signed(&body)).await, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.storage.failed_messages().await.unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = server.storage.failed_messages().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].reason,
        "sending is only allowed within 24 hours of the customer's last message"
    );
    assert!(
        graph.texts_to("IGSID-6").is_empty(),
        "a message went out after the window closed"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_wrongly_signed_webhooks_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "http://127.0.0.1:9").await;
    let body = webhook(vec![message(
        "IGSID-8",
        "mid.9",
        now_ms(),
        json!({"text": "hello"}),
    )]);
    assert_eq!(deliver(&server, &body, None).await, 401);
    assert_eq!(
        deliver(&server, &body, Some(sign(b"not-the-secret", &body))).await,
        403
    );
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(deliver(&server, &tampered, signed(&body)).await, 403);

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(server.storage.inbox(None, 10).await.unwrap().is_empty());
    assert!(server.storage.outbox(usize::MAX).await.unwrap().is_empty());
    assert!(
        server
            .storage
            .conversation(&conversation_key("shop-ig", "IGSID-8"))
            .await
            .unwrap()
            .is_none()
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_conversation_are_handled_in_timestamp_order() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(0).await;
    let server = start(dir.path(), &graph_url).await;
    // One batch, delivered out of order: the greeting is older than the tap.
    let now = now_ms();
    let body = webhook(vec![
        message(
            "IGSID-9",
            "mid.b",
            now,
            json!({"text": "Order status", "quick_reply": {"payload": "order-status"}}),
        ),
        message(
            "IGSID-9",
            "mid.a",
            now - 1000,
            json!({"text": "hello, good afternoon"}),
        ),
    ]);
    assert_eq!(deliver(&server, &body, signed(&body)).await, 200);
    let said = graph.wait_for("IGSID-9", 2).await;
    assert_eq!(
        said,
        [
            "Hi there! How can we help you today?",
            "Please type your 6-digit order number."
        ]
    );
    let state = server
        .storage
        .conversation(&conversation_key("shop-ig", "IGSID-9"))
        .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_flow_over_webhooks_pattern_request_and_handoff() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(0).await;
    let orders = flowhost_tests::serve(axum::Router::new().route(
        "/orders/{id}",
        axum::routing::get(|Path(id): Path<String>| async move {
            Json(json!({"id": id, "status": "shipped", "items": [{"name": "Blue mug", "quantity": 2, "status": "shipped"}]}))
        }),
    ))
    .await;
    let server = start_with_orders(dir.path(), &graph_url, &format!("http://{orders}")).await;
    let say = |mid: &str, text: &str| {
        webhook(vec![message(
            "IGSID-3",
            mid,
            now_ms(),
            json!({"text": text}),
        )])
    };

    let hello = say("mid.h", "hello, good afternoon");
    assert_eq!(deliver(&server, &hello, signed(&hello)).await, 200);
    graph.wait_for("IGSID-3", 1).await;
    // A 6-digit number at the welcome matches its pattern; `request` asks
    // the order API on loopback.
    let number = say("mid.n", "123456");
    assert_eq!(deliver(&server, &number, signed(&number)).await, 200);
    let said = graph.wait_for("IGSID-3", 4).await;
    assert_eq!(
        &said[1..],
        [
            "Order 123456 is shipped.",
            "• Blue mug × 2: shipped",
            "Anything else I can help with?"
        ]
    );
    // Similar words hand off to the support queue.
    let agent = say("mid.a", "I want a humna agent");
    assert_eq!(deliver(&server, &agent, signed(&agent)).await, 200);
    let said = graph.wait_for("IGSID-3", 5).await;
    assert_eq!(said[4], "Connecting you to an agent; please hold on.");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = server
            .storage
            .conversation(&conversation_key("shop-ig", "IGSID-3"))
            .await
            .unwrap()
            .unwrap();
        if matches!(state.position, Position::Queued { ref queue, .. } if queue == "support") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not queued: {:?}",
            state.position
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await.unwrap();
}

/// The outbox after a crash: a long reply whose first part went out resumes
/// with its second part only; a send that was under way is recorded as
/// uncertain and not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sender_resumes_without_sending_anything_twice() {
    use flowhost::engine::clock::SystemClock;
    use flowhost::model::{ConversationState, OutboxMessage};
    use flowhost::outbox::{OutboxSender, UNCERTAIN};
    use flowhost::plugin::{Contact, OutgoingMessage};
    use flowhost::storage::{Storage, TurnCommit};

    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(0).await;
    let storage = Storage::open(dir.path()).unwrap();
    let mut state = ConversationState::new(
        "shop-ig",
        Contact {
            id: "IGSID-4".into(),
            ..Default::default()
        },
        1,
        "en",
        now_ms(),
    );
    state.last_inbound_ms = Some(now_ms());
    let outbox = |id: &str, text: String, sent_parts: u32| OutboxMessage {
        id: id.into(),
        conversation: state.key(),
        conversation_id: state.id(),
        account: "shop-ig".into(),
        recipient: "IGSID-4".into(),
        message: OutgoingMessage {
            text: Some(text),
            ..Default::default()
        },
        created_ms: now_ms(),
        sender: "bot".into(),
        sent_parts,
        window_from_ms: state.last_inbound_ms,
    };
    // 1,500 bytes: two parts, the first already accepted before the crash.
    let long = format!("{} {}", "a".repeat(900), "b".repeat(599));
    let first = outbox("01-long", long, 1);
    let second = outbox("02-interrupted", "was Meta answering?".into(), 0);
    storage
        .commit_turn(
            TurnCommit {
                state: Some(state.clone()),
                outbox: vec![first, second],
                ..TurnCommit::default()
            },
            now_ms(),
        )
        .await
        .unwrap();
    storage
        .mark_in_flight("02-interrupted", now_ms())
        .await
        .unwrap();

    let flow = flowhost::flow::parse(&include_str!("../examples/shop-support.yaml").replace(
        "access_token: env:SHOP_IG_ACCESS_TOKEN",
        &format!("access_token: t\n    api_base_url: {graph_url}"),
    ))
    .unwrap();
    let sender = std::sync::Arc::new(OutboxSender::new(
        storage.clone(),
        std::sync::Arc::new(SystemClock),
        flowhost::outbox::endpoints(&flow),
    ));
    assert_eq!(sender.recover().await.unwrap(), 1);
    assert_eq!(sender.send_round().await.unwrap(), 1);
    assert_eq!(
        graph.texts_to("IGSID-4"),
        ["b".repeat(599)],
        "only the missing part went out"
    );
    assert!(storage.outbox(usize::MAX).await.unwrap().is_empty());
    let failed = storage.failed_messages().await.unwrap();
    assert_eq!(
        (failed.len(), failed[0].message.id.as_str()),
        (1, "02-interrupted")
    );
    assert!(
        failed[0].reason.starts_with(UNCERTAIN),
        "{}",
        failed[0].reason
    );
}

/// Two replies whose sends were under way when the previous process died,
/// on an account subscribed to echoes: the one Meta echoes counts as sent
/// and is not sent again; the one no echo confirms is sent again once the
/// grace period passes, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_settles_a_send_in_doubt_and_an_unconfirmed_one_is_sent_again() {
    use flowhost::model::{ConversationState, OutboxMessage};
    use flowhost::plugin::{Contact, OutgoingMessage};
    use flowhost::storage::{Storage, TurnCommit};

    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(0).await;
    let replies = [
        ("IGSID-E1", "01-echoed", "Your order shipped."),
        ("IGSID-E2", "02-silent", "Your order is late."),
    ];
    {
        let storage = Storage::open(&dir.path().join("data").join("db")).unwrap();
        for (customer, id, text) in replies {
            let contact = Contact {
                id: customer.into(),
                ..Default::default()
            };
            let mut state = ConversationState::new("shop-ig", contact, 1, "en", now_ms());
            state.last_inbound_ms = Some(now_ms());
            let message = OutboxMessage {
                id: id.into(),
                conversation: state.key(),
                conversation_id: state.id(),
                account: "shop-ig".into(),
                recipient: customer.into(),
                message: OutgoingMessage {
                    text: Some(text.into()),
                    ..Default::default()
                },
                created_ms: now_ms(),
                sender: "bot".into(),
                sent_parts: 0,
                window_from_ms: None,
            };
            let turn = TurnCommit {
                state: Some(state),
                outbox: vec![message],
                ..TurnCommit::default()
            };
            storage.commit_turn(turn, now_ms()).await.unwrap();
            storage.mark_in_flight(id, now_ms()).await.unwrap();
        }
    }
    let server = start_with(
        dir.path(),
        &graph_url,
        "http://127.0.0.1:9",
        "\n    settle_by_echo_seconds: 3",
    )
    .await;
    // Meta echoes the first: from the business account to the customer.
    let echo = webhook(vec![
        json!({"sender": {"id": IG_ID}, "recipient": {"id": "IGSID-E1"},
        "timestamp": now_ms(), "message": {"mid": "m_echo_1", "text": "Your order shipped.", "is_echo": true}}),
    ]);
    assert_eq!(deliver(&server, &echo, signed(&echo)).await, 200);

    assert_eq!(graph.wait_for("IGSID-E2", 1).await, ["Your order is late."]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        graph.texts_to("IGSID-E2").len(),
        1,
        "sent again exactly once"
    );
    assert!(
        graph.texts_to("IGSID-E1").is_empty(),
        "the echoed send was not repeated"
    );
    let storage = &server.storage;
    assert_eq!(
        storage.sent_as("m_echo_1").await.unwrap().as_deref(),
        Some("01-echoed")
    );
    assert!(storage.outbox(10).await.unwrap().is_empty());
    assert!(storage.settling().await.unwrap().is_empty());
    assert!(storage.failed_messages().await.unwrap().is_empty());
    server.stop().await.unwrap();
}

/// A stop never hangs: with the Graph API unreachable, the sender retries
/// in the background, and a stop still ends, within its deadline, with the
/// reply left in the outbox for the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_while_sends_are_being_retried() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: every send is refused and retried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = start(dir.path(), &unreachable).await;
    let body = webhook(vec![message(
        "IGSID-R",
        "mid.r",
        now_ms(),
        json!({"text": "hello"}),
    )]);
    assert_eq!(deliver(&server, &body, signed(&body)).await, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.storage.outbox(1).await.unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let a retry or two happen.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let storage = server.storage.clone();
    tokio::time::timeout(Duration::from_secs(60), server.stop())
        .await
        .expect("the stop ended")
        .unwrap();
    assert_eq!(
        storage.outbox(10).await.unwrap().len(),
        1,
        "the reply waits for the next start"
    );
    assert!(storage.failed_messages().await.unwrap().is_empty());
}

const OTHER_ID: &str = "17841400000000002";
const OTHER_SECRET: &str = "other-app-secret";

/// The example flow with a second account, of another app (its own secret).
async fn start_two_accounts(dir: &std::path::Path, graph: &str) -> Server {
    let flow = include_str!("../examples/shop-support.yaml")
        .replace(
            "next: { time_condition: business-hours }",
            "next: { decision_tree: support }",
        )
        .replace("env:SHOP_IG_APP_SECRET", SECRET)
        .replace("env:SHOP_IG_VERIFY_TOKEN", "verify-me")
        .replace(
            "access_token: env:SHOP_IG_ACCESS_TOKEN",
            &format!("access_token: graph-token\n    api_base_url: {graph}"),
        )
        .replace(
            "\nconnectors:\n",
            &format!(
                "  other-ig:\n    channel: instagram\n    ig_user_id: \"{OTHER_ID}\"\n    access_token: other-token\n    api_base_url: {graph}\n    app_secret: {OTHER_SECRET}\n\nconnectors:\n  other-dm:\n    title: Other DMs\n    account: other-ig\n    next: {{ decision_tree: support }}\n"
            ),
        );
    let config = flowhost_tests::server_config(dir, &flow);
    flowhost::app::start(config)
        .await
        .expect("the server starts")
}

fn entry(account: &Value, items: Vec<Value>) -> Value {
    json!({"id": account, "time": now_ms(), "messaging": items})
}

fn batch_of(entries: Vec<Value>) -> Vec<u8> {
    json!({"object": "instagram", "entry": entries})
        .to_string()
        .into_bytes()
}

/// Issue 8, items 1, 4, 8, 15 and 18: each hostile or malformed delivery
/// gets its own clear answer and reaches no flow; a good one still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_malformed_webhooks_reach_no_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start(0).await;
    let server = start_two_accounts(dir.path(), &graph_url).await;
    let hello = |customer: &str, mid: &str| {
        message(
            customer,
            mid,
            now_ms(),
            json!({"text": "hello, I need some help"}),
        )
    };

    // Unsigned: the same 401 for a configured account and an unknown one.
    let known = batch_of(vec![entry(&json!(IG_ID), vec![hello("C-1", "m.1")])]);
    let unknown = batch_of(vec![entry(&json!("999"), vec![hello("C-1", "m.1")])]);
    assert_eq!(deliver(&server, &known, None).await, 401);
    assert_eq!(deliver(&server, &unknown, None).await, 401);
    assert_eq!(
        deliver(&server, &unknown, Some(sign(SECRET.as_bytes(), &unknown))).await,
        403
    );

    // The other app's secret signs a body with an entry for our account
    // (numeric id, as Meta sometimes writes them): only the other
    // account's own entry is taken.
    let cross = batch_of(vec![
        entry(&json!(OTHER_ID), vec![hello("C-2", "m.2")]),
        entry(&json!(17841400000000001u64), vec![hello("C-3", "m.3")]),
    ]);
    assert_eq!(
        deliver(&server, &cross, Some(sign(OTHER_SECRET.as_bytes(), &cross))).await,
        200
    );

    // Many entries: more than Meta ever batches is refused outright, and a
    // thousand copies of one account id with a wrong signature are refused.
    let too_many = batch_of(vec![json!({"id": IG_ID}); 1_001]);
    assert_eq!(
        deliver(&server, &too_many, Some(sign(b"x", &too_many))).await,
        413
    );
    let copies = batch_of(vec![json!({"id": IG_ID}); 1_000]);
    assert_eq!(
        deliver(&server, &copies, Some(sign(b"x", &copies))).await,
        403
    );

    // Signed but not a webhook: 400, not "bad signature".
    for body in [&b"not json"[..], br#"{"object":"instagram"}"#] {
        assert_eq!(deliver(&server, body, signed(body)).await, 400);
    }

    // Standby (another app owns the thread), no mid, no sender: taken with
    // a 200 and never answered (the standby message marks its thread taken).
    let no_sender = json!({"recipient": {"id": IG_ID}, "timestamp": now_ms(), "message": {"mid": "m.6", "text": "hi"}});
    let mut no_mid = hello("C-5", "m.5");
    no_mid["message"].as_object_mut().unwrap().remove("mid");
    let odd = batch_of(vec![
        json!({"id": IG_ID, "time": now_ms(), "standby": [hello("C-4", "m.4")]}),
        entry(&json!(IG_ID), vec![no_mid, no_sender]),
    ]);
    assert_eq!(deliver(&server, &odd, signed(&odd)).await, 200);

    // A good delivery after all that is answered, and only it and the
    // other account's own entry were.
    let good = batch_of(vec![entry(&json!(IG_ID), vec![hello("C-9", "m.9")])]);
    assert_eq!(deliver(&server, &good, signed(&good)).await, 200);
    assert_eq!(graph.wait_for("C-9", 1).await.len(), 1);
    assert_eq!(graph.wait_for("C-2", 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The standby customer is kept as taken by another app, unanswered.
    assert!(graph.texts_to("C-4").is_empty(), "C-4 was answered");
    let standby = server
        .storage
        .conversation(&conversation_key("shop-ig", "C-4"))
        .await
        .unwrap()
        .expect("the standby message is kept");
    assert_eq!(standby.held_by.as_deref(), Some("another Meta app"));
    for customer in ["C-1", "C-3", "C-5", ""] {
        assert!(
            graph.texts_to(customer).is_empty(),
            "{customer:?} was answered"
        );
        assert!(
            server
                .storage
                .conversation(&conversation_key("shop-ig", customer))
                .await
                .unwrap()
                .is_none(),
            "{customer:?} reached the flow"
        );
    }
    let requests = graph.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().any(|(target, body)| target
        == &format!("{OTHER_ID} Bearer other-token")
        && body["recipient"]["id"] == "C-2"));
    server.stop().await.unwrap();
}

/// Issue 8, items 7 and 19: a customer's 1.5 MB text is cut on the way in
/// (so the flow still answers it) and the answer on the way out (so it is
/// four Send API calls, not fifteen hundred); the next customer is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_text_is_cut_on_the_way_in_and_out() {
    use flowhost::engine::{MAX_INBOUND_TEXT_BYTES, MAX_OUTBOUND_TEXT_BYTES};
    use flowhost_tests::stress::{Channel, Scenario, StandIns, post_until_acknowledged};
    let scenario = Scenario {
        channel: Channel::Instagram,
        accounts: 1,
        conversations: 2,
        messages: 1,
        slow_every: 0,
        run: "huge".into(),
        settle_by_echo_seconds: None,
    };
    let (stand_ins, api) = StandIns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = flowhost_tests::server_config(dir.path(), &scenario.flow_yaml(&api, &api));
    let server = flowhost::app::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let huge = "x".repeat(1_500_000);
    for delivery in [scenario.delivery_of(0, 0, &huge), scenario.delivery(1, 0)] {
        let mut report = Default::default();
        assert!(post_until_acknowledged(&client, &base, &delivery, &mut report, deadline).await);
    }
    stand_ins.wait_for_replies(5, deadline).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies = stand_ins.replies();
    assert_eq!(replies[&scenario.customer(1)], ["got m0"]);
    let parts = &replies[&scenario.customer(0)];
    assert_eq!(
        parts.len(),
        MAX_OUTBOUND_TEXT_BYTES / 1000,
        "{} parts",
        parts.len()
    );
    assert!(parts[0].starts_with("got xxx"));
    assert!(parts.last().unwrap().ends_with('…'));
    let history = server
        .storage
        .history(&flowhost::model::conversation_key(
            "acc0",
            &scenario.customer(0),
        ))
        .await
        .unwrap();
    let errors: Vec<&str> = history
        .iter()
        .filter(|h| h.kind == "error")
        .map(|h| h.text.as_str())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("cut to {MAX_INBOUND_TEXT_BYTES} bytes"))),
        "{errors:?}"
    );
    server.stop().await.unwrap();
}

/// Issue 8, item 10: slowloris clients are closed: a client that never
/// finishes its headers is dropped at the header deadline, one that never
/// finishes its body gets 408, connections are capped, and a well-behaved
/// client is served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_and_connections_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut config = flowhost_tests::server_config(dir.path(), "{}");
    config.flow = None;
    config.http = flowhost::server::HttpLimits {
        max_connections: 8,
        header_read_timeout_ms: 500,
        request_timeout_ms: 1_000,
    };
    let server = flowhost::app::start(config).await.unwrap();
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(30);

    let slow_headers = (0..50).map(|_| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /webhooks/instagram HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        // Closed by the server: end of stream (or a reset).
        let left = deadline.saturating_duration_since(Instant::now());
        matches!(
            tokio::time::timeout(left, stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    });
    let slow_body = async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /webhooks/instagram HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"object\"")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let healthy = async move {
        loop {
            let answer = reqwest::Client::new()
                .get(format!("http://{addr}/healthz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Ok(answer) = answer {
                return answer.status().as_u16();
            }
            assert!(Instant::now() < deadline, "/healthz never answered");
        }
    };
    let (closed, body_answer, health) =
        tokio::join!(futures::future::join_all(slow_headers), slow_body, healthy);
    assert_eq!(
        closed.iter().filter(|c| **c).count(),
        50,
        "slow clients left open"
    );
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer:?}");
    assert_eq!(health, 200);
    server.stop().await.unwrap();
}
