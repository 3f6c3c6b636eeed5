//! Load and stress scenarios shared by the stress tests and `flowhost-load`:
//! a flow, the signed webhooks a channel would deliver for it, stand-ins
//! of the channels' send APIs that record every reply, an order service, a
//! slow service, and a driver that posts over many connections at once.
//!
//! Every customer sends `messages` texts one after another (the next once
//! the previous is acknowledged, as a person types); the flow answers each
//! with exactly one reply that names the text, so the replies a customer
//! receives say exactly what was lost, doubled or reordered.
//!
//! The flow is a small shop's tree: the first message gets the welcome with
//! quick replies; later ones pass a regex target and are kept with
//! `save-data` before the templated answer; every [`ORDER_EVERY`]-th message
//! asks for an order, which is looked up with `request` on a local order
//! service (it answers at once). Every `slow_every`-th customer writes
//! `slow ...`, which makes the flow call the slow service instead.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

use flowhost::channels::connexease::expected_sign;
use flowhost::channels::instagram::signature::sign;

/// Every this-many-th message of a customer asks for an order.
pub const ORDER_EVERY: usize = 4;

/// What the order service says of order `id`.
fn order_status(id: u64) -> &'static str {
    if id.is_multiple_of(2) {
        "shipped"
    } else {
        "packed"
    }
}

/// The channel a scenario talks through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Instagram,
    Connexease,
}

/// Who writes what.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub channel: Channel,
    pub accounts: usize,
    pub conversations: usize,
    pub messages: usize,
    /// Every n-th conversation calls the slow service (0: none).
    pub slow_every: usize,
    /// Told apart from other runs on the same stand-ins (a restart).
    pub run: String,
    /// The accounts' `settle_by_echo_seconds` (Instagram).
    pub settle_by_echo_seconds: Option<u64>,
}

