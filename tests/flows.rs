//! Flows end to end: validation errors with their paths, and the example
//! flow run by the real engine with real plugin components, sled on disk,
//! an order API on loopback and a clock the test moves.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use flowhost::engine::clock::FixedClock;
use flowhost::engine::{Engine, EngineSettings, TurnReport};
use flowhost::flow::{CompiledFlow, Flow, PluginCatalog};
use flowhost::model::Position;
use flowhost::plugin::{Contact, InboundMessage};
use flowhost::registry::PluginRegistry;
use flowhost::storage::Storage;
use flowhost_tests::{runtime, serve};
use serde_json::json;

const EXAMPLE: &str = include_str!("../examples/shop-support.yaml");

/// Monday 2026-11-23 10:00 in Istanbul (UTC+3).
const MONDAY_10_ISTANBUL: u64 = 1_795_417_200_000;

async fn registry() -> (Arc<flowhost::plugin::PluginRuntime>, Arc<PluginRegistry>) {
    let runtime = Arc::new(runtime());
    let settings = BTreeMap::from([("request".to_string(), flowhost_tests::loopback_request())]);
    let registry = PluginRegistry::load(&runtime, None, &settings)
        .await
        .expect("plugins load");
    (runtime, Arc::new(registry))
}

fn compile(flow: Flow, registry: &PluginRegistry) -> CompiledFlow {
    match flowhost::flow::compile(flow, &PluginCatalog::from_registry(registry)) {
        Ok((compiled, _warnings)) => compiled,
        Err(report) => panic!("the flow does not validate:\n{report}"),
    }
}

/// An order API stand-in: 123456 ships, 654321 has a lost item, 500000 fails.
async fn order_api() -> String {
    let router = axum::Router::new().route(
        "/orders/{id}",
        get(|Path(id): Path<String>| async move {
            match id.as_str() {
                "123456" => (StatusCode::OK, Json(json!({"status": "shipped", "items": [{"name": "Blue mug", "quantity": 2, "status": "shipped"}]}))),
                "654321" => (
                    StatusCode::OK,
                    Json(json!({"status": "partly delivered", "items": [{"name": "Teapot", "quantity": 1, "status": "delivered"}, {"name": "Cup set", "quantity": 1, "status": "lost"}]})),
                ),
                _ => (StatusCode::NOT_FOUND, Json(json!({"error": "no such order"}))),
            }
        }),
    );
    format!("http://{}", serve(router).await)
}

struct Shop {
    engine: Engine,
    clock: Arc<FixedClock>,
    storage: Storage,
}

async fn shop(dir: &std::path::Path, order_api: &str, now_ms: u64) -> Shop {
    let (runtime, registry) = registry().await;
    let mut flow = flowhost::flow::parse(EXAMPLE).unwrap();
    flow.vars.insert("order_api".into(), json!(order_api));
    let compiled = compile(flow, &registry);
    let storage = Storage::open(dir).unwrap();
    let clock = Arc::new(FixedClock::at(now_ms));
    let engine = Engine::new(
        Arc::new(compiled),
        runtime,
        registry,
        storage.clone(),
        clock.clone(),
        EngineSettings::default(),
    );
    Shop {
        engine,
        clock,
        storage,
    }
}

fn ada() -> Contact {
    Contact {
        id: "IGSID-ada".into(),
        name: Some("Ada".into()),
        username: Some("ada.l".into()),
    }
}

impl Shop {
    async fn say(&self, text: &str) -> TurnReport {
        self.send(text, None).await
    }

    async fn press(&self, payload: &str) -> TurnReport {
        self.send("", Some(payload)).await
    }

    async fn send(&self, text: &str, payload: Option<&str>) -> TurnReport {
        let message = InboundMessage {
            id: uuid(),
            text: Some(text.to_string()).filter(|t| !t.is_empty()),
            payload: payload.map(String::from),
            attachments: Vec::new(),
            timestamp_ms: self.clock.0.load(std::sync::atomic::Ordering::Relaxed),
        };
        self.engine
            .handle_message("shop-ig", ada(), message)
            .await
            .expect("the turn commits")
    }
}

