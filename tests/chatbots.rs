//! Third-party chatbots end to end: customers write through signed
//! Instagram webhooks, the built-in `webhook-bot` and `rasa` adapters talk
//! to bot stand-ins on loopback that speak their documented protocols, bots
//! answer at once or later through the callback URL, and replies reach a
//! stand-in of the Graph API.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use flowhost::app::Server;
use flowhost::model::{Position, conversation_key};
use flowhost_tests::graph::Graph;
use serde_json::{Value, json};

const SECRET: &str = "chatbots-app-secret";
/// One Instagram account per chatbot under test.
const SHOP: (&str, &str) = ("shop-ig", "17841400000000101");
const GONE: (&str, &str) = ("gone-ig", "17841400000000102");
const RASA: (&str, &str) = ("rasa-ig", "17841400000000103");
const RASA_CB: (&str, &str) = ("rasacb-ig", "17841400000000104");
const RELAY: (&str, &str) = ("relay-ig", "17841400000000105");
/// Its sessions time out after a second.
const SHORT: (&str, &str) = ("short-ig", "17841400000000106");
const SORRY: &str = "Our assistant is away; a person will answer you here.";

/// The flow; `relay` (an adapter's name) adds an account whose connector
/// goes to a chatbot on one of the SDK's example relay adapters.
fn flow(graph: &str, bots: &str, closed_port: u16, relay: Option<&str>) -> String {
    let account = |(key, id): (&str, &str)| {
        format!(
            "  {key}:\n    channel: instagram\n    ig_user_id: \"{id}\"\n    access_token: graph-token\n    api_base_url: {graph}\n    app_secret: {SECRET}\n    verify_token: verify-me\n"
        )
    };
    let (relay_account, relay_connector, relay_chatbot) = if let Some(adapter) = relay {
        (
            account(RELAY),
            "  relay: { title: Relay, account: relay-ig, next: { chatbot: relay } }\n".to_string(),
            format!(
                "  relay:\n    title: Relay\n    adapter: {adapter}\n    url: {bots}/relay\n    fallback: {{ automessage: sorry }}\n"
            ),
        )
    } else {
        Default::default()
    };
    format!(
        r#"
default_language: en
accounts:
{}{}{}{}{}{relay_account}
connectors:
  dm: {{ title: DMs, account: shop-ig, next: {{ chatbot: helper }}, default_queue: support, attachments: from_customer }}
  gone: {{ title: Gone, account: gone-ig, next: {{ chatbot: gone }} }}
  rasa: {{ title: Rasa, account: rasa-ig, next: {{ chatbot: rasa_bot }} }}
  rasacb: {{ title: Rasa callback, account: rasacb-ig, next: {{ chatbot: rasa_cb }} }}
  short: {{ title: Short, account: short-ig, next: {{ chatbot: helper }}, session_timeout_seconds: 1 }}
{relay_connector}
chatbots:
{relay_chatbot}
  helper:
    title: Helper
    url: {bots}/bot
    fallback: {{ automessage: sorry }}
    send_attachments: true
    send_start_message: true
    config: {{ start_text: start }}
    timeout_seconds: 2
    custom_fields:
      - {{ name: customer, title: Customer, value: "{{{{ contact.id }}}}" }}
      - {{ name: empty, title: Empty, value: "" }}
    queue_aliases: {{ "10001": sales }}
  gone:
    title: Gone
    url: http://127.0.0.1:{closed_port}/bot
    fallback: {{ automessage: sorry }}
  rasa_bot:
    title: Rasa
    adapter: rasa
    url: {bots}/webhooks/rest/webhook
    send_start_message: true
    fallback: {{ automessage: sorry }}
  rasa_cb:
    title: Rasa by callback
    adapter: rasa
    url: {bots}/webhooks/callback/webhook
    config: {{ mode: callback }}
    fallback: {{ automessage: sorry }}
automessages:
  sorry:
    title: Sorry
    messages:
      - delay_seconds: 0
        text: {{ text: "{SORRY}" }}
    next: {{ queue: support }}
queues:
  support: {{ name: Support }}
  sales: {{ name: Sales }}
"#,
        account(SHOP),
        account(GONE),
        account(RASA),
        account(RASA_CB),
        account(SHORT)
    )
}

/// The bots' stand-ins: every request body they got, and what the Rasa
/// callback channel's later posts were answered.
#[derive(Clone, Default)]
struct Bots {
    webhook: Arc<Mutex<Vec<Value>>>,
    rasa: Arc<Mutex<Vec<Value>>>,
    callback_statuses: Arc<Mutex<Vec<u16>>>,
    /// flowhost's base URL, for the Rasa callback channel's posts.
    flowhost: Arc<OnceLock<String>>,
}

