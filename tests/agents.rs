//! Queues and human agents through the running server: customers write
//! through signed Instagram webhooks, agents work through the agent API and
//! its live stream, replies reach a stand-in of the Graph API.

use std::time::{Duration, Instant};

use flowhost::app::Server;
use flowhost::channels::instagram::signature::sign;
use flowhost_tests::graph::Graph;
use futures::StreamExt;
use serde_json::{Value, json};

const IG_ID: &str = "17841400000000077";
const SECRET: &str = "agents-app-secret";
const ACCOUNT: &str = "shop-ig";

/// Every customer's message goes to a queue; `menu` is where an agent can
/// send a customer back to the bot.
fn flow(graph: &str, queues: &str) -> String {
    format!(
        r#"
default_language: en
languages: [en, tr]
accounts:
  {ACCOUNT}:
    channel: instagram
    ig_user_id: "{IG_ID}"
    access_token: graph-token
    api_base_url: {graph}
    app_secret: {SECRET}
    verify_token: verify-me
connectors:
  dm:
    title: DMs
    account: {ACCOUNT}
    next: {{ decision_tree: menu }}
    default_queue: sales
    # 30 days: the 7-day test writes as if from 8 days ago.
    session_timeout_seconds: 2592000
decision_trees:
  menu:
    title: Menu
    start: ask
    decisions:
      ask:
        prompt: {{ text: "Hi from the bot! Type sales or anything else." }}
        targets:
          - when: pattern
            pattern: '^sales$'
            go: {{ queue: sales }}
          - when: default
            go: {{ queue: support }}
terminates:
  nobody:
    title: Nobody online
    cause: no-agent
    auto_response: {{ text: "Nobody is here right now, write again later." }}
queues:
{queues}
"#
    )
}

const QUEUES: &str = r#"
  support:
    name: Support
    ring_strategy: ring_all
    agent_ring_time: 30
    max_concurrent_chats: 1
    extra_chats: 1
  sales:
    name: Sales
    ring_strategy: round_robin
    agent_ring_time: 2
    away_after_missed_offers: 2
"#;

struct Desk {
    server: Server,
    base: String,
    graph: Graph,
    http: reqwest::Client,
}

impl Desk {
    async fn start(dir: &std::path::Path, queues: &str) -> Desk {
        let (graph, graph_url) = Graph::start().await;
        let config = flowhost_tests::server_config(dir, &flow(&graph_url, queues));
        Self::with(config, graph).await
    }