fn uuid() -> String {
    format!(
        "mid.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn texts(report: &TurnReport) -> Vec<String> {
    report
        .messages
        .iter()
        .filter_map(|m| m.message.text.clone())
        .collect()
}

fn quick_replies(report: &TurnReport) -> Vec<(String, String)> {
    report
        .messages
        .iter()
        .flat_map(|m| {
            m.message
                .quick_replies
                .iter()
                .map(|q| (q.title.clone(), q.payload.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_example_flow_validates() {
    let (_, registry) = registry().await;
    let flow = flowhost::flow::parse(EXAMPLE).unwrap();
    let (compiled, warnings) =
        flowhost::flow::compile(flow, &PluginCatalog::from_registry(&registry)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(compiled.flow.decision_trees["support"].decisions.len(), 9);
}

#[tokio::test]
async fn every_kind_of_error_is_reported_with_its_path() {
    let (_, registry) = registry().await;
    let broken = r#"
accounts:
  ig: { channel: instagram, ig_user_id: "1" }
connectors:
  dm: { title: DMs, account: ig, next: { decision_tree: support } }
  dm2: { title: again, account: nobody, next: { queue: missing-queue } }
time_groups:
  office: { time_zone: Mars/Base, weekly: { monday: ["18:00-09:00"] } }
time_conditions:
  hours: { time_group: office, open: { decision: welcome }, closed: { terminate: bye } }
decision_trees:
  support:
    start: welcome
    decisions:
      welcome:
        actions:
          - action: send-message
            config: { text: "Hi {{ contcat.name }}" }
          - action: teleport
          - action: save-data
            config: { value: 1 }
          - action: request
            config: { url: "https://x.example/{{ data.id", name: r }
          - if: "data.vip and"
            then: []
        targets:
          - { when: button, title: Yes, go: { decision: nowhere } }
          - { when: pattern, pattern: "([0-9", go: { decision: welcome } }
          - { when: similar, words: "agent", default: true, go: { queue: q } }
          - { when: default, go: { decision: welcome } }
      bare:
        targets:
          - { when: button, title: Lonely, go: { decision: welcome } }
          - { when: immediately, go: { decision: welcome } }
      spin:
        targets:
          - { when: immediately, go: { decision: spin2 } }
      spin2:
        targets:
          - { when: immediately, go: { decision: spin } }
queues:
  q: { name: Support }
terminates:
  bye: { cause: done, queue: nope }
"#;
    let flow = flowhost::flow::parse(broken).unwrap();
    let report = match flowhost::flow::compile(flow, &PluginCatalog::from_registry(&registry)) {
        Err(report) => report,
        Ok(_) => panic!("the broken flow validated"),
    };
    let paths: Vec<&str> = report.errors.iter().map(|e| e.path.as_str()).collect();
    let expect = [
        ("connectors.dm2.account", "no account is named `nobody`"),
        ("connectors.dm2.next", "no queue is named `missing-queue`"),
        ("time_groups.office.time_zone", "not an IANA time zone"),
        ("time_groups.office.weekly.monday[0]", "not a range"),
        (
            "time_conditions.hours.open",
            "only possible inside a decision tree",
        ),
        (
            "decision_trees.support.decisions.welcome.actions[0].config.text",
            "unknown variable `contcat`",
        ),
        (
            "decision_trees.support.decisions.welcome.actions[1].action",
            "no plugin is named `teleport`",
        ),
        (
            "decision_trees.support.decisions.welcome.actions[2].config",
            "\"key\" is a required property",
        ),
        (
            "decision_trees.support.decisions.welcome.actions[3].config.url",
            "template is not valid",
        ),
        (
            "decision_trees.support.decisions.welcome.actions[4].if",
            "expression does not parse",
        ),
        (
            "decision_trees.support.decisions.welcome.targets[0].go",
            "no decision is named `nowhere`",
        ),
        (
            "decision_trees.support.decisions.welcome.targets[1].pattern",
            "regular expression does not compile",
        ),
        (
            "decision_trees.support.decisions.welcome.targets[3].default",
            "only one target can be the default answer",
        ),
        (
            "decision_trees.support.decisions.bare.prompt",
            "button targets need a prompt",
        ),
        (
            "decision_trees.support.decisions.bare.targets[1]",
            "buttons would be shown but never answered",
        ),
        ("terminates.bye.queue", "no queue is named `nope`"),
    ];
    for (path, needle) in expect {
        let found = report.errors.iter().find(|e| e.path == path);
        let issue = found.unwrap_or_else(|| panic!("no error at {path}; errors are:\n{report}"));
        assert!(issue.message.contains(needle), "{path}: {}", issue.message);
    }
    let spin = report
        .errors
        .iter()
        .find(|e| e.message.contains("without ever waiting"))
        .expect("the immediate loop is an error");
    assert!(
        spin.path
            .starts_with("decision_trees.support.decisions.spin"),
        "{}",
        spin.path
    );
    assert!(paths.len() >= expect.len());
    // Unreachable decisions are warnings, reported alongside the errors.
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.path == "decision_trees.support.decisions.spin"),
        "{report}"
    );
}

/// Sunday 2026-11-22 18:00 in Istanbul: closed (no Sunday hours).
const SUNDAY_18_ISTANBUL: u64 = 1_795_359_600_000;
/// Thursday 2026-10-29 10:00 in Istanbul: Republic Day, a holiday.
const HOLIDAY_10_ISTANBUL: u64 = 1_793_257_200_000;

#[tokio::test]
async fn welcome_buttons_then_order_lookup_then_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), &order_api().await, MONDAY_10_ISTANBUL).await;

    let welcome = shop.say("hello there, I have a question").await;
    assert_eq!(texts(&welcome), ["Hi Ada! How can we help you today?"]);
    assert_eq!(
        quick_replies(&welcome),
        [
            ("Order status".into(), "order-status".into()),
            ("Talk to an agent".into(), "agent".into())
        ]
    );
    assert_eq!(
        welcome.position,
        Position::Waiting {
            tree: "support".into(),
            decision: "welcome".into()
        }
    );

    let ask = shop.press("order-status").await;
    assert_eq!(texts(&ask), ["Please type your 6-digit order number."]);

    let lookup = shop.say(" 123456 ").await;
    assert_eq!(
        texts(&lookup),
        [
            "Order 123456 is shipped.",
            "• Blue mug × 2: shipped",
            "Anything else I can help with?"
        ]
    );
    assert_eq!(
        quick_replies(&lookup),
        [
            ("Yes".into(), "yes".into()),
            ("No, thanks".into(), "no".into())
        ]
    );
    assert_eq!(
        shop.storage
            .load_data(&lookup.conversation_id)
            .await
            .unwrap()["order"],
        "123456"
    );

    // A desktop user types the button's title instead of tapping it.
    let bye = shop.say("no, thanks").await;
    assert_eq!(texts(&bye), ["Thanks for writing to us, Ada!"]);
    let ending = bye.ending.expect("the conversation ended");
    assert_eq!(
        (
            ending.terminate.as_str(),
            ending.cause.as_str(),
            ending.queue.as_deref(),
            ending.answered
        ),
        ("resolved", "resolved-by-bot", Some("support"), true)
    );
    assert_eq!(bye.position, Position::Ended);

    // The next message starts a new session at the connector.
    let again = shop.say("hello again").await;
    assert_eq!(texts(&again), ["Hi Ada! How can we help you today?"]);
    assert!(
        again.conversation_id.ends_with(":2"),
        "{}",
        again.conversation_id
    );
    // Every reply is in the outbox for the sender, in order.
    let outbox = shop.storage.outbox(usize::MAX).await.unwrap();
    assert_eq!(outbox.len(), 1 + 1 + 3 + 1 + 1);
    assert!(outbox.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test]
async fn language_variants_follow_the_customers_language() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), &order_api().await, MONDAY_10_ISTANBUL).await;
    let welcome = shop.say("Merhaba, siparişim nerede acaba?").await;
    assert_eq!(
        texts(&welcome),
        ["Merhaba Ada! Size nasıl yardımcı olabiliriz?"]
    );
    assert_eq!(
        quick_replies(&welcome)[0],
        ("Sipariş durumu".into(), "order-status".into())
    );
    // The Turkish title typed back matches the Turkish button.
    let ask = shop.say("sipariş durumu").await;
    assert_eq!(texts(&ask), ["Lütfen 6 haneli sipariş numaranızı yazın."]);
}