impl Bots {
    async fn start() -> (Bots, String) {
        let bots = Bots::default();
        let router = Router::new()
            .route("/bot", post(webhook_bot))
            .route("/webhooks/rest/webhook", post(rasa_rest))
            .route("/webhooks/callback/webhook", post(rasa_callback))
            .route("/relay", post(relay_bot))
            .with_state(bots.clone());
        let addr = flowhost_tests::serve(router).await;
        (bots, format!("http://{addr}"))
    }

    fn webhook_requests_from(&self, customer: &str) -> Vec<Value> {
        let requests = self.webhook.lock().unwrap();
        requests
            .iter()
            .filter(|r| custom_field(r, "customer") == customer)
            .cloned()
            .collect()
    }
}

fn custom_field(request: &Value, name: &str) -> Value {
    request["conversation"]["customFields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["name"] == name))
        .map(|f| f["value"].clone())
        .unwrap_or(Value::Null)
}

/// A bot on the webhook bot protocol; what it answers depends on the text.
async fn webhook_bot(State(bots): State<Bots>, Json(body): Json<Value>) -> Response {
    bots.webhook.lock().unwrap().push(body.clone());
    if body["quickreply"]["name"] == "qr-sales" {
        return Json(json!({"text": "You pressed sales"})).into_response();
    }
    match body["text"].as_str().unwrap_or("") {
        "start" => Json(json!({})).into_response(),
        "hello" => Json(json!({
            "text": "Hi from the bot",
            "quickreply": [{"name": "qr-sales", "text": "Sales"}],
            "button": [{"text": "Shop", "url": "https://example.com/shop"}]
        }))
        .into_response(),
        "later" => StatusCode::OK.into_response(),
        "human" => Json(json!({"text": "Passing you to sales", "queue": "sales"})).into_response(),
        "alias" => Json(json!({"transfer": 10001})).into_response(),
        "nowhere" => Json(json!({"text": "Off you go", "queue": "no-such-queue"})).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Json(json!({"text": "too late"})).into_response()
        }
        "boom" => (StatusCode::INTERNAL_SERVER_ERROR, "bot crashed").into_response(),
        "garbage" => (StatusCode::OK, "this is not json {").into_response(),
        "wrong shape" => Json(json!({"text": ["not", "a", "string"]})).into_response(),
        other => Json(json!({"text": format!("echo: {other}")})).into_response(),
    }
}

/// Rasa's REST channel: a list of messages.
async fn rasa_rest(State(bots): State<Bots>, Json(body): Json<Value>) -> Json<Value> {
    bots.rasa.lock().unwrap().push(body.clone());
    let to = body["sender"].clone();
    Json(match body["message"].as_str().unwrap_or("") {
        "hi" => json!([{"recipient_id": to, "text": "Hey! How can I help?", "buttons": [
            {"title": "Talk to a human", "payload": "/handoff{\"queue\":\"sales\"}"},
            {"title": "Prices", "payload": "/prices"}
        ]}]),
        "/prices" => json!([
            {"recipient_id": to, "text": "Prices start at 10"},
            {"recipient_id": to, "image": "https://example.com/prices.png"}
        ]),
        "agent please" => json!([
            {"recipient_id": to, "text": "Connecting you"},
            {"recipient_id": to, "custom": {"handoff": "support"}}
        ]),
        _ => json!([]),
    })
}

/// Rasa's callback channel as Rasa runs it: the messages are posted to the
/// callback URL of its configuration (fixed, without a query) while the
/// request is handled, and `success` is answered after them.
async fn rasa_callback(State(bots): State<Bots>, Json(body): Json<Value>) -> &'static str {
    bots.rasa.lock().unwrap().push(body.clone());
    let base = bots.flowhost.get().cloned().expect("flowhost started");
    let message = json!({"recipient_id": body["sender"], "text": format!("Callback: {}", body["message"].as_str().unwrap_or(""))});
    let status = reqwest::Client::new()
        .post(format!("{base}/chatbots/rasa_cb/callback"))
        .json(&message)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    bots.callback_statuses.lock().unwrap().push(status);
    "success"
}