/// One webhook delivery: where, what and its headers.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Scenario {
    pub fn customer(&self, c: usize) -> String {
        format!("cust-{}-{c}", self.run)
    }

    pub fn is_slow(&self, c: usize) -> bool {
        self.slow_every > 0 && c.is_multiple_of(self.slow_every)
    }

    pub fn text(&self, c: usize, i: usize) -> String {
        if self.is_slow(c) {
            format!("slow m{i}")
        } else if i % ORDER_EVERY == ORDER_EVERY - 1 {
            format!("order {}", c * self.messages + i)
        } else {
            format!("m{i}")
        }
    }

    /// The replies customer `c` must receive, in order.
    pub fn expected(&self, c: usize) -> Vec<String> {
        (0..self.messages)
            .map(|i| self.reply_to(i, &self.text(c, i)))
            .collect()
    }

    /// The reply to a customer's `i`-th message, `text`, as the channel
    /// receives it.
    fn reply_to(&self, i: usize, text: &str) -> String {
        let answer = match text.strip_prefix("order ") {
            Some(id) => {
                let id: u64 = id.parse().expect("an order number from text()");
                format!("got {text}: {}", order_status(id))
            }
            None => format!("got {text}"),
        };
        match (i, self.channel) {
            // The welcome's quick replies: Connexease has no buttons, so
            // flowhost numbers them under the text.
            (0, Channel::Connexease) => format!("{answer}\n1. Order status\n2. Talk to an agent"),
            _ => answer,
        }
    }

    /// The Instagram account id of account number `account`.
    pub fn ig_id(&self, account: usize) -> String {
        format!("178415{account:011}")
    }

    /// The text a reply arrives as at the channel (Connexease numbers quick
    /// replies under the text), to match an outbox record with what
    /// [`Scenario::expected`] lists.
    pub fn as_received(&self, message: &flowhost::model::OutgoingMessage) -> String {
        match self.channel {
            Channel::Instagram => message.text.clone().unwrap_or_default(),
            Channel::Connexease => {
                flowhost::channels::connexease::reply_body("", message)["messages"][0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
        }
    }

    fn cx_channel(&self, account: usize) -> String {
        format!("cx-channel-{account}")
    }

    /// The flow (see the module's docs): every message is answered once,
    /// naming its text.
    pub fn flow_yaml(&self, api_base: &str, slow_base: &str) -> String {
        let mut accounts = String::new();
        let mut connectors = String::new();
        for a in 0..self.accounts {
            match self.channel {
                Channel::Instagram => {
                    accounts.push_str(&format!(
                        "  acc{a}:\n    channel: instagram\n    ig_user_id: \"{}\"\n    access_token: token-{a}\n    app_secret: secret-{a}\n    verify_token: verify-{a}\n    api_base_url: {api_base}\n",
                        self.ig_id(a)
                    ));
                    if let Some(seconds) = self.settle_by_echo_seconds {
                        accounts.push_str(&format!("    settle_by_echo_seconds: {seconds}\n"));
                    }
                }
                Channel::Connexease => accounts.push_str(&format!(
                    "  acc{a}:\n    channel: connexease\n    channel_id: {}\n    username: bot{a}@example.test\n    password: pw-{a}\n    webhook_secret: cx-secret-{a}\n    api_base_url: {api_base}\n",
                    self.cx_channel(a)
                )),
            }
            connectors.push_str(&format!(
                "  dm{a}: {{ title: DMs {a}, account: acc{a}, next: {{ decision_tree: shop }} }}\n"
            ));
        }
        let targets = "        targets:
          - { id: slow, when: pattern, pattern: '^slow', go: { decision: slow } }
          - { id: order, when: pattern, pattern: '^order \\d+$', go: { decision: lookup } }
          - { id: other, when: default, go: { decision: answer } }
";
        format!(
            r#"vars:
  slow: {slow_base}
  orders: {slow_base}
accounts:
{accounts}connectors:
{connectors}decision_trees:
  shop:
    title: Shop
    start: welcome
    decisions:
      welcome:
        actions:
          - action: send-message
            config:
              text: "got {{{{ message.text }}}}"
              quick_replies: [{{ title: Order status, payload: ORDER }}, {{ title: Talk to an agent, payload: AGENT }}]
{targets}      answer:
        actions:
          - action: save-data
            config: {{ key: last_message, value: "{{{{ message.text }}}}" }}
          - action: send-message
            config: {{ text: "got {{{{ message.text }}}}" }}
{targets}      lookup:
        actions:
          - action: save-data
            config: {{ key: order, value: "{{{{ message.text[6:] }}}}" }}
          - action: request
            config: {{ method: GET, url: "{{{{ vars.orders }}}}/orders/{{{{ data.order }}}}", name: order }}
          - action: send-message
            config: {{ text: "got {{{{ message.text }}}}: {{{{ order.body.status }}}}" }}
{targets}      slow:
        actions:
          - action: request
            config: {{ method: GET, url: "{{{{ vars.slow }}}}/slow", name: slow_answer }}
          - action: send-message
            config: {{ text: "got {{{{ message.text }}}}" }}
{targets}"#
        )
    }

    /// The echo Meta delivers for our send `mid` of `text` to `customer`
    /// from Instagram account `ig`.
    pub fn echo(&self, ig: &str, customer: &str, text: &str, mid: &str) -> Delivery {
        let account: usize = ig[6..].parse().expect("an id from ig_id");
        let body = json!({"object": "instagram", "entry": [{"id": ig, "time": 1_800_000_000_000u64,
            "messaging": [{"sender": {"id": ig}, "recipient": {"id": customer},
                "timestamp": 1_800_000_000_000u64,
                "message": {"mid": mid, "text": text, "is_echo": true}}]}]})
        .to_string()
        .into_bytes();
        instagram_delivery(account, body)
    }

    /// The webhook the channel delivers for message `i` of customer `c`.
    pub fn delivery(&self, c: usize, i: usize) -> Delivery {
        self.delivery_of(c, i, &self.text(c, i))
    }

    /// Message `i` of customer `c`, with `text` instead of the usual one.
    pub fn delivery_of(&self, c: usize, i: usize, text: &str) -> Delivery {
        let account = c % self.accounts;
        let customer = self.customer(c);
        match self.channel {
            Channel::Instagram => {
                let ig = self.ig_id(account);
                // Distinct, increasing per customer: the order Meta stamps.
                let timestamp = 1_800_000_000_000u64 + (c * self.messages + i) as u64;
                let body = json!({"object": "instagram", "entry": [{"id": ig, "time": timestamp,
                    "messaging": [{"sender": {"id": customer}, "recipient": {"id": ig},
                        "timestamp": timestamp,
                        "message": {"mid": format!("mid-{}-{c}-{i}", self.run), "text": text}}]}]})
                .to_string()
                .into_bytes();
                instagram_delivery(account, body)
            }
            Channel::Connexease => {
                let channel = self.cx_channel(account);
                let body = json!({"hook": "message.created", "channel": {"uuid": channel},
                    "payload": {"uuid": format!("msg-{}-{c}-{i}", self.run), "content": text,
                        "conversation_uuid": customer,
                        "customer": {"name": format!("Customer {c}")}, "agent": null}})
                .to_string()
                .into_bytes();
                let signature = expected_sign(&format!("cx-secret-{account}"), &channel);
                Delivery {
                    path: "/webhooks/connexease",
                    body,
                    headers: vec![("x-connexease-webhook-sign", signature)],
                }
            }
        }
    }
}

/// `body` as Meta delivers it for account number `account`, signed.
fn instagram_delivery(account: usize, body: Vec<u8>) -> Delivery {
    let signature = sign(format!("secret-{account}").as_bytes(), &body);
    Delivery {
        path: "/webhooks/instagram",
        body,
        headers: vec![("x-hub-signature-256", signature)],
    }
}

/// Stand-ins of the Graph API's Send API and of Connexease's login and
/// messages API, recording every reply; the order service; and the slow
/// service, which holds each request until its gate opens (or for a fixed
/// delay).
#[derive(Clone)]
pub struct StandIns {
    inner: Arc<Recorded>,
}

struct Recorded {
    /// customer -> texts received, in arrival order.
    replies: Mutex<BTreeMap<String, Vec<String>>>,
    /// customer -> when each of their replies arrived.
    arrivals: Mutex<BTreeMap<String, Vec<Instant>>>,
    count: AtomicUsize,
    /// Requests that reached the slow service.
    slow_requests: AtomicUsize,
    ids: AtomicU64,
    gate: watch::Sender<bool>,
    slow_delay: Mutex<Duration>,
    /// Where to post the echo of every Instagram send, as Meta does for an
    /// app subscribed to `message_echoes`.
    echo: Mutex<Option<(String, Scenario)>>,
}

impl StandIns {
    /// Serves them on a loopback port; returns them and the base URL.
    pub async fn start() -> (StandIns, String) {
        let (gate, _) = watch::channel(false);
        let stand_ins = StandIns {
            inner: Arc::new(Recorded {
                replies: Default::default(),
                arrivals: Default::default(),
                count: AtomicUsize::new(0),
                slow_requests: AtomicUsize::new(0),
                ids: AtomicU64::new(0),
                gate,
                slow_delay: Mutex::new(Duration::ZERO),
                echo: Mutex::new(None),
            }),
        };
        let router = axum::Router::new()
            .route("/{version}/{ig_id}/messages", post(graph_send))
            .route("/jwt/", post(connexease_login))
            .route("/v2/messages/", post(connexease_reply))
            .route("/slow", get(slow))
            .route("/orders/{id}", get(order))
            .with_state(stand_ins.clone());
        let addr = crate::serve(router).await;
        (stand_ins, format!("http://{addr}"))
    }

    /// Lets every held and future slow request through.
    pub fn open_gate(&self) {
        self.inner.gate.send_replace(true);
    }

    /// Makes the slow service answer after `delay` without a gate.
    pub fn slow_for(&self, delay: Duration) {
        *self.inner.slow_delay.lock().unwrap() = delay;
        self.open_gate();
    }

    /// Echoes every Send API message back to `base` as `scenario`'s signed
    /// webhook (retried until it is taken, as Meta retries).
    pub fn echo_to(&self, base: &str, scenario: &Scenario) {
        *self.inner.echo.lock().unwrap() = Some((base.to_string(), scenario.clone()));
    }

    /// Requests that reached the slow service so far.
    pub fn slow_requests(&self) -> usize {
        self.inner.slow_requests.load(Ordering::SeqCst)
    }

    pub fn reply_count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    pub fn replies(&self) -> BTreeMap<String, Vec<String>> {
        self.inner.replies.lock().unwrap().clone()
    }

    /// customer -> when each of their replies arrived, in order.
    pub fn arrivals(&self) -> BTreeMap<String, Vec<Instant>> {
        self.inner.arrivals.lock().unwrap().clone()
    }

    fn record(&self, customer: &str, text: &str) -> u64 {
        self.inner
            .replies
            .lock()
            .unwrap()
            .entry(customer.to_string())
            .or_default()
            .push(text.to_string());
        self.inner
            .arrivals
            .lock()
            .unwrap()
            .entry(customer.to_string())
            .or_default()
            .push(Instant::now());
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        self.inner.ids.fetch_add(1, Ordering::SeqCst)
    }

    /// Waits until `n` replies arrived or `deadline` passed.
    pub async fn wait_for_replies(&self, n: usize, deadline: Instant) -> usize {
        while self.reply_count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.reply_count()
    }
}

async fn graph_send(
    State(stand_ins): State<StandIns>,
    Path((_version, ig)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let customer = body["recipient"]["id"].as_str().unwrap_or_default();
    let text = body["message"]["text"].as_str().unwrap_or_default();
    let id = format!("m_{}", stand_ins.record(customer, text));
    let echo = stand_ins.inner.echo.lock().unwrap().clone();
    if let Some((base, scenario)) = echo {
        let delivery = scenario.echo(&ig, customer, text, &id);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut report = DriveReport::default();
            post_until_acknowledged(&client, &base, &delivery, &mut report, deadline).await;
        });
    }
    Json(json!({"recipient_id": customer, "message_id": id}))
}

