//! The pieces every message goes through, one at a time: the webhook's
//! signature check and parse, matching an answer (a regex and similar
//! words), rendering a template, committing a turn, and accepting an inbox
//! event under group commit with 1, 8 and 64 concurrent writers, and one
//! pass of the queue router over 100 and 1,000 waiting conversations.
//! Run with `cargo bench -p flowhost --bench hot_paths`.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flowhost::analytics::Fact;
use flowhost::channels::instagram::{events, signature};
use flowhost::engine::matcher::WordList;
use flowhost::model::{ConversationState, OutboxMessage};
use flowhost::plugin::{Contact, InboundMessage, OutgoingMessage};
use flowhost::storage::{Storage, TurnCommit};
use serde_json::json;

fn webhook() -> Vec<u8> {
    json!({"object": "instagram", "entry": [{"id": "17841400000000001", "time": 1_800_000_000_000u64,
        "messaging": [{"sender": {"id": "1234567890123456"}, "recipient": {"id": "17841400000000001"},
            "timestamp": 1_800_000_000_000u64,
            "message": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAx", "text": "Where is my order 123456?"}}]}]})
    .to_string()
    .into_bytes()
}

fn intake(c: &mut Criterion) {
    let body = webhook();
    let header = signature::sign(b"app-secret", &body);
    c.bench_function("webhook: signature check + parse", |b| {
        b.iter(|| {
            signature::verify(b"app-secret", &body, Some(&header)).unwrap();
            events::parse(&body).unwrap()
        })
    });
}

fn matching(c: &mut Criterion) {
    let pattern = regex::Regex::new(r"^\s*\d{6}\s*$").unwrap();
    let words = WordList::parse(
        "agent, human, representative, real person, müşteri hizmetleri",
        "en",
    );
    c.bench_function("match: regex target", |b| {
        b.iter(|| pattern.is_match(" 123456 "))
    });
    c.bench_function("match: similar words (one typo)", |b| {
        b.iter(|| words.matches("I want to talk to a reprsentative please"))
    });
    let turkish = WordList::parse("temsilci, insan, yetkili, müşteri hizmetleri", "tr");
    c.bench_function("match: similar words (Turkish inflected form)", |b| {
        b.iter(|| turkish.matches("temsilciyle görüşmek istiyorum"))
    });
}

/// Message templates: a direct one (lookups, `or`), which renders in the
/// host, and one with a loop, which renders in the template sandbox (a
/// fresh instance of the minijinja component per render).
fn templates(c: &mut Criterion) {
    let context = json!({"contact": {"name": "Ada"}, "data": {"order": "123456"},
        "order": {"body": {"status": "shipped", "items": [{"name": "Mug", "quantity": 2}]}}});
    let runtime = flowhost::plugin::PluginRuntime::new(&Default::default()).unwrap();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let mut render = |name: &str, source: &'static str| {
        c.bench_function(name, |b| {
            b.iter(|| {
                tokio
                    .block_on(flowhost::templates::render(
                        runtime.templates(),
                        source,
                        &context,
                        flowhost::templates::MAX_RENDERED_BYTES,
                    ))
                    .unwrap()
            })
        });
    };
    render(
        "template: send-message text (direct, in the host)",
        "Hi {{ contact.name or 'there' }}! Order {{ data.order }} is {{ order.body.status }}.",
    );
    render(
        "template: a loop over the order's items (in the sandbox)",
        "{% for item in order.body.items %}{{ item.quantity }} x {{ item.name }}{% endfor %}",
    );
}

fn state(customer: &str) -> ConversationState {
    let contact = Contact {
        id: customer.into(),
        name: Some("Ada".into()),
        username: None,
    };
    let mut state = ConversationState::new("shop-ig", contact, 1, "en", 1);
    for i in 0..20 {
        state.note(i, "in", format!("message {i}"));
    }
    state.last_message = Some(InboundMessage {
        id: "mid".into(),
        text: Some("Where is my order?".into()),
        ..Default::default()
    });
    state
}

/// A turn that writes the state, one reply and removes its inbox entry.
fn reply_turn(state: &ConversationState, facts: Vec<Fact>) -> TurnCommit {
    let reply = OutboxMessage {
        id: uuid::Uuid::now_v7().to_string(),
        conversation: state.key(),
        conversation_id: state.id(),
        account: "shop-ig".into(),
        recipient: "IGSID-1".into(),
        message: OutgoingMessage {
            text: Some("Order 123456 is shipped.".into()),
            ..Default::default()
        },
        created_ms: 1,
        sender: "bot".into(),
        sent_parts: 0,
        window_from_ms: None,
    };
    TurnCommit {
        state: Some(state.clone()),
        conversation_id: state.id(),
        outbox: vec![reply],
        inbox_remove: vec![1],
        facts,
        ..TurnCommit::default()
    }
}

fn storage(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();

    let state = state("IGSID-1");
    c.bench_function("storage: turn commit (state, 1 reply, inbox entry)", |b| {
        b.to_async(&runtime).iter(|| async {
            storage
                .commit_turn(reply_turn(&state, Vec::new()), 1)
                .await
                .unwrap()
        })
    });
    // A decision turn also records the decision it left and the one it entered.
    let facts = vec![
        Fact::DecisionLeft {
            tree: "menu".into(),
            decision: "ask".into(),
            target: "orders".into(),
        },
        Fact::DecisionEntered {
            tree: "menu".into(),
            decision: "orders".into(),
        },
    ];
    c.bench_function(
        "storage: the same turn commit with 2 analytics facts",
        |b| {
            b.to_async(&runtime).iter(|| async {
                let turn = reply_turn(&state, facts.clone());
                storage.commit_turn(turn, 1).await.unwrap()
            })
        },
    );

    let mut group = c.benchmark_group("storage: inbox write with group commit");
    for writers in [1usize, 8, 64] {
        group.throughput(Throughput::Elements(writers as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(writers),
            &writers,
            |b, &writers| {
                b.to_async(&runtime).iter_custom(|rounds| {
                    let storage = storage.clone();
                    async move { concurrent_accepts(&storage, writers, rounds).await }
                })
            },
        );
    }
    group.finish();
}

/// `writers` tasks each accepting one event, `rounds` times; the time of
/// all of it (criterion divides by rounds; throughput counts the writers).
async fn concurrent_accepts(storage: &Storage, writers: usize, rounds: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..rounds {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..writers {
            let storage = storage.clone();
            tasks.spawn(async move {
                let key = format!("instagram:bench:message:{}", uuid::Uuid::now_v7());
                let record = br#"{"account":"shop-ig","contact":{"id":"IGSID"},"message":{"id":"m","text":"hi"}}"#;
                let event = flowhost::storage::InboundEvent {
                    dedupe_key: key,
                    conversation: "shop-ig\0IGSID".into(),
                    record: record.to_vec(),
                };
                storage
                    .accept_inbound(vec![event], 1)
                    .await
                    .unwrap()
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    started.elapsed()
}

/// sled itself, on this thread: what a multi-tree transaction costs next
/// to an atomic batch on one tree (the storage thread runs one of these
/// per write).
fn sled_alone(c: &mut Criterion) {
    use sled::Transactional;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .unwrap();
    let (a, b, t) = (
        db.open_tree("a").unwrap(),
        db.open_tree("b").unwrap(),
        db.open_tree("c").unwrap(),
    );
    let value = vec![7u8; 300];
    let mut n = 0u64;
    c.bench_function(
        "sled: transaction over 3 trees (get + 3 inserts)",
        |bench| {
            bench.iter(|| {
                n += 1;
                let key = n.to_be_bytes();
                (&a, &b, &t)
                    .transaction(|(a, b, t)| {
                        a.get(key)?;
                        a.insert(&key[..], &value[..])?;
                        b.insert(&key[..], &value[..])?;
                        t.insert(&key[..], &value[..])?;
                        Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                    })
                    .unwrap()
            })
        },
    );
    c.bench_function(
        "sled: batch of 3 inserts on one tree (get first)",
        |bench| {
            bench.iter(|| {
                n += 1;
                let key = n.to_be_bytes();
                a.get(key).unwrap();
                let mut batch = sled::Batch::default();
                for prefix in [1u8, 2, 3] {
                    let mut k = vec![prefix];
                    k.extend_from_slice(&key);
                    batch.insert(k, &value[..]);
                }
                a.apply_batch(batch).unwrap()
            })
        },
    );
    c.bench_function("sled: one insert", |bench| {
        bench.iter(|| {
            n += 1;
            b.insert(n.to_be_bytes(), &value[..]).unwrap()
        })
    });
}

/// One router pass when nobody can take a conversation: it reads the
/// waiting index and offers nothing (the cost a full queue adds per
/// `period_to_check`).
fn router(c: &mut Criterion) {
    use std::sync::Arc;

    use flowhost::engine::clock::FixedClock;
    use flowhost::engine::{Engine, EngineSettings};
    use flowhost::flow::PluginCatalog;
    use flowhost::registry::PluginRegistry;
    use flowhost::routing::queues::Router;

    let tokio = tokio::runtime::Runtime::new().unwrap();
    let runtime = Arc::new(flowhost::plugin::PluginRuntime::new(&Default::default()).unwrap());
    let registry = Arc::new(PluginRegistry::default());
    let yaml = r#"
accounts:
  ig: { channel: instagram, ig_user_id: "1", access_token: t, app_secret: s, verify_token: v }
connectors:
  dm: { title: DMs, account: ig, next: { queue: q } }
queues:
  q: { name: Q, period_to_check: 1 }
"#;
    let flow = flowhost::flow::parse(yaml).unwrap();
    let catalog = PluginCatalog::from_registry(&registry);
    let compiled = Arc::new(flowhost::flow::compile(flow, &catalog).unwrap().0);
    let mut group = c.benchmark_group("router: one pass, nobody free");
    for waiting in [100u64, 1_000] {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let clock = Arc::new(FixedClock::at(1_800_000_000_000));
        let engine = Arc::new(Engine::new(
            compiled.clone(),
            runtime.clone(),
            registry.clone(),
            storage,
            clock.clone(),
            EngineSettings::default(),
        ));
        tokio.block_on(async {
            for i in 0..waiting {
                let contact = Contact {
                    id: format!("c{i}"),
                    ..Default::default()
                };
                let message = InboundMessage {
                    id: format!("m{i}"),
                    text: Some("help".into()),
                    ..Default::default()
                };
                engine.handle_message("ig", contact, message).await.unwrap();
            }
        });
        let router = Router::new(engine);
        group.throughput(Throughput::Elements(waiting));
        group.bench_function(BenchmarkId::from_parameter(waiting), |b| {
            b.iter(|| {
                clock.advance(1_000);
                tokio.block_on(router.pass(false)).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches, intake, matching, templates, storage, sled_alone, router
);
criterion_main!(benches);