/// The SDK example's imaginary relay bot: `now` is answered at once,
/// anything else later at `reply_url`, with a hand-off to sales.
async fn relay_bot(State(bots): State<Bots>, Json(body): Json<Value>) -> Response {
    let text = body["text"].as_str().unwrap_or("").to_string();
    if text == "now" {
        return Json(json!({"replies": ["Relayed at once"]})).into_response();
    }
    // The later answer may reach flowhost before this 202 does.
    let reply_url = body["reply_url"].as_str().unwrap().to_string();
    tokio::spawn(async move {
        let answer = json!({"replies": [format!("Relayed later: {text}")], "handoff": "sales"});
        let response = reqwest::Client::new()
            .post(reply_url)
            .json(&answer)
            .send()
            .await;
        let status = response.map_or(0, |r| r.status().as_u16());
        bots.callback_statuses.lock().unwrap().push(status);
    });
    StatusCode::ACCEPTED.into_response()
}

struct Fixture {
    server: Server,
    base: String,
    graph: Graph,
    bots: Bots,
    http: reqwest::Client,
    config: flowhost::config::ServerConfig,
}

impl Fixture {
    async fn start(dir: &std::path::Path) -> Fixture {
        Self::with_plugins(dir, None).await
    }

    /// With `plugins_dir` holding one of the SDK's example relay adapters
    /// (declared as `adapter`), the flow gets a chatbot on it.
    async fn with_plugins(
        dir: &std::path::Path,
        relay: Option<(&std::path::Path, &str)>,
    ) -> Fixture {
        let (graph, graph_url) = Graph::start().await;
        let (bots, bots_url) = Bots::start().await;
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut config = flowhost_tests::server_config(
            dir,
            &flow(
                &graph_url,
                &bots_url,
                closed_port,
                relay.map(|(_, name)| name),
            ),
        );
        config.plugins_dir = relay.map(|(dir, _)| dir.to_path_buf());
        for adapter in ["webhook-bot", "rasa"]
            .into_iter()
            .chain(relay.map(|(_, name)| name))
        {
            config
                .plugins
                .insert(adapter.into(), flowhost_tests::loopback_request());
        }
        let server = flowhost::app::start(config.clone())
            .await
            .expect("the server starts");
        let base = format!("http://{}", server.addr);
        let _ = bots.flowhost.set(base.clone());
        Fixture {
            server,
            base,
            graph,
            bots,
            http: reqwest::Client::new(),
            config,
        }
    }

    /// A signed webhook carrying one message item from `customer` to the
    /// account `(key, ig_id)`; `extra` is merged into `message`.
    async fn write(
        &self,
        (_, ig_id): (&str, &str),
        customer: &str,
        text: &str,
        extra: Value,
    ) -> String {
        let mid = format!("mid-{customer}-{}", uuid());
        let mut message = json!({"mid": mid, "text": text});
        if let (Some(message), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
            message.extend(extra.clone());
        }
        let status = flowhost_tests::instagram::deliver_message(
            &self.http,
            &self.base,
            SECRET,
            ig_id,
            customer,
            message,
            now_ms(),
        )
        .await;
        assert_eq!(status, 200);
        mid
    }

    async fn position(&self, (account, _): (&str, &str), customer: &str) -> Position {
        self.server
            .storage
            .conversation(&conversation_key(account, customer))
            .await
            .unwrap()
            .map(|s| s.position)
            .unwrap_or(Position::Start)
    }

    async fn history(&self, (account, _): (&str, &str), customer: &str) -> Vec<String> {
        self.server
            .storage
            .history(&conversation_key(account, customer))
            .await
            .unwrap()
            .into_iter()
            .map(|h| format!("{}: {}", h.kind, h.text))
            .collect()
    }

    async fn wait_for_queue(&self, account: (&str, &str), customer: &str, queue: &str) {
        eventually(&format!("{customer} waits in {queue}"), || async {
            matches!(self.position(account, customer).await, Position::Queued { queue: q, .. } if q == queue).then_some(())
        })
        .await;
    }

    /// Posts `body` to `url` (a callback URL); status and JSON answer.
    async fn callback(&self, url: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The bot's request for the message `mid`.
    async fn bot_request(&self, mid: &str) -> Value {
        eventually(&format!("the bot got {mid}"), || async {
            self.bots
                .webhook
                .lock()
                .unwrap()
                .iter()
                .find(|r| r["name"] == mid)
                .cloned()
        })
        .await
    }
}

/// Polls `check` until it gives a value (20 s at most).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A message id no other test message has.
fn uuid() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", now_ms())
}