#[tokio::test]
async fn similar_words_pattern_and_default_answers() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), &order_api().await, MONDAY_10_ISTANBUL).await;
    shop.say("hello, good afternoon").await;

    // Nothing matches: the default answer, which goes back to the welcome.
    let unsure = shop.say("what is the meaning of life").await;
    assert_eq!(
        texts(&unsure),
        [
            "Sorry, I didn't get that.",
            "Hi Ada! How can we help you today?"
        ]
    );

    // A 6-digit number typed at the welcome matches its pattern.
    let direct = shop.say("123456").await;
    assert_eq!(texts(&direct)[0], "Order 123456 is shipped.");

    // "humna" is "human" with a typo: similar words hand off to a person.
    let handoff = shop.say("can I talk to a humna please").await;
    assert_eq!(
        texts(&handoff),
        ["Connecting you to an agent; please hold on."]
    );
    assert!(matches!(handoff.position, Position::Queued { ref queue, .. } if queue == "support"));
}

#[tokio::test]
async fn a_pattern_miss_asks_again_and_a_loop_ends_on_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), &order_api().await, MONDAY_10_ISTANBUL).await;
    shop.say("hello, good afternoon").await;
    shop.press("order-status").await;
    let miss = shop.say("12345").await;
    assert_eq!(
        texts(&miss),
        [
            "That doesn't look like an order number (6 digits, like 123456).",
            "Please type your 6-digit order number."
        ]
    );

    // The loop over the order's items stops at the lost one and follows
    // the loop's target: a ticket, then the queue.
    let lost = shop.say("654321").await;
    let said = texts(&lost);
    assert_eq!(said[0], "Order 654321 is partly delivered.");
    assert_eq!(
        said[1], "• Teapot × 1: delivered",
        "the item before the lost one is listed"
    );
    assert!(
        said[2].starts_with("Sorry about that! We opened ticket "),
        "{said:?}"
    );
    assert!(matches!(lost.position, Position::Queued { .. }));
    let tickets = shop
        .storage
        .tickets_of(&lost.conversation_id)
        .await
        .unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].title, "Lost item in order 654321");
    assert!(said[2].contains(&tickets[0].id));
}

