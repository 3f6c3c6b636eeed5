//! Connexease end to end: its webhook in (signature per account), the flow,
//! the reply out through a stand-in of its messages API with JWT login.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flowhost::app::Server;
use flowhost::channels::connexease::expected_sign;
use serde_json::{Value, json};

const CHANNEL: &str = "4f1c0d5e-channel";
const SECRET: &str = "cx-webhook-secret";

const FLOW: &str = r#"
accounts:
  shop-cx:
    channel: connexease
    channel_id: "4f1c0d5e-channel"
    username: bot@shop.example
    password: hunter2
    account_id: "acc-1"
    webhook_secret: cx-webhook-secret
    api_base_url: API_BASE
connectors:
  cx: { title: Connexease, account: shop-cx, attachments: from_customer, next: { decision_tree: help } }
decision_trees:
  help:
    decisions:
      welcome:
        prompt: "Hi {{ contact.name or 'there' }}! What do you need?"
        targets:
          - { id: orders, when: button, title: Orders, go: { queue: support } }
          - { when: default, go: { decision: welcome } }
queues:
  support: { name: Support }
"#;

/// A Connexease stand-in: `/jwt/` logs in (a fresh token each time);
/// `/v2/messages/` wants the latest token, and refuses the very first
/// reply with 401 so the sender has to log in again.
#[derive(Clone, Default)]
struct Connexease {
    logins: Arc<Mutex<u32>>,
    replies: Arc<Mutex<Vec<Value>>>,
    refused_once: Arc<Mutex<bool>>,
}

async fn connexease() -> (Connexease, String) {
    let cx = Connexease::default();
    let (login, reply) = (cx.clone(), cx.clone());
    let router = axum::Router::new()
        .route(
            "/jwt/",
            post(move |Json(body): Json<Value>| {
                let cx = login.clone();
                async move {
                    assert_eq!(
                        body,
                        json!({"username": "bot@shop.example", "password": "hunter2"})
                    );
                    let mut logins = cx.logins.lock().unwrap();
                    *logins += 1;
                    Json(json!({"token": format!("jwt-{logins}"), "account": {"uuid": "acc-1"}}))
                }
            }),
        )
        .route(
            "/v2/messages/",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let cx = reply.clone();
                async move {
                    let expected = format!("JWT jwt-{}", *cx.logins.lock().unwrap());
                    let mut refused = cx.refused_once.lock().unwrap();
                    if !*refused
                        || headers.get("authorization").and_then(|v| v.to_str().ok())
                            != Some(expected.as_str())
                    {
                        *refused = true;
                        return (
                            StatusCode::UNAUTHORIZED,
                            Json(json!({"detail": "token expired"})),
                        );
                    }
                    cx.replies.lock().unwrap().push(body);
                    (StatusCode::CREATED, Json(json!({"uuid": "cx-msg-1"})))
                }
            }),
        );
    let addr = flowhost_tests::serve(router).await;
    (cx, format!("http://{addr}"))
}

async fn start(dir: &std::path::Path, api: &str) -> Server {
    let config = flowhost_tests::server_config(dir, &FLOW.replace("API_BASE", api));
    flowhost::app::start(config)
        .await
        .expect("the server starts")
}

async fn hook(server: &Server, body: &Value, sign: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/connexease", server.addr))
        .json(body);
    if let Some(sign) = sign {
        request = request.header("X-Connexease-Webhook-Sign", sign);
    }
    request.send().await.unwrap().status().as_u16()
}