fn texts(graph: &Graph, customer: &str) -> Vec<String> {
    graph
        .to(customer)
        .iter()
        .filter_map(|b| b["message"]["text"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn the_webhook_bot_gets_the_documented_body_and_answers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "5101";
    let image = json!({"attachments": [{"type": "image", "payload": {"url": "https://cdn.example/p.jpg"}}]});
    let mid = fx.write(SHOP, customer, "hello", image).await;

    let request = fx.bot_request(&mid).await;
    // The start message came first, with the start text and nulls.
    let start = fx.bots.webhook_requests_from(customer)[0].clone();
    assert_eq!(start["text"], "start");
    assert_eq!(start["direction"], "IN");
    assert_eq!(
        (&start["quickreply"], &start["attachments"]),
        (&Value::Null, &Value::Null)
    );
    assert_ne!(start["name"], mid);
    assert_eq!(start["conversation"], request["conversation"]);

    let conversation = &request["conversation"];
    assert_eq!(request["direction"], "IN");
    assert_eq!(request["text"], "hello");
    assert_eq!(request["quickreply"], Value::Null);
    assert_eq!(
        request["attachments"],
        json!([{"link": "https://cdn.example/p.jpg", "title": null, "type": "image", "size": null}])
    );
    assert_eq!(conversation["name"], format!("shop-ig:{customer}:1"));
    // Instagram's webhook names nobody: an empty title is null.
    assert_eq!(conversation["title"], Value::Null);
    assert_eq!(
        conversation["customFields"],
        json!([
            {"name": "customer", "title": "Customer", "value": customer},
            {"name": "empty", "title": "Empty", "value": null}
        ])
    );
    for time in [&request["time"], &conversation["time"]] {
        let time = time.as_str().expect("times are strings");
        assert!(
            time.parse::<jiff::Timestamp>().is_ok(),
            "{time} is RFC 3339"
        );
    }
    let response_url = conversation["response_url"].as_str().unwrap();
    let expected = format!(
        "{}/chatbots/helper/callback?conversation=shop-ig%3A{customer}%3A1&hash=",
        fx.base
    );
    assert!(response_url.starts_with(&expected), "{response_url}");
    assert!(response_url.len() > expected.len() + 16, "the hash is long");

    let answer = fx
        .graph
        .wait_for_text(customer, "Hi from the bot\nShop: https://example.com/shop")
        .await;
    assert_eq!(
        answer["message"]["quick_replies"],
        json!([{"content_type": "text", "title": "Sales", "payload": "qr-sales"}])
    );

    // The customer presses the quick reply: the bot gets its name.
    let pressed = fx
        .write(
            SHOP,
            customer,
            "Sales",
            json!({"quick_reply": {"payload": "qr-sales"}}),
        )
        .await;
    let request = fx.bot_request(&pressed).await;
    assert_eq!(request["quickreply"], json!({"name": "qr-sales"}));
    assert_eq!(request["text"], "Sales");
    assert_eq!(request["attachments"], Value::Null);
    fx.graph.wait_for_text(customer, "You pressed sales").await;
    assert!(matches!(
        fx.position(SHOP, customer).await,
        Position::Chatbot { .. }
    ));
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_later_answer_comes_through_the_callback_once_and_only_with_the_right_hash() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "5201";
    let mid = fx.write(SHOP, customer, "later", json!({})).await;
    let request = fx.bot_request(&mid).await;
    let url = request["conversation"]["response_url"]
        .as_str()
        .unwrap()
        .to_string();
    let conversation = request["conversation"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = url.rsplit_once("hash=").unwrap().1.to_string();

    // Forged: a wrong hash, an unknown conversation, another chatbot's URL.
    let answer = json!({"conversation": {"name": conversation}, "hash": hash, "text": "Here is your answer"});
    let body = serde_json::to_vec(&answer).unwrap();
    let forged_url = url.replace(&hash, "0123456789abcdef0123456789abcdef");
    for wrong in [
        forged_url.clone(),
        url.replace(&format!("%3A{customer}%3A"), "%3A999%3A"),
        url.replace("/chatbots/helper/", "/chatbots/gone/"),
    ] {
        let (status, refusal) = fx.callback(&wrong, body.clone()).await;
        assert_eq!(status, 403, "{wrong}: {refusal}");
        assert_eq!(refusal["error"]["code"], "forbidden");
    }
    let (status, _) = fx
        .callback(
            &url.replace("/chatbots/helper/", "/chatbots/nobody/"),
            body.clone(),
        )
        .await;
    assert_eq!(status, 404);
    // The body may not name another conversation than the URL.
    let other = json!({"conversation": {"name": "shop-ig:1:1"}, "text": "x"});
    let (status, refusal) = fx.callback(&url, serde_json::to_vec(&other).unwrap()).await;
    assert_eq!(status, 400, "{refusal}");
    // Not JSON, or not the protocol: the adapter says why.
    let (status, refusal) = fx.callback(&url, b"{not json".to_vec()).await;
    assert_eq!(
        (status, refusal["error"]["code"].as_str()),
        (400, Some("bot_protocol"))
    );
    let (status, refusal) = fx.callback(&url, br#"{"text": 42}"#.to_vec()).await;
    assert_eq!(status, 400, "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`text` must be a string")
    );
    // Too large: refused before anything reads it.
    let huge = serde_json::to_vec(&json!({"text": "x".repeat(100 * 1024)})).unwrap();
    let (status, _) = fx.callback(&url, huge).await;
    assert_eq!(status, 413);
    assert!(
        texts(&fx.graph, customer).is_empty(),
        "nothing refused was sent"
    );

    // The real one, twice (a bot retrying): sent once.
    let (status, accepted) = fx.callback(&url, body.clone()).await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (200, Some("accepted"))
    );
    let (status, again) = fx.callback(&url, body.clone()).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
    fx.graph
        .wait_for_text(customer, "Here is your answer")
        .await;

    // A later answer hands off to a queue by its alias.
    let handoff =
        serde_json::to_vec(&json!({"text": "A person will take over", "transfer": "10001"}))
            .unwrap();
    assert_eq!(fx.callback(&url, handoff).await.0, 200);
    fx.wait_for_queue(SHOP, customer, "sales").await;
    fx.graph
        .wait_for_text(customer, "A person will take over")
        .await;

    // Now the conversation has moved on: a callback is told where it went.
    let late = serde_json::to_vec(&json!({"text": "Anything else?"})).unwrap();
    let (status, refusal) = fx.callback(&url, late).await;
    assert_eq!(status, 409, "{refusal}");
    assert_eq!(refusal["error"]["code"], "moved_on");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waits in queue `sales`")
    );
    // And a forged one still learns nothing.
    assert_eq!(fx.callback(&forged_url, body).await.0, 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        texts(&fx.graph, customer),
        ["Here is your answer", "A person will take over"],
        "each answer once, nothing after the hand-off"
    );
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_handoff_names_a_queue_by_name_or_alias_and_an_unknown_one_takes_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    fx.write(SHOP, "5301", "human", json!({})).await;
    fx.write(SHOP, "5302", "alias", json!({})).await;
    fx.write(SHOP, "5303", "nowhere", json!({})).await;
    fx.wait_for_queue(SHOP, "5301", "sales").await;
    fx.graph.wait_for_text("5301", "Passing you to sales").await;
    fx.wait_for_queue(SHOP, "5302", "sales").await;
    fx.wait_for_queue(SHOP, "5303", "support").await;
    fx.graph.wait_for_text("5303", "Off you go").await;
    fx.graph.wait_for_text("5303", SORRY).await;
    let history = fx.history(SHOP, "5303").await;
    assert!(
        history
            .iter()
            .any(|h| h.contains("handed off to `no-such-queue`, which is neither a queue")),
        "{history:#?}"
    );
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_bot_that_fails_takes_the_fallback_and_a_slow_one_holds_up_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    // The slow bot first; the others write while it keeps its customer waiting.
    fx.write(SHOP, "5401", "slow", json!({})).await;
    eventually("the bot got the slow message", || async {
        let requests = fx.bots.webhook_requests_from("5401");
        requests.iter().any(|r| r["text"] == "slow").then_some(())
    })
    .await;
    fx.write(SHOP, "5402", "boom", json!({})).await;
    fx.write(SHOP, "5403", "garbage", json!({})).await;
    fx.write(SHOP, "5404", "wrong shape", json!({})).await;
    fx.write(GONE, "5405", "anyone there?", json!({})).await;
    fx.write(SHOP, "5406", "quick question", json!({})).await;

    fx.graph.wait_for_text("5406", "echo: quick question").await;
    for customer in ["5401", "5402", "5403", "5404"] {
        fx.graph.wait_for_text(customer, SORRY).await;
        fx.wait_for_queue(SHOP, customer, "support").await;
    }
    fx.graph.wait_for_text("5405", SORRY).await;
    fx.wait_for_queue(GONE, "5405", "support").await;

    // The slow customer's fallback came after the others were answered.
    let order: Vec<String> = fx
        .graph
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["recipient"]["id"].as_str().unwrap().to_string())
        .collect();
    let slow = order.iter().position(|c| c == "5401").unwrap();
    let quick = order.iter().position(|c| c == "5406").unwrap();
    assert!(
        quick < slow,
        "a slow bot delayed another customer: {order:?}"
    );

    for (account, customer, why) in [
        (SHOP, "5401", "(timeout)"),
        (
            SHOP,
            "5402",
            "(bot_unavailable): chatbot unavailable: the bot answered HTTP 500",
        ),
        (SHOP, "5403", "(bot_protocol)"),
        (SHOP, "5404", "`text` must be a string"),
        (GONE, "5405", "(bot_unavailable)"),
    ] {
        let history = fx.history(account, customer).await.join("\n");
        assert!(history.contains(why), "{customer}: {history}");
    }
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn many_customers_talk_to_the_bot_at_once_and_each_gets_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customers: Vec<String> = (0..40).map(|i| format!("56{i:02}")).collect();
    let writer = &fx;
    futures::future::join_all(customers.iter().map(|c| async move {
        writer
            .write(SHOP, c, &format!("question of {c}"), json!({}))
            .await
    }))
    .await;
    for customer in &customers {
        fx.graph
            .wait_for_text(customer, &format!("echo: question of {customer}"))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for customer in &customers {
        assert_eq!(texts(&fx.graph, customer).len(), 1, "{customer}");
        let said: Vec<Value> = fx
            .bots
            .webhook_requests_from(customer)
            .iter()
            .map(|r| r["text"].clone())
            .collect();
        assert_eq!(
            said,
            [json!("start"), json!(format!("question of {customer}"))]
        );
    }
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_callback_after_a_restart_reaches_the_customer() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "5501";
    let mid = fx.write(SHOP, customer, "later", json!({})).await;
    let url = fx.bot_request(&mid).await["conversation"]["response_url"]
        .as_str()
        .unwrap()
        .to_string();
    let Fixture {
        server,
        base,
        graph,
        bots,
        config,
        ..
    } = fx;
    server.stop().await.unwrap();

    let server = flowhost::app::start(config)
        .await
        .expect("the server starts again");
    let new_base = format!("http://{}", server.addr);
    let url = url.replace(&base, &new_base);
    let body = serde_json::to_vec(&json!({"text": "Sorry for the wait"})).unwrap();
    let response = reqwest::Client::new()
        .post(&url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    graph.wait_for_text(customer, "Sorry for the wait").await;
    assert_eq!(
        bots.webhook_requests_from(customer).len(),
        2,
        "start and `later`"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rasa_rest_buttons_become_quick_replies_and_hand_off_by_intent_or_custom() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "5701";
    fx.write(RASA, customer, "hi", json!({})).await;
    let greeting = fx
        .graph
        .wait_for_text(customer, "Hey! How can I help?")
        .await;
    assert_eq!(
        greeting["message"]["quick_replies"],
        json!([
            {"content_type": "text", "title": "Talk to a human", "payload": "/handoff{\"queue\":\"sales\"}"},
            {"content_type": "text", "title": "Prices", "payload": "/prices"}
        ])
    );
    assert_eq!(
        fx.bots.rasa.lock().unwrap()[..2],
        [
            json!({"sender": format!("rasa-ig:{customer}:1"), "message": "/session_start"}),
            json!({"sender": format!("rasa-ig:{customer}:1"), "message": "hi"})
        ]
    );

    // A pressed button's payload is what Rasa reads.
    fx.write(
        RASA,
        customer,
        "Prices",
        json!({"quick_reply": {"payload": "/prices"}}),
    )
    .await;
    fx.graph.wait_for_text(customer, "Prices start at 10").await;
    let image = eventually("the image was sent", || async {
        fx.graph
            .to(customer)
            .into_iter()
            .find(|b| b["message"]["attachment"].is_object())
    })
    .await;
    assert_eq!(
        image["message"]["attachment"],
        json!({"type": "image", "payload": {"url": "https://example.com/prices.png"}})
    );

    // The hand-off intent goes to its queue without asking Rasa.
    let asked = fx.bots.rasa.lock().unwrap().len();
    fx.write(
        RASA,
        customer,
        "Talk to a human",
        json!({"quick_reply": {"payload": "/handoff{\"queue\":\"sales\"}"}}),
    )
    .await;
    fx.wait_for_queue(RASA, customer, "sales").await;
    assert_eq!(fx.bots.rasa.lock().unwrap().len(), asked);

    // Rasa's own `custom: {handoff}` does the same.
    fx.write(RASA, "5702", "agent please", json!({})).await;
    fx.wait_for_queue(RASA, "5702", "support").await;
    fx.graph.wait_for_text("5702", "Connecting you").await;
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn rasa_callback_channel_answers_through_the_fixed_callback_url() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "5801";
    fx.write(RASA_CB, customer, "hi there", json!({})).await;
    fx.graph.wait_for_text(customer, "Callback: hi there").await;
    let sender = fx.bots.rasa.lock().unwrap()[0]["sender"]
        .as_str()
        .unwrap()
        .to_string();
    let (conversation, hash) = sender.rsplit_once('~').expect("conversation~hash");
    assert_eq!(conversation, format!("rasacb-ig:{customer}:1"));
    assert_eq!(hash.len(), 32);
    assert_eq!(*fx.bots.callback_statuses.lock().unwrap(), [200]);

    // The fixed URL takes nothing but a sender flowhost gave out.
    let url = format!("{}/chatbots/rasa_cb/callback", fx.base);
    for recipient in [
        format!("{conversation}~{}", "f".repeat(32)),
        conversation.to_string(),
    ] {
        let body =
            serde_json::to_vec(&json!({"recipient_id": recipient, "text": "forged"})).unwrap();
        let (status, refusal) = fx.callback(&url, body).await;
        assert!(
            [400, 403].contains(&status),
            "{recipient}: {status} {refusal}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(texts(&fx.graph, customer), ["Callback: hi there"]);
    fx.server.stop().await.unwrap();
}

/// Builds the SDK's example adapter exactly as its first lines say, from
/// `sdk/`, and returns the component.
fn build_sdk_example() -> std::path::PathBuf {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let example = std::fs::read_to_string(sdk.join("examples/relay_bot.rs")).unwrap();
    let command = example
        .lines()
        .find_map(|line| {
            line.split('`')
                .nth(1)
                .filter(|c| c.starts_with("cargo build"))
        })
        .expect("the example says how to build it");
    let mut words = command.split_whitespace();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(words.by_ref().skip(1)).current_dir(&sdk);
    // The test's own build settings are not the partner's.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        build.env_remove(var);
    }
    let output = build.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = sdk.join("target/wasm32-wasip2/release/examples/relay_bot.wasm");
    assert!(example.contains("target/wasm32-wasip2/release/examples/relay_bot.wasm"));
    assert!(example.contains("`plugins_dir` as `relay-bot.wasm`"));
    built
}

#[tokio::test]
async fn an_adapter_built_from_the_sdk_example_answers_at_once_and_later() {
    let component = tokio::task::spawn_blocking(build_sdk_example)
        .await
        .unwrap();
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(&component, plugins.path().join("relay-bot.wasm")).unwrap();
    relays_at_once_and_later(plugins.path(), "relay-bot").await;
}

/// Issue 13, item 3: a chatbot adapter written in JavaScript, as `flowhost
/// plugin new --lang js --world chatbot` writes it and its `npm run build`
/// makes it, speaks the same protocol over the webhook path.
#[tokio::test]
async fn a_javascript_adapter_answers_at_once_and_later() {
    let plugins = tempfile::tempdir().unwrap();
    flowhost_tests::partner::scaffolded_component(plugins.path(), "js", "chatbot", "js-relay-bot")
        .await;
    relays_at_once_and_later(plugins.path(), "js-relay-bot").await;
}

/// The same in Python (`--lang python`, built by the project's `./build`).
#[tokio::test]
async fn a_python_adapter_answers_at_once_and_later() {
    let plugins = tempfile::tempdir().unwrap();
    flowhost_tests::partner::scaffolded_component(
        plugins.path(),
        "python",
        "chatbot",
        "py-relay-bot",
    )
    .await;
    relays_at_once_and_later(plugins.path(), "py-relay-bot").await;
}

/// A relay adapter in `plugins` (declared as `adapter`), with customers
/// writing at once: 16 say "now" and are answered at once; 8 others are
/// answered later through the callback, which hands each to `sales`.
/// Every customer gets exactly one answer.
async fn relays_at_once_and_later(plugins: &std::path::Path, adapter: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::with_plugins(dir.path(), Some((plugins, adapter))).await;
    let at_once: Vec<String> = (0..16).map(|i| format!("59{i:02}")).collect();
    let later: Vec<String> = (16..24).map(|i| format!("59{i:02}")).collect();
    let writer = &fx;
    let writes = at_once
        .iter()
        .map(|c| (c, "now".to_string()))
        .chain(later.iter().map(|c| (c, format!("take your time, {c}"))));
    futures::future::join_all(
        writes.map(|(c, text)| async move { writer.write(RELAY, c, &text, json!({})).await }),
    )
    .await;
    for customer in &at_once {
        fx.graph.wait_for_text(customer, "Relayed at once").await;
    }
    for customer in &later {
        fx.graph
            .wait_for_text(
                customer,
                &format!("Relayed later: take your time, {customer}"),
            )
            .await;
        fx.wait_for_queue(RELAY, customer, "sales").await;
    }
    let statuses = fx.bots.callback_statuses.lock().unwrap().clone();
    assert_eq!(statuses, [200; 8], "every later answer was taken once");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for customer in at_once.iter().chain(&later) {
        assert_eq!(
            texts(&fx.graph, customer).len(),
            1,
            "{customer}: one answer"
        );
    }
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_bot_flooding_its_callback_url_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "6001";
    let mid = fx.write(SHOP, customer, "later", json!({})).await;
    let url = fx.bot_request(&mid).await["conversation"]["response_url"]
        .as_str()
        .unwrap()
        .to_string();
    // One after another, as fast as it can (at once, most would be told
    // `busy`: eight are read at a time).
    let mut statuses = Vec::new();
    for i in 0..70 {
        let body = serde_json::to_vec(&json!({ "text": format!("answer {i}") })).unwrap();
        let (status, answer) = fx.callback(&url, body).await;
        if status == 429 {
            assert_eq!(answer["error"]["code"], "rate_limited");
        }
        statuses.push(status);
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((accepted, refused), (60, 10), "{statuses:?}");
    eventually("the accepted answers were sent", || async {
        (texts(&fx.graph, customer).len() == 60).then_some(())
    })
    .await;
    fx.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_hash_of_an_earlier_visit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "6101";
    let url_of = |request: Value| {
        request["conversation"]["response_url"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = fx.write(SHORT, customer, "later", json!({})).await;
    let stale = url_of(fx.bot_request(&first).await);
    // The session times out; the next message is a new visit, a new hash.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = fx.write(SHORT, customer, "later", json!({})).await;
    let fresh = url_of(fx.bot_request(&second).await);
    assert_ne!(stale, fresh);

    // The bot hears of the new visit before its turn is written; until then
    // the old hash is still the state's, so the new answer goes first: once
    // it is sent, the new visit is on disk.
    let body = serde_json::to_vec(&json!({"text": "a new answer"})).unwrap();
    assert_eq!(fx.callback(&fresh, body).await.0, 200);
    fx.graph.wait_for_text(customer, "a new answer").await;
    let body = serde_json::to_vec(&json!({"text": "an old answer"})).unwrap();
    let (status, refusal) = fx.callback(&stale, body).await;
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(texts(&fx.graph, customer), ["a new answer"]);
    fx.server.stop().await.unwrap();
}

/// An apply that removes a chatbot leaves the sessions that began with it
/// on their own version: the bot's later answer is still taken and sent.
/// A chatbot no version has stays unknown.
#[tokio::test]
async fn a_chatbot_removed_by_an_apply_still_answers_the_sessions_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::start(dir.path()).await;
    let customer = "6201";
    let mid = fx.write(SHORT, customer, "later", json!({})).await;
    let url = fx.bot_request(&mid).await["conversation"]["response_url"]
        .as_str()
        .unwrap()
        .to_string();

    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(flowhost_tests::ADMIN_TOKEN);
    let sandbox: Value = admin(fx.http.get(format!("{}/admin/sandbox", fx.base)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut document = sandbox["document"].clone();
    document["chatbots"]
        .as_object_mut()
        .unwrap()
        .remove("helper");
    for connector in ["dm", "short"] {
        document["connectors"][connector]["next"] = json!({"queue": "support"});
    }
    let put = admin(fx.http.put(format!("{}/admin/sandbox", fx.base)))
        .header("content-type", "application/json")
        .body(document.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let apply = admin(fx.http.post(format!("{}/admin/apply", fx.base)))
        .json(&json!({"comment": "the helper retires"}))
        .send()
        .await
        .unwrap();
    assert_eq!(apply.status(), 200, "{}", apply.text().await.unwrap());

    let body = serde_json::to_vec(&json!({"text": "still here"})).unwrap();
    let (status, answer) = fx.callback(&url, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    fx.graph.wait_for_text(customer, "still here").await;
    let nobody = url.replace("/chatbots/helper/", "/chatbots/nobody/");
    assert_eq!(fx.callback(&nobody, body).await.0, 404);
    fx.server.stop().await.unwrap();
}