#[tokio::test]
async fn a_failing_action_follows_its_on_error_target() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback: the request fails.
    let shop = shop(dir.path(), "http://127.0.0.1:9", MONDAY_10_ISTANBUL).await;
    shop.say("hello, good afternoon").await;
    let failed = shop.say("123456").await;
    assert_eq!(
        texts(&failed),
        ["Our order system isn't answering right now; let me connect you to an agent."]
    );
    assert!(matches!(failed.position, Position::Queued { .. }));
    assert!(
        failed
            .notes
            .iter()
            .any(|n| n.contains("action `request` failed (http)")),
        "{:?}",
        failed.notes
    );
}

#[tokio::test]
async fn after_hours_the_automessage_runs_on_durable_timers() {
    let dir = tempfile::tempdir().unwrap();
    let api = order_api().await;
    let shop1 = shop(dir.path(), &api, SUNDAY_18_ISTANBUL).await;
    let first = shop1.say("hello, is anyone there?").await;
    assert_eq!(
        texts(&first),
        ["Hi Ada! We're closed right now; our team is back at 09:00 (Istanbul time)."]
    );
    assert!(matches!(first.position, Position::Automessage { .. }));

    // 29 seconds later nothing is due.
    shop1.clock.advance(29_000);
    assert!(shop1.engine.fire_due_timers().await.unwrap().is_empty());
    // The customer writes meanwhile: recorded, the automessage goes on.
    let meanwhile = shop1.say("my order is 123456").await;
    assert!(meanwhile.messages.is_empty());

    // A restart: a new engine on the same data directory.
    drop(shop1);
    let shop2 = shop(dir.path(), &api, SUNDAY_18_ISTANBUL + 30_000).await;
    let fired = shop2.engine.fire_due_timers().await.unwrap();
    let said: Vec<String> = fired.iter().flat_map(texts).collect();
    assert_eq!(
        said,
        [
            "Leave your question and your order number here, and an agent will answer first thing in the morning."
        ]
    );
    let last = fired.last().unwrap();
    assert_eq!(
        last.ending.as_ref().map(|e| e.cause.as_str()),
        Some("after-hours")
    );
    assert_eq!(last.position, Position::Ended);
    // Firing again sends nothing twice.
    shop2.clock.advance(60_000);
    assert!(shop2.engine.fire_due_timers().await.unwrap().is_empty());
    assert_eq!(shop2.storage.next_timer_due().await.unwrap(), None);
    assert_eq!(shop2.storage.outbox(usize::MAX).await.unwrap().len(), 2);
}