async fn connexease_login(Json(body): Json<Value>) -> Json<Value> {
    let user = body["username"].as_str().unwrap_or_default();
    Json(json!({"token": format!("jwt-{user}"), "account": {"uuid": "acc"}}))
}

async fn connexease_reply(
    State(stand_ins): State<StandIns>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let conversation = body["uuid"].as_str().unwrap_or_default();
    let text = body["messages"][0]["content"].as_str().unwrap_or_default();
    let id = stand_ins.record(conversation, text);
    (
        StatusCode::CREATED,
        Json(json!({"uuid": format!("cx-{id}")})),
    )
}

/// The order service: answers at once.
async fn order(Path(id): Path<String>) -> (StatusCode, Json<Value>) {
    match id.parse::<u64>() {
        Ok(number) => (
            StatusCode::OK,
            Json(json!({"id": number, "status": order_status(number)})),
        ),
        Err(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such order"})),
        ),
    }
}

async fn slow(State(stand_ins): State<StandIns>) -> Json<Value> {
    stand_ins.inner.slow_requests.fetch_add(1, Ordering::SeqCst);
    let mut gate = stand_ins.inner.gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    let delay = *stand_ins.inner.slow_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    Json(json!({"slow": true}))
}

/// What the driver saw.
#[derive(Debug, Default)]
pub struct DriveReport {
    /// Deliveries answered 2xx.
    pub acknowledged: usize,
    /// Answers other than 2xx, and failed connections, each retried.
    pub refused: usize,
    /// Acknowledgement latencies, one per acknowledged delivery.
    pub ack_latencies: Vec<Duration>,
    /// When each delivery was first posted: (customer, message) -> time.
    pub sent_at: BTreeMap<(usize, usize), Instant>,
}

