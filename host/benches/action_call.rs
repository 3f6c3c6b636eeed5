//! The sandbox's cost: one built-in action call (fresh store and instance
//! from `InstancePre`, run, drop) against the same work as a plain Rust
//! function; and one chatbot adapter call (`webhook-bot` posting to a bot
//! on loopback, and reading a bot's callback). Run with
//! `cargo bench -p flowhost --bench action_call`.

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;

use flowhost::plugin::{
    ActionContext, ActionOutput, ChatbotInbound, ChatbotSession, Contact, Conversation,
    CustomFieldValue, Effects, HttpPolicy, InboundMessage, PluginRuntime, PluginSettings,
    RuntimeConfig,
};
use serde::Deserialize;
use serde_json::{Value, json};

fn context() -> ActionContext {
    ActionContext {
        conversation: Conversation {
            id: "bench".into(),
            channel: "instagram".into(),
            account_id: "1784".into(),
            started_at_ms: 1,
        },
        contact: Contact {
            id: "IGSID".into(),
            name: Some("Ada".into()),
            username: None,
        },
        last_message: Some(InboundMessage {
            id: "mid.1".into(),
            text: Some("123456".into()),
            ..Default::default()
        }),
        data: BTreeMap::from([("order".to_string(), json!("123456"))]),
        language: "en".into(),
        results: BTreeMap::new(),
    }
}

/// What the `save-data` component does, as a plain function: parse the
/// configuration from its JSON text, validate, record the change.
fn save_data_natively(_context: &ActionContext, config: &Value) -> Result<ActionOutput, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        key: String,
        value: Value,
    }
    let config: Config = serde_json::from_str(&config.to_string()).map_err(|e| e.to_string())?;
    if config.key.trim().is_empty() {
        return Err("key must not be empty".into());
    }
    let mut effects = Effects::default();
    effects.data_changes.insert(config.key, Some(config.value));
    Ok(ActionOutput {
        effects,
        ..ActionOutput::default()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 16,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let bytes = |name: &str| {
        flowhost::builtin::components()
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    let save_data = rt
        .block_on(runtime.load("save-data", bytes("save-data"), &PluginSettings::default()))
        .unwrap();
    let send_message = rt
        .block_on(runtime.load(
            "send-message",
            bytes("send-message"),
            &PluginSettings::default(),
        ))
        .unwrap();
    let ctx = context();
    let save_config = json!({"key": "order", "value": {"id": "123456", "status": "shipped"}});
    let send_config = json!({"text": "Your order is on its way", "quick_replies": [{"title": "Thanks"}], "variants": {"tr": {"text": "Siparişiniz yolda"}}});

    let mut group = c.benchmark_group("action_call");
    group.bench_function("save-data/component", |b| {
        b.to_async(&rt).iter(|| async {
            runtime
                .run_action(&save_data, ctx.clone(), &save_config)
                .await
                .unwrap()
        })
    });
    group.bench_function("save-data/native", |b| {
        b.iter(|| save_data_natively(&ctx, &save_config).unwrap())
    });
    group.bench_function("send-message/component", |b| {
        b.to_async(&rt).iter(|| async {
            runtime
                .run_action(&send_message, ctx.clone(), &send_config)
                .await
                .unwrap()
        })
    });
    group.finish();
}

/// `webhook-bot`: one message to a bot on loopback that answers at once
/// (adapter, host HTTP and the bot's answer read), and one callback body
/// read (what every later answer costs before it is stored).
fn chatbot(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 16,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let component = flowhost::builtin::components()
        .iter()
        .find(|(n, _)| *n == "webhook-bot")
        .unwrap()
        .1;
    let loopback = PluginSettings {
        http: HttpPolicy {
            allowed_hosts: vec!["127.0.0.1".into()],
            allow_private_networks: true,
        },
        ..PluginSettings::default()
    };
    let adapter = rt
        .block_on(runtime.load("webhook-bot", component, &loopback))
        .unwrap();
    let bot = rt.block_on(async {
        let router = axum::Router::new().route(
            "/bot",
            axum::routing::post(|| async {
                axum::Json(
                    json!({"text": "Hi from the bot", "quickreply": [{"name": "a", "text": "A"}]}),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    });
    let config = json!({"url": format!("http://{bot}/bot"), "send_attachments": false});
    let session = ChatbotSession {
        response_url: "https://flowhost.example/chatbots/helper/callback?conversation=ig%3A1%3A1&hash=0123456789abcdef0123456789abcdef".into(),
        hash: "0123456789abcdef0123456789abcdef".into(),
        custom_fields: vec![CustomFieldValue {
            name: "customer".into(),
            title: "Customer".into(),
            value: Some("IGSID".into()),
        }],
    };
    let inbound = ChatbotInbound {
        id: "mid.1".into(),
        text: Some("hello".into()),
        ..ChatbotInbound::default()
    };
    let callback = serde_json::to_vec(&json!({"text": "Here is your answer", "button": [{"text": "Shop", "url": "https://example.com"}], "queue": "sales"})).unwrap();

    let mut group = c.benchmark_group("chatbot_call");
    group.bench_function("webhook-bot/deliver (bot on loopback)", |b| {
        b.to_async(&rt).iter(|| async {
            runtime
                .run_chatbot(
                    &adapter,
                    context(),
                    &config,
                    &session,
                    &inbound,
                    Duration::from_secs(10),
                )
                .await
                .unwrap()
        })
    });
    group.bench_function("webhook-bot/parse-callback", |b| {
        b.to_async(&rt).iter(|| async {
            runtime
                .parse_chatbot_callback(&adapter, &config, &callback)
                .await
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench, chatbot);
criterion_main!(benches);