#[tokio::test]
async fn holidays_close_the_office() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), &order_api().await, HOLIDAY_10_ISTANBUL).await;
    let reply = shop.say("hello, good morning").await;
    assert!(
        texts(&reply)[0].contains("We're closed right now"),
        "{:?}",
        texts(&reply)
    );
}

#[tokio::test]
async fn a_restart_mid_conversation_resumes_exactly_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let api = order_api().await;
    {
        let shop = shop(dir.path(), &api, MONDAY_10_ISTANBUL).await;
        shop.say("hello, good afternoon").await;
        let ask = shop.press("order-status").await;
        assert_eq!(
            ask.position,
            Position::Waiting {
                tree: "support".into(),
                decision: "ask-order".into()
            }
        );
        shop.storage.flush().await.unwrap();
    }
    let shop = shop(dir.path(), &api, MONDAY_10_ISTANBUL + 60_000).await;
    let lookup = shop.say("123456").await;
    assert_eq!(texts(&lookup)[0], "Order 123456 is shipped.");
    assert!(
        lookup.conversation_id.ends_with(":1"),
        "still the first session"
    );
}

#[tokio::test]
async fn saved_data_overrides_the_detected_language() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), &order_api().await, MONDAY_10_ISTANBUL).await;
    let mut effects = flowhost::plugin::Effects::default();
    effects
        .data_changes
        .insert("language".into(), Some(json!("tr")));
    shop.storage
        .commit_effects("shop-ig:IGSID-ada:1", effects, 0)
        .await
        .unwrap();
    let welcome = shop.say("Hello, where is my order please?").await;
    assert_eq!(
        texts(&welcome),
        ["Merhaba Ada! Size nasıl yardımcı olabiliriz?"]
    );
}

/// The built-ins and the test guest `echo-bot`, a chatbot adapter that
/// echoes the customer.
async fn echo_bot_registry() -> (Arc<flowhost::plugin::PluginRuntime>, Arc<PluginRegistry>) {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(
        plugins.path().join("echo-bot.wasm"),
        flowhost_tests::guest("echo-bot"),
    )
    .unwrap();
    let runtime = Arc::new(runtime());
    let registry = PluginRegistry::load(&runtime, Some(plugins.path()), &BTreeMap::new())
        .await
        .unwrap();
    (runtime, Arc::new(registry))
}

/// A flow whose connector goes straight to a chatbot.
fn chatbot_flow(adapter: &str) -> Flow {
    let yaml = format!(
        r#"
accounts:
  ig: {{ channel: instagram, ig_user_id: "1" }}
connectors:
  dm: {{ title: DMs, account: ig, next: {{ chatbot: helper }} }}
chatbots:
  helper:
    title: Helper bot
    adapter: {adapter}
    url: https://bot.example/hook
    send_start_message: false
    fallback: {{ queue: humans }}
    custom_fields: [{{ name: vip, title: VIP, value: "{{{{ data.vip }}}}" }}]
queues:
  humans: {{ name: Humans }}
"#
    );
    flowhost::flow::parse(&yaml).unwrap()
}