/// Posts every customer's messages over `connections` connections at once;
/// each customer's messages go one after another. A refused or failed
/// delivery is retried (Meta does) until `deadline`.
pub async fn drive(
    base: &str,
    scenario: &Scenario,
    customers: Vec<usize>,
    connections: usize,
    deadline: Instant,
) -> DriveReport {
    drive_over(
        &[base.to_string()],
        scenario,
        customers,
        connections,
        deadline,
    )
    .await
}

/// [`drive`] over several servers sharing one database: a customer's
/// messages go to them in turn, and a delivery a server does not take
/// goes to the next one (as a load balancer fails over).
pub async fn drive_over(
    bases: &[String],
    scenario: &Scenario,
    customers: Vec<usize>,
    connections: usize,
    deadline: Instant,
) -> DriveReport {
    let queue = Arc::new(Mutex::new(VecDeque::from(customers)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let queue = queue.clone();
        let scenario = scenario.clone();
        let bases = bases.to_vec();
        workers.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut report = DriveReport::default();
            loop {
                let Some(c) = queue.lock().unwrap().pop_front() else {
                    return report;
                };
                for i in 0..scenario.messages {
                    let delivery = scenario.delivery(c, i);
                    report.sent_at.insert((c, i), Instant::now());
                    let mut turn = c + i;
                    loop {
                        let base = &bases[turn % bases.len()];
                        let patience = if bases.len() == 1 {
                            deadline
                        } else {
                            deadline.min(Instant::now() + Duration::from_secs(2))
                        };
                        if post_until_acknowledged(&client, base, &delivery, &mut report, patience)
                            .await
                        {
                            break;
                        }
                        if Instant::now() >= deadline {
                            return report;
                        }
                        turn += 1;
                    }
                }
            }
        });
    }
    let mut total = DriveReport::default();
    while let Some(report) = workers.join_next().await {
        let report = report.expect("a driver task");
        total.acknowledged += report.acknowledged;
        total.refused += report.refused;
        total.ack_latencies.extend(report.ack_latencies);
        total.sent_at.extend(report.sent_at);
    }
    total
}