    async fn with(config: flowhost::config::ServerConfig, graph: Graph) -> Desk {
        let server = flowhost::app::start(config)
            .await
            .expect("the server starts");
        Desk {
            base: format!("http://{}", server.addr),
            server,
            graph,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The customer reaches a queue (`text` picks it), the agent is
    /// offered the conversation and accepts it.
    async fn take(&self, token: &str, customer: &str, text: &str) {
        self.reach_queue(customer, text).await;
        self.list_until(token, "offered", |l| customers(l, "offers") == [customer])
            .await;
        self.ok(token, &path(customer, "accept"), json!({})).await;
    }

    /// A POST that must succeed; its answer.
    async fn ok(&self, token: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.post(token, path, body).await;
        assert_eq!(status, 200, "POST {path}: {answer}");
        answer
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.call("GET", token, path, None).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", token, path, Some(body)).await
    }

    /// Creates an agent serving `queues`, online; returns their token.
    async fn agent(&self, id: &str, queues: &[&str], role: &str) -> String {
        let queues: Vec<Value> = queues.iter().map(|q| json!({"queue": q})).collect();
        let body = json!({"id": id, "name": id.to_uppercase(), "queues": queues, "role": role, "status": "online"});
        let (status, created) = self
            .post(flowhost_tests::ADMIN_TOKEN, "/admin/agents", body)
            .await;
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().unwrap().to_string()
    }

    /// A signed webhook with one message from `customer`, written `age`
    /// ago.
    async fn customer_writes_at(&self, customer: &str, text: &str, written_ms: u64) {
        let mid = format!("mid-{customer}-{}", uuid());
        let message = json!({"mid": mid, "text": text});
        let status = flowhost_tests::instagram::deliver_message(
            &self.http, &self.base, SECRET, IG_ID, customer, message, written_ms,
        )
        .await;
        assert_eq!(status, 200);
    }

    async fn customer_writes(&self, customer: &str, text: &str) {
        self.customer_writes_at(customer, text, now_ms()).await
    }

    /// The customer greets the bot, then answers its menu with `text`
    /// (`sales` for the sales queue, anything else for support).
    async fn reach_queue(&self, customer: &str, text: &str) {
        self.reach_queue_at(customer, text, now_ms()).await
    }

    async fn reach_queue_at(&self, customer: &str, text: &str, written_ms: u64) {
        self.customer_writes_at(customer, "hello", written_ms).await;
        self.customer_writes_at(customer, text, written_ms + 1)
            .await;
    }

    /// Waits until `check` holds for the agent's list.
    async fn list_until(&self, token: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, list) = self.get(token, "/agent/conversations").await;
            assert_eq!(status, 200, "{list}");
            if check(&list) {
                return list;
            }
            assert!(Instant::now() < deadline, "never {what}: {list:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the customer's conversation is (null before its first turn).
    async fn position(&self, customer: &str) -> Value {
        let key = flowhost::model::conversation_key(ACCOUNT, customer);
        let state = self.server.storage.conversation(&key).await.unwrap();
        state.map_or(Value::Null, |s| serde_json::to_value(&s.position).unwrap())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn uuid() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn path(customer: &str, action: &str) -> String {
    format!("/agent/conversations/{ACCOUNT}/{customer}/{action}")
}

fn customers(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_str().unwrap().to_string())
        .collect()
}

/// A live stream of an agent's events, read as Server-Sent Events.
struct Stream {
    events: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

#[derive(Debug)]
struct Event {
    id: Option<u64>,
    kind: String,
    data: Value,
}

impl Stream {
    async fn open(desk: &Desk, token: &str, last_seen: Option<u64>) -> Stream {
        let mut request = desk
            .http
            .get(format!("{}/agent/stream", desk.base))
            .bearer_auth(token);
        if let Some(id) = last_seen {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Stream {
            events: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event that is not a keep-alive comment.
    async fn next(&mut self) -> Event {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event {
                    id: None,
                    kind: "message".into(),
                    data: Value::Null,
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id:") {
                        event.id = id.trim().parse().ok();
                    } else if let Some(kind) = line.strip_prefix("event:") {
                        event.kind = kind.trim().to_string();
                        any = true;
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data = serde_json::from_str(data.trim()).unwrap();
                    }
                }
                if any {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.events.next())
                .await
                .expect("an event within 20 s")
                .expect("the stream stays open")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one of `kind` arrives; returns it.
    async fn until(&mut self, kind: &str) -> Event {
        loop {
            let event = self.next().await;
            if event.kind == kind {
                return event;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_is_offered_accepted_answered_transferred_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let ana = desk.agent("ana", &["support"], "agent").await;
    let bo = desk.agent("bo", &["support"], "agent").await;
    let mut ana_stream = Stream::open(&desk, &ana, None).await;

    desk.customer_writes("cust-1", "hello").await;
    desk.graph
        .wait_for_text("cust-1", "Hi from the bot! Type sales or anything else.")
        .await;
    desk.customer_writes("cust-1", "my parcel is late").await;

    // ring_all: both see the offer; it reaches ana's stream live.
    let offer = ana_stream.until("offer").await;
    assert_eq!(
        offer.data["position"]["offer"]["agents"],
        json!(["ana", "bo"])
    );
    for token in [&ana, &bo] {
        desk.list_until(token, "offered", |l| customers(l, "offers") == ["cust-1"])
            .await;
    }

    // Both accept at the same moment: exactly one wins.
    let accept = path("cust-1", "accept");
    let (first, second) = tokio::join!(
        desk.post(&ana, &accept, json!({})),
        desk.post(&bo, &accept, json!({})),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let (winner, other, other_id) = if first.0 == 200 {
        (&ana, &bo, "bo")
    } else {
        (&bo, &ana, "ana")
    };
    let loser = if first.0 == 200 { &second.1 } else { &first.1 };
    assert_eq!(loser["error"]["code"], "conflict", "{loser}");

    // The history the agent sees includes the bot's part.
    let (status, conversation) = desk
        .get(winner, &format!("/agent/conversations/{ACCOUNT}/cust-1"))
        .await;
    assert_eq!(status, 200, "{conversation}");
    let texts: Vec<&str> = conversation["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"hello") && texts.contains(&"my parcel is late"),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("Hi from the bot")),
        "{texts:?}"
    );
    assert_eq!(conversation["unread"], 1);

    // The agent answers: a HUMAN_AGENT-tagged send.
    let (status, body) = desk
        .post(
            winner,
            &path("cust-1", "reply"),
            json!({"text": "Let me check that for you."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = desk
        .graph
        .wait_for_text("cust-1", "Let me check that for you.")
        .await;
    assert_eq!(sent["tag"], "HUMAN_AGENT", "{sent}");
    assert_eq!(sent["messaging_type"], "MESSAGE_TAG", "{sent}");

    // The other agent cannot answer it.
    let (status, _) = desk
        .post(other, &path("cust-1", "reply"), json!({"text": "me too"}))
        .await;
    assert_eq!(status, 403);

    // Transfer to the other agent, who closes it.
    let (status, body) = desk
        .post(
            winner,
            &path("cust-1", "transfer"),
            json!({"agent": other_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["position"]["agent"], other_id);
    desk.list_until(other, "given the transfer", |l| {
        customers(l, "conversations") == ["cust-1"]
    })
    .await;
    let (status, body) = desk
        .post(
            other,
            &path("cust-1", "close"),
            json!({"cause": "order-delayed", "answered": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(desk.position("cust-1").await["at"], "ended");
    let key = flowhost::model::conversation_key(ACCOUNT, "cust-1");
    let ending = desk
        .server
        .storage
        .conversation(&key)
        .await
        .unwrap()
        .unwrap()
        .ending
        .unwrap();
    assert_eq!(
        (
            ending.cause.as_str(),
            ending.answered,
            ending.queue.as_deref()
        ),
        ("order-delayed", true, Some("support"))
    );
    desk.list_until(other, "freed", |l| customers(l, "conversations").is_empty())
        .await;

    // The next message starts a new session with the bot.
    desk.customer_writes("cust-1", "one more thing").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while desk
        .graph
        .to("cust-1")
        .iter()
        .filter(|b| b["message"]["text"] == "Hi from the bot! Type sales or anything else.")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the bot never greeted the new session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_nobody_takes_rings_the_next_agent_and_missed_offers_set_an_agent_away() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let cem = desk.agent("cem", &["sales"], "agent").await;
    let dee = desk.agent("dee", &["sales"], "agent").await;

    desk.reach_queue("cust-2", "sales").await;

    // Round robin with a 2 s ring time: the offer moves from one agent to
    // the other, and back.
    let mut rung = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rung.len() < 3 {
        assert!(Instant::now() < deadline, "offers rang {rung:?}");
        let position = desk.position("cust-2").await;
        if let Some(agents) = position["offer"]["agents"].as_array() {
            let agents: Vec<String> = agents.iter().map(|a| a.as_str().unwrap().into()).collect();
            if rung.last() != Some(&agents) {
                rung.push(agents);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        rung[0], rung[1],
        "the next offer goes to the other agent: {rung:?}"
    );
    assert_eq!(rung[0], rung[2], "{rung:?}");

    // After two missed offers each, both are away and nothing rings.
    for token in [&cem, &dee] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, me) = desk.get(token, "/agent/me").await;
            if me["status"] == "away" {
                break;
            }
            assert!(Instant::now() < deadline, "never set away: {me}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(desk.position("cust-2").await["offer"], Value::Null);

    // Back online, cem is offered it again and takes it.
    let (status, _) = desk
        .call(
            "PUT",
            &cem,
            "/agent/status",
            Some(json!({"status": "online"})),
        )
        .await;
    assert_eq!(status, 200);
    desk.list_until(&cem, "offered again", |l| {
        customers(l, "offers") == ["cust-2"]
    })
    .await;
    let (status, body) = desk.post(&cem, &path("cust-2", "accept"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_counts_offers_and_extra_chats_are_taken_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let eda = desk.agent("eda", &["support"], "agent").await;

    for customer in ["cap-1", "cap-2", "cap-3"] {
        desk.reach_queue(customer, "help").await;
    }
    // max_concurrent_chats 1: one offer at a time.
    let list = desk
        .list_until(&eda, "offered one", |l| customers(l, "offers").len() == 1)
        .await;
    assert_eq!(customers(&list, "waiting").len(), 2, "{list:#}");
    let first = customers(&list, "offers")[0].clone();
    let (status, body) = desk.post(&eda, &path(&first, "accept"), json!({})).await;
    assert_eq!(status, 200, "{body}");

    // At capacity nothing more is offered; one extra chat may be picked up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let list = desk.list_until(&eda, "listed", |_| true).await;
    assert!(customers(&list, "offers").is_empty(), "{list:#}");
    let waiting = customers(&list, "waiting");
    assert_eq!(waiting.len(), 2);
    let (status, body) = desk
        .post(&eda, &path(&waiting[0], "pickup"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = desk
        .post(&eda, &path(&waiting[1], "pickup"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 plus 1 extra"),
        "{body}"
    );
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_with_nobody_online_sends_the_customer_on_when_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support:
    name: Support
    leave_when_empty: true
    when_empty: { terminate: nobody }
  sales:
    name: Sales
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let _offline = desk.agent("fay", &["support", "sales"], "agent").await;
    let (status, _) = desk
        .call(
            "PUT",
            &_offline,
            "/agent/status",
            Some(json!({"status": "break:lunch"})),
        )
        .await;
    assert_eq!(status, 200);

    desk.reach_queue("empty-1", "help").await;
    desk.graph
        .wait_for_text("empty-1", "Nobody is here right now, write again later.")
        .await;
    assert_eq!(desk.position("empty-1").await["at"], "ended");

    // A queue without the setting keeps its customers waiting.
    desk.reach_queue("empty-2", "sales").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(desk.position("empty-2").await["at"], "queued");
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_may_not_answer_after_seven_days_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let gus = desk.agent("gus", &["support"], "agent").await;
    let eight_days_ago = now_ms() - 8 * 24 * 3600 * 1000;
    desk.reach_queue_at("old-1", "are you there?", eight_days_ago)
        .await;
    desk.list_until(&gus, "offered", |l| customers(l, "offers") == ["old-1"])
        .await;
    let (status, _) = desk.post(&gus, &path("old-1", "accept"), json!({})).await;
    assert_eq!(status, 200);
    let (_, list) = desk.get(&gus, "/agent/conversations").await;
    assert_eq!(list["conversations"][0]["window_left_ms"], 0, "{list:#}");

    let (status, body) = desk
        .post(
            &gus,
            &path("old-1", "reply"),
            json!({"text": "sorry for the wait"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "window_closed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("7 days"),
        "{body}"
    );
    let key = flowhost::model::conversation_key(ACCOUNT, "old-1");
    let waiting = desk.server.storage.outbox_of(&key, 10).await.unwrap();
    assert!(waiting.is_empty(), "nothing queued: {waiting:?}");
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_go_to_another_queue_and_back_to_the_bot() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let hal = desk.agent("hal", &["support"], "agent").await;
    let ivy = desk.agent("ivy", &["sales"], "agent").await;

    desk.take(&hal, "tr-1", "help").await;

    // Nonsense is refused and changes nothing.
    for body in [
        json!({}),
        json!({"queue": "nope"}),
        json!({"queue": "sales", "agent": "ivy"}),
    ] {
        let (status, answer) = desk.post(&hal, &path("tr-1", "transfer"), body).await;
        assert!(status == 400 || status == 404, "{status} {answer}");
    }
    assert_eq!(desk.position("tr-1").await["agent"], "hal");

    // Back to the connector's default queue (sales).
    let (status, body) = desk
        .post(
            &hal,
            &path("tr-1", "transfer"),
            json!({"default_queue": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["position"]["queue"], "sales", "{body}");
    desk.list_until(&ivy, "offered", |l| customers(l, "offers") == ["tr-1"])
        .await;
    desk.ok(&ivy, &path("tr-1", "accept"), json!({})).await;

    let (status, body) = desk
        .post(
            &ivy,
            &path("tr-1", "transfer"),
            json!({"decision_tree": "menu"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(desk.position("tr-1").await["at"], "waiting");
    let greetings = || {
        desk.graph
            .to("tr-1")
            .iter()
            .filter(|b| b["message"]["text"] == "Hi from the bot! Type sales or anything else.")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while greetings() < 2 {
        assert!(Instant::now() < deadline, "the bot never took it back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_roles_and_supervisors() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let jo = desk.agent("jo", &["support"], "agent").await;
    let kim = desk.agent("kim", &["support"], "supervisor").await;

    let no_token = desk
        .http
        .get(format!("{}/agent/me", desk.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(desk.get("not-a-token", "/agent/me").await.0, 403);
    assert_eq!(
        desk.get(&jo, "/admin/agents").await.0,
        403,
        "agents are not admins"
    );
    let (status, listed) = desk.get(flowhost_tests::ADMIN_TOKEN, "/admin/agents").await;
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains("token"),
        "no token digests: {listed}"
    );

    // A new token replaces the old one at once.
    let (status, fresh) = desk
        .post(
            flowhost_tests::ADMIN_TOKEN,
            "/admin/agents/jo/token",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(desk.get(&jo, "/agent/me").await.0, 403);
    let jo = fresh["token"].as_str().unwrap().to_string();
    assert_eq!(desk.get(&jo, "/agent/me").await.0, 200);

    // Bad agent definitions are refused with where and why.
    let (status, body) = desk
        .post(
            flowhost_tests::ADMIN_TOKEN,
            "/admin/agents",
            json!({"id": "x y", "queues": []}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = desk
        .post(
            flowhost_tests::ADMIN_TOKEN,
            "/admin/agents",
            json!({"id": "zed", "queues": [{"queue": "nope"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queues[0]"),
        "{body}"
    );

    desk.take(&jo, "sup-1", "help").await;

    assert_eq!(desk.get(&jo, "/agent/queues").await.0, 403);
    let (status, queues) = desk.get(&kim, "/agent/queues").await;
    assert_eq!(status, 200, "{queues}");
    assert_eq!(queues["queues"][0]["queue"], "support");
    assert_eq!(
        queues["queues"][0]["agents"]["online"],
        json!(["jo", "kim"])
    );

    // The supervisor takes the conversation over; the agent no longer has it.
    let (status, body) = desk.post(&kim, &path("sup-1", "takeover"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        desk.post(&jo, &path("sup-1", "reply"), json!({"text": "hi"}))
            .await
            .0,
        403
    );
    // An agent who holds conversations cannot be removed.
    let (status, _) = desk
        .call(
            "DELETE",
            flowhost_tests::ADMIN_TOKEN,
            "/admin/agents/kim",
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = desk
        .call(
            "DELETE",
            flowhost_tests::ADMIN_TOKEN,
            "/admin/agents/jo",
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(desk.get(&jo, "/agent/me").await.0, 403);
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_after_a_reconnect_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let lea = desk.agent("lea", &["support"], "agent").await;

    let mut stream = Stream::open(&desk, &lea, None).await;
    desk.reach_queue("st-1", "first").await;
    let offer = stream.until("offer").await;
    let last_seen = offer.id.expect("events carry ids");
    drop(stream);

    // While disconnected: lea's status changes and a second customer waits.
    let (status, _) = desk
        .call(
            "PUT",
            &lea,
            "/agent/status",
            Some(json!({"status": "away"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = desk
        .call(
            "PUT",
            &lea,
            "/agent/status",
            Some(json!({"status": "online"})),
        )
        .await;
    assert_eq!(status, 200);

    let mut resumed = Stream::open(&desk, &lea, Some(last_seen)).await;
    let away = resumed.next().await;
    assert_eq!(
        (away.kind.as_str(), &away.data["status"]),
        ("status", &json!("away"))
    );
    assert!(away.id.unwrap() > last_seen);
    let online = resumed.next().await;
    assert_eq!(online.data["status"], "online");
    assert!(online.id.unwrap() > away.id.unwrap());

    // An id from before this process started asks for a resync.
    let mut stale = Stream::open(&desk, &lea, Some(1)).await;
    assert_eq!(stale.next().await.kind, "resync");
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_assignments_and_rings_open_offers_again() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = Graph::start().await;
    let config = flowhost_tests::server_config(dir.path(), &flow(&graph_url, QUEUES));
    let desk = Desk::with(config.clone(), graph.clone()).await;
    let max = desk.agent("max", &["support"], "agent").await;
    desk.take(&max, "rs-1", "help").await;
    // max is at capacity, so the next customer rings nia only.
    let nia = desk.agent("nia", &["support"], "agent").await;
    desk.reach_queue("rs-2", "help too").await;
    desk.list_until(&nia, "offered", |l| customers(l, "offers") == ["rs-2"])
        .await;
    desk.server.stop().await.unwrap();

    let desk = Desk::with(config, graph).await;
    desk.list_until(&max, "restored", |l| {
        customers(l, "conversations") == ["rs-1"]
    })
    .await;
    let list = desk
        .list_until(&nia, "offered again", |l| {
            customers(l, "offers") == ["rs-2"]
        })
        .await;
    assert!(
        list["offers"][0]["offer_until_ms"].as_u64().unwrap() > now_ms() + 20_000,
        "the open offer rings for a full ring time again: {list:#}"
    );
    let (status, body) = desk
        .post(&max, &path("rs-1", "reply"), json!({"text": "still here"}))
        .await;
    assert_eq!(status, 200, "{body}");
    desk.graph.wait_for_text("rs-1", "still here").await;
    desk.server.stop().await.unwrap();
}

/// The whole human path in the agent console, in headless Chromium driven
/// by `tests/browser/console.mjs` (playwright-core; `tests/browser/setup`
/// installs both, and the README's test command runs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_work_a_conversation_in_the_console_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let mut tokens = Vec::new();
    for (id, name) in [("ana", "Ana Agent"), ("bo", "Bo Agent")] {
        let body = json!({"id": id, "name": name, "queues": [{"queue": "support"}]});
        let (status, created) = desk
            .post(flowhost_tests::ADMIN_TOKEN, "/admin/agents", body)
            .await;
        assert_eq!(status, 201, "{created}");
        tokens.push(created["token"].as_str().unwrap().to_string());
    }
    let reply = "Hello from Ana, how can I help?";
    flowhost_tests::browser::run(
        "console.mjs",
        &[
            ("FLOWHOST", &desk.base),
            ("TOKEN_A", &tokens[0]),
            ("TOKEN_B", &tokens[1]),
            ("AGENT_B", "bo"),
            ("APP_SECRET", SECRET),
            ("IG_ID", IG_ID),
            ("CUSTOMER", "browser-1"),
            ("REPLY", reply),
            ("CAUSE", "resolved-by-agent"),
        ],
    )
    .await;

    let sent = desk.graph.wait_for_text("browser-1", reply).await;
    assert_eq!(sent["tag"], "HUMAN_AGENT");
    let key = flowhost::model::conversation_key(ACCOUNT, "browser-1");
    let state = desk
        .server
        .storage
        .conversation(&key)
        .await
        .unwrap()
        .unwrap();
    let ending = state.ending.expect("closed");
    assert_eq!(
        (ending.cause.as_str(), ending.answered),
        ("resolved-by-agent", true)
    );
    assert_eq!(ending.terminate, "agent:bo");
    desk.server.stop().await.unwrap();
}

// ---- each queue setting ---------------------------------------------------

/// The texts the customer was sent, in order.
fn texts(desk: &Desk, customer: &str) -> Vec<String> {
    desk.graph
        .to(customer)
        .iter()
        .filter_map(|b| b["message"]["text"].as_str().map(String::from))
        .collect()
}

async fn wait_for_position(desk: &Desk, customer: &str, at: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let position = desk.position(customer).await;
        if position["at"] == at {
            return position;
        }
        assert!(
            Instant::now() < deadline,
            "{customer} never got to {at}: {position}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ending_of(desk: &Desk, customer: &str) -> flowhost::model::Ending {
    wait_for_position(desk, customer, "ended").await;
    let key = flowhost::model::conversation_key(ACCOUNT, customer);
    let state = desk
        .server
        .storage
        .conversation(&key)
        .await
        .unwrap()
        .unwrap();
    state.ending.unwrap()
}

async fn set_status(desk: &Desk, token: &str, status: &str) {
    let body = json!({ "status": status });
    let (code, answer) = desk.call("PUT", token, "/agent/status", Some(body)).await;
    assert_eq!(code, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_queues_are_served_first() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support: { name: Support, priority: 1, max_concurrent_chats: 1 }
  sales: { name: Sales, priority: 9, max_concurrent_chats: 1 }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let ola = desk.agent("ola", &["support", "sales"], "agent").await;
    set_status(&desk, &ola, "offline").await;
    desk.reach_queue("low-1", "help").await;
    wait_for_position(&desk, "low-1", "queued").await;
    desk.reach_queue("high-1", "sales").await;
    wait_for_position(&desk, "high-1", "queued").await;
    set_status(&desk, &ola, "online").await;
    let list = desk
        .list_until(&ola, "offered", |l| !customers(l, "offers").is_empty())
        .await;
    assert_eq!(customers(&list, "offers"), ["high-1"], "{list:#}");
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_queues_ring_the_agent_who_served_the_customer_last() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support: { name: Support, ring_strategy: sticky, sticky_fallback: round_robin }
  sales: { name: Sales }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let pia = desk.agent("pia", &["support"], "agent").await;
    let quinn = desk.agent("quinn", &["support"], "agent").await;
    desk.reach_queue("sticky-1", "help").await;
    let (first, other) = {
        let position = wait_for_position(&desk, "sticky-1", "queued").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut offered = position["offer"]["agents"].clone();
        while offered.is_null() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
            offered = desk.position("sticky-1").await["offer"]["agents"].clone();
        }
        if offered == json!(["pia"]) {
            (&pia, &quinn)
        } else {
            (&quinn, &pia)
        }
    };
    desk.ok(first, &path("sticky-1", "accept"), json!({})).await;
    let close = json!({"cause": "done", "answered": true});
    desk.ok(first, &path("sticky-1", "close"), close).await;
    // The other agent is now the round robin's pick, but the customer comes
    // back to the one who served them.
    let _ = other;
    for _ in 0..3 {
        desk.reach_queue("sticky-1", "again").await;
        desk.list_until(first, "offered again", |l| {
            customers(l, "offers") == ["sticky-1"]
        })
        .await;
        desk.ok(first, &path("sticky-1", "accept"), json!({})).await;
        let close = json!({"cause": "done", "answered": true});
        desk.ok(first, &path("sticky-1", "close"), close).await;
    }
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_who_does_not_answer_in_time_gives_the_conversation_back() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support: { name: Support, ring_strategy: longest_idle, agent_timeout: 1, agent_message_timeout: 1 }
  sales: { name: Sales }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    // Both idle alike: longest_idle breaks the tie by id, so rae first.
    let rae = desk.agent("rae", &["support"], "agent").await;
    let sam = desk.agent("sam", &["support"], "agent").await;
    desk.take(&rae, "slow-1", "help").await;

    // agent_timeout: no first answer within 1 s, back to the queue.
    let position = wait_for_position(&desk, "slow-1", "queued").await;
    assert_eq!(position["passed"], json!(["rae"]), "{position}");
    desk.list_until(&sam, "offered", |l| customers(l, "offers") == ["slow-1"])
        .await;
    desk.ok(&sam, &path("slow-1", "accept"), json!({})).await;
    let reply = json!({"text": "Hi, Sam here."});
    desk.ok(&sam, &path("slow-1", "reply"), reply).await;

    // agent_message_timeout: the customer's next message goes unanswered.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        desk.position("slow-1").await["agent"],
        "sam",
        "answered in time"
    );
    desk.customer_writes("slow-1", "hello?").await;
    let position = wait_for_position(&desk, "slow-1", "queued").await;
    assert_eq!(position["passed"], json!(["sam"]), "{position}");
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_customer_is_reminded_then_the_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support:
    name: Support
    agent_message_timeout: 0
    idle_session_timeout: 1
    idle_session_message: "Are you still there?"
    contact_message_timeout: 3
  sales: { name: Sales }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let tia = desk.agent("tia", &["support"], "agent").await;
    desk.take(&tia, "quiet-1", "help").await;
    let reply = json!({"text": "What is your order number?"});
    desk.ok(&tia, &path("quiet-1", "reply"), reply).await;
    desk.graph
        .wait_for_text("quiet-1", "Are you still there?")
        .await;
    let ending = ending_of(&desk, "quiet-1").await;
    assert_eq!(
        (ending.cause.as_str(), ending.answered),
        ("contact-timeout", true)
    );
    let reminders = texts(&desk, "quiet-1")
        .iter()
        .filter(|t| *t == "Are you still there?")
        .count();
    assert_eq!(reminders, 1, "reminded once");
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_too_long_and_staying_too_long_end_where_the_queue_says() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support:
    name: Support
    message_timeout: 1
    when_timeout: { terminate: nobody }
  sales:
    name: Sales
    session_timeout: 2
    session_timeout_message: "We have to close this chat now."
    agent_message_timeout: 0
    contact_message_timeout: 0
"#;
    let desk = Desk::start(dir.path(), queues).await;
    // message_timeout: nobody serves support.
    desk.reach_queue("long-1", "help").await;
    desk.graph
        .wait_for_text("long-1", "Nobody is here right now, write again later.")
        .await;
    assert_eq!(ending_of(&desk, "long-1").await.cause, "no-agent");

    // session_timeout: with an agent, the session still ends on time.
    let uma = desk.agent("uma", &["sales"], "agent").await;
    desk.take(&uma, "long-2", "sales").await;
    let reply = json!({"text": "Hello!"});
    desk.ok(&uma, &path("long-2", "reply"), reply).await;
    desk.graph
        .wait_for_text("long-2", "We have to close this chat now.")
        .await;
    let ending = ending_of(&desk, "long-2").await;
    assert_eq!(
        (ending.cause.as_str(), ending.answered),
        ("session-timeout", true)
    );
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_customers_hear_the_welcome_their_place_and_the_capped_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support:
    name: Support
    welcome_message: "Welcome to {{ queue.name }}."
    position_message: "You are number {{ queue.position }}; about {{ queue.estimated_wait_minutes }} min."
    position_interval: 1
    hold_estimation_upper_limit: 120
  sales: { name: Sales }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    desk.reach_queue("pos-1", "help").await;
    desk.graph
        .wait_for_text("pos-1", "Welcome to Support.")
        .await;
    desk.graph
        .wait_for_text("pos-1", "You are number 1; about 2 min.")
        .await;
    desk.reach_queue("pos-2", "help").await;
    desk.graph
        .wait_for_text("pos-2", "You are number 2; about 2 min.")
        .await;
    // Repeated at the interval while waiting.
    let deadline = Instant::now() + Duration::from_secs(20);
    while texts(&desk, "pos-1")
        .iter()
        .filter(|t| t.starts_with("You are number 1"))
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "{:?}", texts(&desk, "pos-1"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_hands_over_the_next_and_the_closed_one_stays_listed_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support:
    name: Support
    max_concurrent_chats: 1
    close_auto_assign: true
    closed_conversation_display_time: 2
    logo_url: https://example.com/logo.png
    call_me_text: "+90 212 000 00 00"
    notes: Ask for the order number first.
    user_name: "{{ agent.name }} (Support)"
  sales: { name: Sales }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let vic = desk.agent("vic", &["support"], "agent").await;
    desk.take(&vic, "auto-1", "help").await;
    desk.reach_queue("auto-2", "help").await;
    wait_for_position(&desk, "auto-2", "queued").await;

    // user_name: the customer sees who writes.
    let reply = json!({"text": "Let me look."});
    desk.ok(&vic, &path("auto-1", "reply"), reply).await;
    desk.graph
        .wait_for_text("auto-1", "VIC (Support): Let me look.")
        .await;
    // logo, call-me text and notes travel with the conversation.
    let (_, view) = desk
        .get(&vic, &format!("/agent/conversations/{ACCOUNT}/auto-1"))
        .await;
    assert_eq!(
        view["queue_info"]["logo_url"],
        "https://example.com/logo.png"
    );
    assert_eq!(view["queue_info"]["call_me_text"], "+90 212 000 00 00");
    assert_eq!(
        view["queue_info"]["notes"],
        "Ask for the order number first."
    );

    // close_auto_assign: closing gives vic the waiting customer at once.
    let close = json!({"cause": "solved", "answered": true});
    let (status, closed) = desk.post(&vic, &path("auto-1", "close"), close).await;
    assert_eq!(status, 200, "{closed}");
    let next = flowhost::model::conversation_key(ACCOUNT, "auto-2");
    assert_eq!(closed["next"], json!(next));
    assert_eq!(desk.position("auto-2").await["agent"], "vic");

    // closed_conversation_display_time: listed, then gone.
    let (_, list) = desk.get(&vic, "/agent/conversations").await;
    assert_eq!(customers(&list, "closed"), ["auto-1"], "{list:#}");
    desk.list_until(&vic, "forgotten", |l| customers(l, "closed").is_empty())
        .await;
    desk.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_access_decides_who_may_take_over() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support: { name: Support, agent_management_access: agents }
  sales: { name: Sales, agent_management_access: nobody, ring_strategy: ring_all }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let wes = desk.agent("wes", &["support", "sales"], "agent").await;
    let xia = desk.agent("xia", &["support"], "agent").await;
    let yan = desk.agent("yan", &["sales"], "supervisor").await;

    desk.reach_queue("acc-1", "help").await;
    desk.list_until(&wes, "offered", |l| {
        customers(l, "offers").contains(&"acc-1".to_string())
    })
    .await;
    desk.ok(&wes, &path("acc-1", "accept"), json!({})).await;
    // `agents`: a fellow agent of the queue may take it over.
    desk.ok(&xia, &path("acc-1", "takeover"), json!({})).await;
    assert_eq!(desk.position("acc-1").await["agent"], "xia");

    desk.reach_queue("acc-2", "sales").await;
    desk.list_until(&wes, "offered", |l| {
        customers(l, "offers").contains(&"acc-2".to_string())
    })
    .await;
    desk.ok(&wes, &path("acc-2", "accept"), json!({})).await;
    // `nobody`: not even the queue's supervisor.
    let (status, body) = desk.post(&yan, &path("acc-2", "takeover"), json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(desk.position("acc-2").await["agent"], "wes");
    desk.server.stop().await.unwrap();
}

/// Issue 9, item 8 for Meta's handover protocol: while another app has the
/// thread (messages arrive under `standby`), the bot keeps quiet; passed
/// back, it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_another_meta_app_took_gets_no_bot_reply() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let post = |item: Value| {
        let desk = &desk;
        async move {
            let body = json!({"object": "instagram", "entry": [{"id": IG_ID, "time": now_ms(), item["list"].as_str().unwrap(): [item["event"]]}]}).to_string();
            let status = desk
                .http
                .post(format!("{}/webhooks/instagram", desk.base))
                .header(
                    "X-Hub-Signature-256",
                    sign(SECRET.as_bytes(), body.as_bytes()),
                )
                .body(body)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    };
    let event = |list: &str, body: Value| {
        let mut event =
            json!({"sender": {"id": "meta-1"}, "recipient": {"id": IG_ID}, "timestamp": now_ms()});
        event
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        json!({"list": list, "event": event})
    };
    let greeting = "Hi from the bot! Type sales or anything else.";

    desk.customer_writes("meta-1", "hello").await;
    desk.graph.wait_for_text("meta-1", greeting).await;
    post(event(
        "messaging",
        json!({"take_thread_control": {"previous_owner_app_id": "1", "new_owner_app_id": "555"}}),
    ))
    .await;
    post(event(
        "standby",
        json!({"message": {"mid": "sb-1", "text": "sales"}}),
    ))
    .await;
    let key = flowhost::model::conversation_key(ACCOUNT, "meta-1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !desk
        .server
        .storage
        .history(&key)
        .await
        .unwrap()
        .iter()
        .any(|h| h.kind == "in" && h.text == "sales")
    {
        assert!(
            Instant::now() < deadline,
            "the standby message was never kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = desk
        .server
        .storage
        .conversation(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.held_by.as_deref(), Some("Meta app 555"));
    assert_eq!(desk.position("meta-1").await["at"], "waiting", "not routed");

    post(event(
        "messaging",
        json!({"pass_thread_control": {"previous_owner_app_id": "555", "new_owner_app_id": "1"}}),
    ))
    .await;
    desk.customer_writes("meta-1", "sales").await;
    wait_for_position(&desk, "meta-1", "queued").await;
    assert_eq!(
        texts(&desk, "meta-1"),
        [greeting],
        "nothing sent while taken"
    );
    desk.server.stop().await.unwrap();
}

/// A queue's translation provider: the agent reads the customer's Turkish
/// in English (also what was written while waiting), and the English reply
/// reaches the customer in Turkish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_and_a_customer_without_a_common_language_talk_through_the_translator() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support:
    name: Support
    translation_provider: phrase-translator
  sales: { name: Sales }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let body = json!({"id": "eve", "name": "Eve", "queues": [{"queue": "support"}], "language": "en", "status": "online"});
    let (status, created) = desk
        .post(flowhost_tests::ADMIN_TOKEN, "/admin/agents", body)
        .await;
    assert_eq!(status, 201, "{created}");
    let eve = created["token"].as_str().unwrap().to_string();

    desk.reach_queue("tr-cust", "Merhaba, siparişim nerede? Kargom gecikti.")
        .await;
    desk.list_until(&eve, "offered", |l| customers(l, "offers") == ["tr-cust"])
        .await;
    desk.ok(&eve, &path("tr-cust", "accept"), json!({})).await;
    let translations = |view: &Value| -> Vec<String> {
        view["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["kind"] == "translation" && h["language"] == "en")
            .map(|h| h["text"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, view) = desk
        .get(&eve, &format!("/agent/conversations/{ACCOUNT}/tr-cust"))
        .await;
    assert_eq!(view["language"], "tr", "{view:#}");
    let read = translations(&view);
    assert!(
        read.iter()
            .any(|t| t.contains("where is my order") && t.contains("my parcel is late")),
        "{read:?}"
    );

    let reply = json!({"text": "Let me check that for you."});
    let (status, body) = desk.post(&eve, &path("tr-cust", "reply"), reply).await;
    assert_eq!(status, 200, "{body}");
    desk.graph
        .wait_for_text("tr-cust", "sizin için kontrol edeyim.")
        .await;

    desk.customer_writes("tr-cust", "Teşekkür ederim").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, view) = desk
            .get(&eve, &format!("/agent/conversations/{ACCOUNT}/tr-cust"))
            .await;
        if translations(&view).iter().any(|t| t == "thank you") {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", translations(&view));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    desk.server.stop().await.unwrap();
}

// ---- the router on an injected clock -----------------------------------------

mod router_on_a_clock {
    use std::sync::Arc;

    use flowhost::engine::agents::AgentAction;
    use flowhost::engine::clock::FixedClock;
    use flowhost::engine::{Engine, EngineSettings};
    use flowhost::flow::PluginCatalog;
    use flowhost::model::agent::{Agent, AgentStatus, Membership, Role};
    use flowhost::model::conversation_key;
    use flowhost::plugin::{Contact, InboundMessage};
    use flowhost::registry::PluginRegistry;
    use flowhost::routing::queues::Router;
    use flowhost::storage::Storage;
    use serde_json::{Value, json};

    const T0: u64 = 1_800_000_000_000;

    struct Desk {
        engine: Arc<Engine>,
        router: Arc<Router>,
        clock: Arc<FixedClock>,
        storage: Storage,
        _dir: tempfile::TempDir,
    }

    /// A flow whose connector goes straight to queue `q` with `settings`,
    /// and three online agents: ana, bo and cem, told apart by when they
    /// were last offered something and when they were last active.
    async fn desk(settings: &str) -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Arc::new(flowhost_tests::runtime());
        let registry = Arc::new(
            PluginRegistry::load(&runtime, None, &Default::default())
                .await
                .unwrap(),
        );
        let yaml = format!(
            r#"
accounts:
  ig: {{ channel: instagram, ig_user_id: "1", access_token: t, app_secret: s, verify_token: v }}
connectors:
  dm: {{ title: DMs, account: ig, next: {{ queue: q }} }}
queues:
  q: {{ name: Q, {settings} }}
"#
        );
        let flow = flowhost::flow::parse(&yaml).unwrap();
        let (compiled, _) =
            flowhost::flow::compile(flow, &PluginCatalog::from_registry(&registry)).unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let clock = Arc::new(FixedClock::at(T0));
        let engine = Arc::new(Engine::new(
            Arc::new(compiled),
            runtime,
            registry,
            storage.clone(),
            clock.clone(),
            EngineSettings::default(),
        ));
        for (id, last_offer_ms, last_activity_ms) in
            [("ana", 300, 100), ("bo", 100, 500), ("cem", 200, 50)]
        {
            let agent = Agent {
                id: id.into(),
                name: id.into(),
                role: Role::Agent,
                language: "en".into(),
                queues: vec![Membership {
                    queue: "q".into(),
                    priority: 0,
                }],
                status: AgentStatus::Online,
                status_since_ms: 0,
                token_sha256: format!("digest-of-{id}"),
                last_activity_ms,
                last_offer_ms,
                missed_offers: 0,
            };
            storage.put_agent(agent).await.unwrap();
        }
        Desk {
            router: Router::new(engine.clone()),
            engine,
            clock,
            storage,
            _dir: dir,
        }
    }

    impl Desk {
        async fn customer_writes(&self, customer: &str) {
            let contact = Contact {
                id: customer.into(),
                ..Default::default()
            };
            let message = InboundMessage {
                id: format!(
                    "{customer}-{}",
                    self.clock.0.load(std::sync::atomic::Ordering::Relaxed)
                ),
                text: Some("help".into()),
                ..Default::default()
            };
            self.engine
                .handle_message("ig", contact, message)
                .await
                .unwrap();
        }

        async fn offered(&self, customer: &str) -> Value {
            let key = conversation_key("ig", customer);
            let state = self.storage.conversation(&key).await.unwrap().unwrap();
            serde_json::to_value(&state.position).unwrap()["offer"]["agents"].clone()
        }

        async fn agent(&self, id: &str) -> Agent {
            self.storage.agent(id).await.unwrap().unwrap()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_ring_strategy_picks_its_agent() {
        let cases = [
            ("ring_strategy: round_robin", json!(["bo"])),
            ("ring_strategy: longest_idle", json!(["cem"])),
            ("ring_strategy: least_busy", json!(["cem"])),
            ("ring_strategy: ring_all", json!(["ana", "bo", "cem"])),
        ];
        for (settings, expected) in cases {
            let desk = desk(settings).await;
            desk.customer_writes("c1").await;
            desk.router.pass(false).await.unwrap();
            assert_eq!(desk.offered("c1").await, expected, "{settings}");
        }
        let desk = desk("ring_strategy: random").await;
        desk.customer_writes("c1").await;
        desk.router.pass(false).await.unwrap();
        let offered = desk.offered("c1").await;
        assert_eq!(offered.as_array().map(Vec::len), Some(1), "{offered}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sticky_rings_the_last_agent_and_a_lapsed_offer_moves_on() {
        let desk =
            desk("ring_strategy: sticky, sticky_fallback: round_robin, agent_ring_time: 10").await;
        desk.customer_writes("c1").await;
        desk.router.pass(false).await.unwrap();
        assert_eq!(desk.offered("c1").await, json!(["bo"]), "round robin first");
        let ana = desk.agent("ana").await;
        // ana takes it from the queue by hand and closes it; the customer
        // comes back: ana is rung, though round robin would ring cem.
        let key = conversation_key("ig", "c1");
        desk.engine
            .agent_turn(&key, &ana, AgentAction::Pickup)
            .await
            .unwrap();
        let close = AgentAction::Close {
            cause: "done".into(),
            answered: true,
        };
        desk.engine.agent_turn(&key, &ana, close).await.unwrap();
        desk.clock.advance(1_000);
        desk.customer_writes("c1").await;
        desk.router.pass(false).await.unwrap();
        assert_eq!(desk.offered("c1").await, json!(["ana"]));

        // Nobody answers in 10 s: the offer lapses and moves on (sticky
        // falls back to round robin, and ana has passed), and ana's missed
        // offer is counted.
        desk.clock.advance(10_001);
        desk.router.pass(false).await.unwrap();
        assert_eq!(desk.offered("c1").await, json!(["cem"]));
        assert_eq!(desk.agent("ana").await.missed_offers, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_is_looked_at_once_per_period_to_check() {
        let desk =
            desk("ring_strategy: ring_all, period_to_check: 5, max_concurrent_chats: 5").await;
        desk.customer_writes("c1").await;
        desk.router.pass(false).await.unwrap();
        assert_eq!(desk.offered("c1").await, json!(["ana", "bo", "cem"]));
        desk.clock.advance(1_000);
        desk.customer_writes("c2").await;
        desk.router.pass(false).await.unwrap();
        assert_eq!(desk.offered("c2").await, Value::Null, "not due before 5 s");
        desk.clock.advance(4_000);
        desk.router.pass(false).await.unwrap();
        assert_eq!(desk.offered("c2").await, json!(["ana", "bo", "cem"]));
    }
}

// ---- hostile input and concurrency -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_agent_requests_are_refused_with_where_and_why_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(dir.path(), QUEUES).await;
    let zoe = desk.agent("zoe", &["support"], "agent").await;
    let other = desk.agent("otto", &["sales"], "agent").await;
    desk.take(&zoe, "bad-1", "help").await;

    let many: Vec<Value> = (0..14)
        .map(|i| json!({"title": format!("q{i}"), "payload": "p"}))
        .collect();
    let refused = [
        (json!({"text": "x".repeat(4001)}), "`text` is 4001 bytes"),
        (
            json!({"text": "hi", "quick_replies": many}),
            "14 quick replies",
        ),
        (
            json!({"text": "hi", "attachments": [{"type": "image", "url": "file:///etc/passwd"}]}),
            "attachments[0].url",
        ),
        (
            json!({"text": "hi", "sneaky": true}),
            "unknown field `sneaky`",
        ),
        (json!({}), "needs `text` or `attachments`"),
    ];
    for (body, why) in refused {
        let (status, answer) = desk.post(&zoe, &path("bad-1", "reply"), body).await;
        assert!(status == 400 || status == 422, "{status} {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{why:?} not in {answer}");
    }
    let not_json = desk
        .http
        .post(format!("{}{}", desk.base, path("bad-1", "close")))
        .bearer_auth(&zoe)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    // Someone else's queue and a conversation that does not exist.
    let view = format!("/agent/conversations/{ACCOUNT}/bad-1");
    assert_eq!(desk.get(&other, &view).await.0, 403);
    assert_eq!(
        desk.post(&other, &path("bad-1", "close"), json!({"cause": "x"}))
            .await
            .0,
        403
    );
    assert_eq!(
        desk.post(&zoe, &path("nobody", "accept"), json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        desk.get(&zoe, &format!("/agent/conversations/{ACCOUNT}/nobody"))
            .await
            .0,
        404
    );
    // Nothing was sent and the conversation is still zoe's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        desk.graph
            .to("bad-1")
            .iter()
            .all(|b| b["message"]["text"] != "hi")
    );
    assert_eq!(desk.position("bad-1").await["agent"], "zoe");

    // Live streams per agent are bounded.
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(Stream::open(&desk, &zoe, None).await);
    }
    let ninth = desk.get(&zoe, "/agent/stream").await;
    assert_eq!(ninth.0, 429, "{:?}", ninth.1);
    streams.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = desk
            .http
            .get(format!("{}/agent/stream", desk.base))
            .bearer_auth(&zoe)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    desk.server.stop().await.unwrap();
}

/// Six agents grab twelve ringing conversations all at once: each ends
/// with exactly one agent, and nobody holds more than the queue allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_agents_accepting_at_once_never_double_assign_or_overfill() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support: { name: Support, ring_strategy: ring_all, max_concurrent_chats: 2, agent_timeout: 0 }
  sales: { name: Sales }
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let mut tokens = Vec::new();
    for i in 0..6 {
        tokens.push(desk.agent(&format!("a{i}"), &["support"], "agent").await);
    }
    let customers_all: Vec<String> = (0..12).map(|i| format!("rush-{i}")).collect();
    futures::future::join_all(customers_all.iter().map(|c| desk.reach_queue(c, "help"))).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut with_agent = 0;
        for customer in &customers_all {
            if desk.position(customer).await["at"] == "with_agent" {
                with_agent += 1;
            }
        }
        if with_agent == customers_all.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {with_agent} were taken");
        // Every agent accepts every offer it sees, all at the same time.
        let lists =
            futures::future::join_all(tokens.iter().map(|t| desk.get(t, "/agent/conversations")))
                .await;
        let mut accepts = Vec::new();
        for (token, (_, list)) in tokens.iter().zip(lists) {
            for customer in customers(&list, "offers") {
                accepts.push((token.clone(), path(&customer, "accept")));
            }
        }
        let results = futures::future::join_all(
            accepts
                .iter()
                .map(|(token, accept)| desk.post(token, accept, json!({}))),
        )
        .await;
        for (status, body) in results {
            assert!(status == 200 || status == 409, "{status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut held = 0;
    for i in 0..6 {
        let mine = desk
            .server
            .storage
            .assigned_to(&format!("a{i}"))
            .await
            .unwrap();
        assert!(mine.len() <= 2, "a{i} holds {mine:?}");
        held += mine.len();
    }
    assert_eq!(held, 12, "each conversation is held exactly once");
    desk.server.stop().await.unwrap();
}

/// A scripted day: three customers served in sales while three others wait
/// in support at the same time until its timeout sends them away. The
/// analytics API counts exactly that, as JSON and as CSV.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_count_a_scripted_day() {
    let dir = tempfile::tempdir().unwrap();
    let queues = r#"
  support:
    name: Support
    message_timeout: 1
    when_timeout: { terminate: nobody }
  sales:
    name: Sales
    agent_message_timeout: 0
    contact_message_timeout: 0
"#;
    let desk = Desk::start(dir.path(), queues).await;
    let ana = desk.agent("ana", &["sales"], "agent").await;
    let gone: Vec<String> = (1..=3).map(|i| format!("gone-{i}")).collect();
    let waiting = futures::future::join_all(gone.iter().map(|c| desk.reach_queue(c, "help")));
    let served = async {
        for i in 1..=3 {
            let customer = format!("served-{i}");
            desk.take(&ana, &customer, "sales").await;
            let reply = json!({"text": "Hello, how can I help?"});
            desk.ok(&ana, &path(&customer, "reply"), reply.clone())
                .await;
            desk.ok(&ana, &path(&customer, "reply"), reply).await;
            let close = json!({"cause": "done", "answered": true});
            desk.ok(&ana, &path(&customer, "close"), close).await;
        }
    };
    futures::join!(waiting, served);
    for i in 1..=3 {
        assert_eq!(
            ending_of(&desk, &format!("gone-{i}")).await.cause,
            "no-agent"
        );
    }

    let admin = flowhost_tests::ADMIN_TOKEN;
    let (status, report) = desk.get(admin, "/admin/analytics?tz=UTC").await;
    assert_eq!(status, 200, "{report}");
    let today = report["to"].as_str().unwrap().to_string();
    assert_eq!(
        report["connectors"],
        json!([{"connector": "dm", "day": today, "started": 6, "answered": 3,
            "unanswered": 3, "ended_by_bot": 0, "handed_to_queue": 6, "missed": 3}])
    );
    assert_eq!(
        report["decisions"],
        json!([{"tree": "menu", "decision": "ask", "entered": 6,
            "left_by": {"target-0": 3, "target-1": 3}, "dropped": 0}])
    );
    let queue = |name: &str| {
        report["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no queue {name}: {report:#}"))
    };
    let (sales, support) = (queue("sales"), queue("support"));
    assert_eq!(
        (&sales["taken"], &sales["abandoned"]),
        (&json!(3), &json!(0))
    );
    assert_eq!(
        (&sales["wait_ms"]["count"], &sales["handle_ms"]["count"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(
        (&support["taken"], &support["abandoned"]),
        (&json!(0), &json!(3))
    );
    assert!(support["abandoned_after_ms"]["p50"].as_u64().unwrap() >= 1_000);
    let agents = report["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{report:#}");
    assert_eq!(
        (&agents[0]["agent"], &agents[0]["handled"]),
        (&json!("ana"), &json!(3))
    );
    // Two replies each, one first response each.
    assert_eq!(agents[0]["first_response_ms"]["count"], 3);

    let csv = desk
        .http
        .get(format!("{}/admin/analytics/queues?tz=UTC", desk.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0].split(',').next(), Some("queue"), "{csv}");
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[1].starts_with("sales,3,0,0,"), "{csv}");
    assert!(rows[2].starts_with("support,0,0,3,"), "{csv}");

    // Another period has nothing; a bad request says which parameter and
    // why; an agent's token reads nothing.
    let long_ago = "/admin/analytics?tz=UTC&from=2020-01-01&to=2020-01-02";
    let (_, empty) = desk.get(admin, long_ago).await;
    assert_eq!(empty["connectors"], json!([]));
    let (status, refusal) = desk.get(admin, "/admin/analytics?tz=Nowhere/Town").await;
    assert_eq!(status, 400);
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`tz`"),
        "{refusal}"
    );
    let (status, _) = desk.get(admin, "/admin/analytics/revenue").await;
    assert_eq!(status, 404);
    let (status, _) = desk.get(&ana, "/admin/analytics").await;
    assert_eq!(status, 403);
    // A supervisor of sales sees sales and its agents; an agent, nothing.
    let sue = desk.agent("sue", &["sales"], "supervisor").await;
    let (status, theirs) = desk.get(&sue, "/agent/analytics?tz=UTC").await;
    assert_eq!(status, 200, "{theirs}");
    let queues: Vec<&Value> = theirs["queues"].as_array().unwrap().iter().collect();
    assert_eq!(queues, [&sales]);
    assert_eq!(theirs["agents"], report["agents"]);
    assert_eq!(theirs["connectors"], report["connectors"]);
    let (status, _) = desk.get(&ana, "/agent/analytics").await;
    assert_eq!(status, 403);

    // The same numbers on the admin page, in a real browser.
    flowhost_tests::browser::run(
        "analytics.mjs",
        &[("FLOWHOST", &desk.base), ("TOKEN", admin)],
    )
    .await;
    desk.server.stop().await.unwrap();
}

/// Issue 14, item 4: two nodes share one PostgreSQL database and split the
/// conversations; an agent's live stream on either node is offered every
/// conversation, whichever node runs it and whichever took the webhook, and
/// the agent's actions work through either node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_s_stream_on_any_node_sees_every_node_s_conversations() {
    let queues = r#"
  support:
    name: Support
    ring_strategy: ring_all
    agent_ring_time: 120
    max_concurrent_chats: 20
"#;
    let nodes = TwoNodes::start(queues).await;
    let (desks, graph) = (&nodes.desks, &nodes.graph);
    let ana = desks[0].agent("ana", &["support"], "agent").await;
    let mut streams = [
        Stream::open(&desks[0], &ana, None).await,
        Stream::open(&desks[1], &ana, None).await,
    ];

    // Three customers on each node's partitions; each writes to the node
    // that does not run their conversation.
    let key = |customer: &str| flowhost::model::conversation_key(ACCOUNT, customer);
    let on = nodes.customers_on_each("nodes", 3);
    for (owner, customers) in on.iter().enumerate() {
        for customer in customers {
            desks[1 - owner].reach_queue(customer, "help").await;
        }
    }

    let mut expected: Vec<String> = on.concat().iter().map(|c| key(c)).collect();
    expected.sort();
    for stream in &mut streams {
        let mut offered = std::collections::BTreeSet::new();
        while offered.len() < expected.len() {
            let offer = stream.until("offer").await;
            offered.insert(offer.data["conversation"].as_str().unwrap().to_string());
        }
        assert_eq!(offered.into_iter().collect::<Vec<_>>(), expected);
    }

    // Ana works every conversation through either node: an action that
    // reaches the node not running the conversation is passed on to the one
    // that does, and answers as if sent there.
    for (n, customer) in on.concat().iter().enumerate() {
        let (first, second) = (&desks[n % 2], &desks[(n + 1) % 2]);
        let accepted = first.ok(&ana, &path(customer, "accept"), json!({})).await;
        assert_eq!(accepted["position"]["at"], "with_agent", "{accepted}");
        let text = format!("Ana here, {customer}");
        second
            .ok(&ana, &path(customer, "reply"), json!({ "text": text }))
            .await;
        graph.wait_for_text(customer, &text).await;
    }
    // A request already passed on once is not passed on again.
    let elsewhere = &on[1][0];
    let refused = desks[0]
        .http
        .post(format!("{}{}", desks[0].base, path(elsewhere, "read")))
        .bearer_auth(&ana)
        .header("x-flowhost-forwarded", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "other_node", "{refused}");
    nodes.stop().await;
}

/// Two flowhost nodes on one private PostgreSQL database, with one flow.
struct TwoNodes {
    desks: [Desk; 2],
    graph: Graph,
    _dirs: [tempfile::TempDir; 2],
    _cluster: flowhost::storage::postgres::cluster::LocalCluster,
}

impl TwoNodes {
    async fn start(queues: &str) -> TwoNodes {
        use flowhost::storage::PostgresSettings;
        use flowhost::storage::postgres::cluster::LocalCluster;

        let cluster = LocalCluster::start().expect("a private PostgreSQL starts");
        let url = cluster.create_database("agents").await.unwrap();
        let (graph, graph_url) = Graph::start().await;
        // The flow sends `sales` to a queue of that name.
        let queues = format!("{queues}  sales:\n    name: Sales\n    ring_strategy: ring_all\n");
        let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
        let mut desks = Vec::new();
        for (dir, node) in dirs.iter().zip(["n1", "n2"]) {
            let flow = flow(&graph_url, &queues);
            let mut config = flowhost_tests::server_config(dir.path(), &flow);
            config.storage.postgres = Some(PostgresSettings {
                url: url.clone(),
                max_connections: 8,
                node: Some(node.into()),
                advertise_url: None,
            });
            desks.push(Desk::with(config, graph.clone()).await);
        }
        TwoNodes {
            desks: desks.try_into().unwrap_or_else(|_| unreachable!()),
            graph,
            _dirs: dirs,
            _cluster: cluster,
        }
    }

    /// `n` customers (named from `prefix`) whose conversations the first
    /// node runs, and `n` the second runs.
    fn customers_on_each(&self, prefix: &str, n: usize) -> [Vec<String>; 2] {
        let mut on = [Vec::new(), Vec::new()];
        for i in 0.. {
            let customer = format!("{prefix}-{i}");
            let key = flowhost::model::conversation_key(ACCOUNT, &customer);
            let owner = usize::from(!self.desks[0].server.storage.owns(&key));
            if on[owner].len() < n {
                on[owner].push(customer);
            }
            if on.iter().all(|customers| customers.len() == n) {
                return on;
            }
        }
        unreachable!()
    }

    async fn stop(self) {
        for desk in self.desks {
            desk.server.stop().await.unwrap();
        }
    }
}

/// An agent's capacity holds across nodes: two nodes giving one agent a
/// conversation each at the same moment, with room for one, give one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_s_capacity_holds_across_nodes() {
    let queues = r#"
  support:
    name: Support
    ring_strategy: ring_all
    agent_ring_time: 120
    max_concurrent_chats: 1
    extra_chats: 0
"#;
    let nodes = TwoNodes::start(queues).await;
    let desks = &nodes.desks;
    let on = nodes.customers_on_each("cap", 3);
    for customers in &on {
        for customer in customers {
            desks[0].reach_queue(customer, "help").await;
        }
    }
    for (round, (first, second)) in on[0].iter().zip(&on[1]).enumerate() {
        let agent = format!("cap-agent-{round}");
        let token = desks[0].agent(&agent, &["support"], "agent").await;
        let (first, second) = (path(first, "pickup"), path(second, "pickup"));
        let (a, b) = tokio::join!(
            desks[0].post(&token, &first, json!({})),
            desks[1].post(&token, &second, json!({})),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: {a:?} {b:?}");
    }
    nodes.stop().await;
}