#[tokio::test]
async fn a_chatbot_node_answers_through_its_adapter_or_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, registry) = echo_bot_registry().await;
    let storage = Storage::open(dir.path()).unwrap();
    let clock: Arc<FixedClock> = Arc::new(FixedClock::at(MONDAY_10_ISTANBUL));
    let message = |text: &str| InboundMessage {
        id: uuid(),
        text: Some(text.into()),
        ..Default::default()
    };

    let engine = Engine::new(
        Arc::new(compile(chatbot_flow("echo-bot"), &registry)),
        runtime.clone(),
        registry.clone(),
        storage.clone(),
        clock.clone(),
        EngineSettings::default(),
    );
    let first = engine
        .handle_message("ig", ada(), message("hello bot"))
        .await
        .unwrap();
    assert!(
        matches!(first.position, Position::Chatbot { .. }),
        "{:?}",
        first.position
    );
    // No start message was asked for; the message that brought the
    // customer is the bot's first.
    assert_eq!(texts(&first), ["hello bot"]);
    let echoed = engine
        .handle_message("ig", ada(), message("echo this"))
        .await
        .unwrap();
    assert_eq!(texts(&echoed), ["echo this"]);
    // Issue 8, item 7: a bot's answer is held to its max_messages.
    let flood = engine
        .handle_message("ig", ada(), message("flood 3000"))
        .await
        .unwrap();
    let limit = flowhost::plugin::Limits::default().max_messages as usize;
    assert_eq!(flood.messages.len(), limit);
    assert!(
        flood.notes.iter().any(|n| n.contains("3000 messages")),
        "{:?}",
        flood.notes
    );

    // An action plugin is no chatbot adapter: validation says so...
    let err = flowhost::flow::compile(
        chatbot_flow("save-data"),
        &PluginCatalog::from_registry(&registry),
    )
    .err()
    .unwrap();
    assert_eq!(err.errors[0].path, "chatbots.helper.adapter");
    // ...and a bot that fails sends the conversation to its fallback.
    let other = tempfile::tempdir().unwrap();
    let failing = Engine::new(
        Arc::new(compile(chatbot_flow("echo-bot"), &registry)),
        runtime,
        Arc::new(PluginRegistry::default()),
        Storage::open(other.path()).unwrap(),
        clock,
        EngineSettings::default(),
    );
    let report = failing
        .handle_message("ig", ada(), message("hello"))
        .await
        .unwrap();
    let report = if matches!(report.position, Position::Chatbot { .. }) {
        failing
            .handle_message("ig", ada(), message("anyone?"))
            .await
            .unwrap()
    } else {
        report
    };
    assert!(
        matches!(report.position, Position::Queued { ref queue, .. } if queue == "humans"),
        "{:?}",
        report.position
    );
}

#[test]
fn the_diagram_shows_connectors_decisions_and_targets() {
    let flow = flowhost::flow::parse(EXAMPLE).unwrap();
    let mermaid = flowhost::flow::diagram::mermaid(&flow);
    assert!(mermaid.starts_with("flowchart TD\n"));
    assert!(
        mermaid.contains(r#"connector_shop_dm(["connector: Shop DMs"])"#),
        "{mermaid}"
    );
    assert!(
        mermaid.contains(r#"time_condition_business_hours -->|"open"| tree_support"#),
        "{mermaid}"
    );
    assert!(
        mermaid.contains(
            r#"decision_support__welcome -->|"button: Order status"| decision_support__ask_order"#
        ),
        "{mermaid}"
    );
    let dot = flowhost::flow::diagram::dot(&flow);
    assert!(dot.starts_with("digraph flow {"));
    assert!(dot.contains(r#"decision_support__ask_order -> decision_support__lookup [label="pattern: ^\s*\d{6}\s*$"];"#), "{dot}");
}

#[tokio::test]
async fn a_silent_conversation_times_out_into_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), &order_api().await, MONDAY_10_ISTANBUL).await;
    shop.say("hello, good afternoon").await;
    let ask = shop.press("order-status").await;
    assert!(ask.conversation_id.ends_with(":1"));
    // A day and a minute later (the default session time-out is a day)...
    shop.clock.advance(24 * 3600 * 1000 + 60_000);
    let again = shop.say("123456").await;
    // ...the message starts a new session, at the connector.
    assert!(
        again.conversation_id.ends_with(":2"),
        "{}",
        again.conversation_id
    );
    assert_eq!(texts(&again), ["Hi Ada! How can we help you today?"]);
}

/// Issue 8, item 21: a result kept under a name the engine uses itself
/// (`error`, `answer`, `message`, ...) is refused at validation.
#[tokio::test]
async fn reserved_result_names_are_refused() {
    let (_runtime, registry) = registry().await;
    let flow = flowhost::flow::parse(
        r#"
accounts:
  ig: { channel: instagram, ig_user_id: "1" }
connectors:
  dm: { title: DMs, account: ig, next: { decision_tree: t } }
decision_trees:
  t:
    decisions:
      start:
        actions:
          - action: request
            config: { url: "https://api.example/x", name: error }
          - loop: "[1, 2]"
            as: answer
            do: []
        targets:
          - { when: default, go: { decision: start } }
"#,
    )
    .unwrap();
    let report = flowhost::flow::compile(flow, &PluginCatalog::from_registry(&registry))
        .err()
        .expect("refused");
    let paths: Vec<&str> = report.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"decision_trees.t.decisions.start.actions[0].config.name"),
        "{report}"
    );
    assert!(
        paths.contains(&"decision_trees.t.decisions.start.actions[1].as"),
        "{report}"
    );
    assert!(
        report.to_string().contains("`error` is reserved"),
        "{report}"
    );
}