fn customer_message(uuid: &str, text: &str, agent: Value) -> Value {
    json!({"hook": "message.created", "channel": {"uuid": CHANNEL}, "payload": {
        "uuid": uuid, "content": text, "conversation_uuid": "conv-42",
        "customer": {"name": "Ada", "phone_number": "+905550000000"}, "agent": agent}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connexease_message_is_answered_through_its_api() {
    let dir = tempfile::tempdir().unwrap();
    let (cx, api) = connexease().await;
    let server = start(dir.path(), &api).await;
    let sign = expected_sign(SECRET, CHANNEL);

    assert_eq!(
        hook(
            &server,
            &customer_message("m-1", "hello", Value::Null),
            Some(&sign)
        )
        .await,
        200
    );
    // Connexease resends until it gets a 2xx: the same message again is dropped.
    assert_eq!(
        hook(
            &server,
            &customer_message("m-1", "hello", Value::Null),
            Some(&sign)
        )
        .await,
        200
    );
    // An agent's message (and our own, echoed) never enters the flow.
    assert_eq!(
        hook(
            &server,
            &customer_message("m-2", "I am Bo", json!({"name": "Bo"})),
            Some(&sign)
        )
        .await,
        200
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    while cx.replies.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replies = cx.replies.lock().unwrap().clone();
    assert_eq!(
        replies,
        [
            json!({"uuid": "conv-42", "messages": [{"type": "text", "content": "Hi Ada! What do you need?\n1. Orders"}]})
        ]
    );
    assert_eq!(
        *cx.logins.lock().unwrap(),
        2,
        "the 401 made the sender log in again"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_connexease_signature_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_cx, api) = connexease().await;
    let server = start(dir.path(), &api).await;
    let message = customer_message("m-9", "hello", Value::Null);
    assert_eq!(hook(&server, &message, None).await, 401);
    assert_eq!(
        hook(&server, &message, Some(SECRET)).await,
        403,
        "this account checks the HMAC form"
    );
    assert_eq!(
        hook(&server, &message, Some(&expected_sign("other", CHANNEL))).await,
        403
    );
    // Issue 8, item 15: a channel that is not configured gets the same
    // answers, so they tell nothing about which channels exist.
    let mut elsewhere = message.clone();
    elsewhere["channel"]["uuid"] = json!("not-a-channel");
    assert_eq!(hook(&server, &elsewhere, None).await, 401);
    assert_eq!(
        hook(
            &server,
            &elsewhere,
            Some(&expected_sign(SECRET, "not-a-channel"))
        )
        .await,
        403
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.storage.inbox(None, 10).await.unwrap().is_empty());
    assert!(
        server
            .storage
            .conversation(&flowhost::model::conversation_key("shop-cx", "conv-42"))
            .await
            .unwrap()
            .is_none()
    );
    server.stop().await.unwrap();
}

/// Issue 8, item 20: an image-only message reaches the flow with its image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connexease_attachment_reaches_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (_cx, api) = connexease().await;
    let server = start(dir.path(), &api).await;
    let mut message = customer_message("m-img", "", Value::Null);
    message["payload"]["content"] = Value::Null;
    message["payload"]["attachments"] =
        json!([{"type": "image", "url": "https://cdn.example/p.jpg"}]);
    let sign = expected_sign(SECRET, CHANNEL);
    assert_eq!(hook(&server, &message, Some(&sign)).await, 200);
    let key = flowhost::model::conversation_key("shop-cx", "conv-42");
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let state = server.storage.conversation(&key).await.unwrap();
        if state.is_some() || Instant::now() > deadline {
            break state.expect("the message reached the flow");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attachments = state.last_message.expect("the message is kept").attachments;
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        (attachments[0].kind.as_str(), attachments[0].url.as_str()),
        ("image", "https://cdn.example/p.jpg")
    );
    server.stop().await.unwrap();
}

/// Issue 9, item 8: while a Connexease agent has the conversation, the bot
/// keeps quiet; given back, it answers again; archived, the session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_a_connexease_agent_took_gets_no_bot_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (cx, api) = connexease().await;
    let server = start(dir.path(), &api).await;
    let sign = expected_sign(SECRET, CHANNEL);
    let replies = || cx.replies.lock().unwrap().len();
    let wait_for_replies = |n: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while replies() < n {
            assert!(Instant::now() < deadline, "{n} replies expected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let conversation = |hook: &str, agent: Value| json!({"hook": hook, "channel": {"uuid": CHANNEL}, "payload": {"uuid": "conv-42", "agent": agent}});
    let key = flowhost::model::conversation_key("shop-cx", "conv-42");

    let hello = customer_message("m-1", "hello", Value::Null);
    assert_eq!(hook(&server, &hello, Some(&sign)).await, 200);
    wait_for_replies(1).await;

    let assigned = conversation("conversation.assigned", json!({"name": "Bo"}));
    assert_eq!(hook(&server, &assigned, Some(&sign)).await, 200);
    let waiting = customer_message("m-2", "are you there?", Value::Null);
    assert_eq!(hook(&server, &waiting, Some(&sign)).await, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history = server.storage.history(&key).await.unwrap();
        if history.iter().any(|h| h.text == "are you there?") {
            break;
        }
        assert!(Instant::now() < deadline, "the message was never kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replies(), 1, "the bot stays quiet while Bo has it");
    let state = server.storage.conversation(&key).await.unwrap().unwrap();
    assert_eq!(state.held_by.as_deref(), Some("Connexease agent Bo"));

    let returned = conversation("conversation.assigned", Value::Null);
    assert_eq!(hook(&server, &returned, Some(&sign)).await, 200);
    let again = customer_message("m-3", "hello again", Value::Null);
    assert_eq!(hook(&server, &again, Some(&sign)).await, 200);
    wait_for_replies(2).await;

    let archived = conversation("conversation.archived", Value::Null);
    assert_eq!(hook(&server, &archived, Some(&sign)).await, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = server.storage.conversation(&key).await.unwrap().unwrap();
        if let Some(ending) = state.ending {
            assert_eq!(ending.cause, "closed-elsewhere");
            break;
        }
        assert!(Instant::now() < deadline, "never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await.unwrap();
}