/// Posts `delivery` until it is acknowledged or `deadline` passes.
pub async fn post_until_acknowledged(
    client: &reqwest::Client,
    base: &str,
    delivery: &Delivery,
    report: &mut DriveReport,
    deadline: Instant,
) -> bool {
    while Instant::now() < deadline {
        let mut request = client
            .post(format!("{base}{}", delivery.path))
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        for (name, value) in &delivery.headers {
            request = request.header(*name, value);
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                report.acknowledged += 1;
                report.ack_latencies.push(started.elapsed());
                return true;
            }
            _ => {
                report.refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    false
}

/// Polls `/healthz` every 100 ms until stopped; counts the probes that
/// failed or took over 2 s.
pub struct HealthWatch {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl HealthWatch {
    pub fn start(base: &str) -> HealthWatch {
        let (stop, mut stopped) = watch::channel(false);
        let url = format!("{base}/healthz");
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let (mut probes, mut failures) = (0, 0);
            while !*stopped.borrow() {
                probes += 1;
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {}
                    _ => failures += 1,
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => {}
                }
            }
            (probes, failures)
        });
        HealthWatch { stop, task }
    }

    /// Stops; returns (probes, failed probes).
    pub async fn finish(self) -> (usize, usize) {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

/// Checks every customer got exactly the replies expected, in order:
/// returns a description of each difference (empty when all is right).
pub fn differences(
    scenario: &Scenario,
    customers: impl Iterator<Item = usize>,
    replies: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    for c in customers {
        let expected = scenario.expected(c);
        let got = replies
            .get(&scenario.customer(c))
            .cloned()
            .unwrap_or_default();
        if got != expected {
            wrong.push(format!(
                "{}: expected {expected:?}, got {got:?}",
                scenario.customer(c)
            ));
        }
    }
    wrong
}