/// A chatbot's configuration is checked against its adapter's schema, and
/// its time budget and queue aliases against what they may be.
#[tokio::test]
async fn a_chatbot_is_checked_against_its_adapter() {
    let (_runtime, registry) = registry().await;
    let flow = flowhost::flow::parse(
        r#"
accounts:
  ig: { channel: instagram, ig_user_id: "1" }
  ig2: { channel: instagram, ig_user_id: "2" }
connectors:
  dm: { title: DMs, account: ig, next: { chatbot: hooked } }
  dm2: { title: More, account: ig2, next: { chatbot: rasa } }
chatbots:
  hooked:
    title: Webhook bot
    url: https://bot.example/hook
    fallback: { queue: humans }
    timeout_seconds: 0
    config: { start_txt: "typo" }
    queue_aliases: { "10001": humans, "10002": nope }
  rasa:
    title: Rasa
    adapter: rasa
    url: https://rasa.example/webhooks/rest/webhook
    fallback: { queue: humans }
    timeout_seconds: 61
    config: { mode: sometimes }
queues:
  humans: { name: Humans }
"#,
    )
    .unwrap();
    let report = match flowhost::flow::compile(flow, &PluginCatalog::from_registry(&registry)) {
        Err(report) => report,
        Ok(_) => panic!("the flow validated"),
    };
    for (path, needle) in [
        ("chatbots.hooked.timeout_seconds", "between 1 and 60"),
        (
            "chatbots.hooked.config",
            "does not match the adapter's schema",
        ),
        (
            "chatbots.hooked.queue_aliases.10002",
            "no queue is named `nope`",
        ),
        ("chatbots.rasa.timeout_seconds", "between 1 and 60"),
        (
            "chatbots.rasa.config.mode",
            "does not match the adapter's schema",
        ),
    ] {
        let found = report.errors.iter().find(|e| e.path == path);
        let issue = found.unwrap_or_else(|| panic!("no error at {path}; errors are:\n{report}"));
        assert!(issue.message.contains(needle), "{path}: {}", issue.message);
    }
    assert!(
        !report.errors.iter().any(|e| e.path.contains("10001")),
        "{report}"
    );
}

/// A chatbot is reached from a time condition (the customer's first
/// message goes to the bot) or from a decision's target (the answer the
/// decision took is not the bot's).
#[tokio::test]
async fn a_chatbot_is_reached_from_a_time_condition_or_a_decision() {
    let (runtime, registry) = echo_bot_registry().await;
    let flow = flowhost::flow::parse(
        r#"
accounts:
  ig: { channel: instagram, ig_user_id: "1" }
  ig2: { channel: instagram, ig_user_id: "2" }
connectors:
  dm: { title: DMs, account: ig, next: { time_condition: hours } }
  dm2: { title: More, account: ig2, next: { decision_tree: menu } }
time_groups:
  office:
    time_zone: Europe/Istanbul
    weekly: { monday: ["09:00-18:00"] }
time_conditions:
  hours: { title: Hours, time_group: office, open: { chatbot: helper }, closed: { queue: humans } }
decision_trees:
  menu:
    start: ask
    decisions:
      ask:
        prompt: { text: "Type bot to talk to our bot." }
        targets:
          - { when: pattern, pattern: "^bot$", go: { chatbot: helper } }
chatbots:
  helper:
    title: Helper bot
    adapter: echo-bot
    url: https://bot.example/hook
    fallback: { queue: humans }
queues:
  humans: { name: Humans }
"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(
        Arc::new(compile(flow, &registry)),
        runtime,
        registry,
        Storage::open(dir.path()).unwrap(),
        Arc::new(FixedClock::at(MONDAY_10_ISTANBUL)),
        EngineSettings::default(),
    );
    let message = |text: &str| InboundMessage {
        id: uuid(),
        text: Some(text.into()),
        ..Default::default()
    };
    let open = engine
        .handle_message("ig", ada(), message("hi bot"))
        .await
        .unwrap();
    assert_eq!(texts(&open), ["hi bot"], "the first message is the bot's");

    let asked = engine
        .handle_message("ig2", ada(), message("hello"))
        .await
        .unwrap();
    assert_eq!(texts(&asked), ["Type bot to talk to our bot."]);
    let chose = engine
        .handle_message("ig2", ada(), message("bot"))
        .await
        .unwrap();
    assert!(matches!(chose.position, Position::Chatbot { .. }));
    assert!(texts(&chose).is_empty(), "the decision took `bot`");
    let talks = engine
        .handle_message("ig2", ada(), message("now you"))
        .await
        .unwrap();
    assert_eq!(texts(&talks), ["now you"]);
}

/// Issue 13, item 3: a Python action, as `flowhost plugin new --lang
/// python` writes it and its `./build` makes it (the pinned componentize-py
/// that `sdk/python/setup` installs), answers in a decision tree of a real
/// server, over the webhook path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_action_answers_over_the_webhook_path() {
    let plugins = tempfile::tempdir().unwrap();
    flowhost_tests::partner::scaffolded_component(plugins.path(), "python", "action", "py-greet")
        .await;
    a_foreign_action_answers(plugins.path(), "py-greet").await;
}

/// Issue 13, item 3: a JavaScript action (`--lang js`, built by the
/// project's `npm run build` with the pinned componentize-js and rolldown
/// that `sdk/js/setup` installs) answers the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_action_answers_over_the_webhook_path() {
    let plugins = tempfile::tempdir().unwrap();
    flowhost_tests::partner::scaffolded_component(plugins.path(), "js", "action", "js-greet").await;
    a_foreign_action_answers(plugins.path(), "js-greet").await;
}

/// A server with `plugins` (holding the scaffolded greeter, declared as
/// `name`) in a decision tree: two customers write, each gets the greeting
/// the flow's template chose for their words, and the saved data is kept.
async fn a_foreign_action_answers(plugins: &std::path::Path, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (graph, graph_url) = flowhost_tests::graph::Graph::start().await;
    let flow = format!(
        r#"
default_language: en
accounts:
  shop: {{ channel: instagram, ig_user_id: "17841400000000444", access_token: t, api_base_url: {graph_url}, app_secret: greet-secret }}
connectors:
  dm: {{ title: DMs, account: shop, next: {{ decision_tree: hello }} }}
decision_trees:
  hello:
    start: welcome
    decisions:
      welcome:
        actions:
          - action: {name}
            config: {{ greeting: "{{{{ 'Merhaba' if message.text == 'merhaba' else 'Hello' }}}}" }}
        targets:
          - {{ when: default, go: {{ decision: welcome }} }}
"#
    );
    let mut config = flowhost_tests::server_config(dir.path(), &flow);
    config.plugins_dir = Some(plugins.to_path_buf());
    let server = flowhost::app::start(config)
        .await
        .expect("the server starts");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (customer, text) in [("pia", "hi"), ("pelin", "merhaba")] {
        let message = json!({"mid": format!("mid-{customer}"), "text": text});
        let status = flowhost_tests::instagram::deliver_message(
            &http,
            &base,
            "greet-secret",
            "17841400000000444",
            customer,
            message,
            now,
        )
        .await;
        assert_eq!(status, 200);
    }
    graph.wait_for_text("pia", "Hello, there!").await;
    graph.wait_for_text("pelin", "Merhaba, there!").await;
    let key = flowhost::model::conversation_key("shop", "pia");
    let state = server.storage.conversation(&key).await.unwrap().unwrap();
    let data = server.storage.load_data(&state.id()).await.unwrap();
    assert_eq!(data["greeted"], true);
    server.stop().await.unwrap();
}
