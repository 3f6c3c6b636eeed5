//! Hostile guests are stopped with clear errors, and the host stays healthy.

use std::time::{Duration, Instant};

use flowhost::plugin::{
    CallError, HttpPolicy, Limits, LoadError, Plugin, PluginKind, PluginRuntime, PluginSettings,
};
use flowhost_tests::{context, guest, resident_bytes, runtime};
use serde_json::{Value, json};

async fn hostile(runtime: &PluginRuntime, limits: Limits) -> Plugin {
    let settings = PluginSettings {
        limits,
        http: HttpPolicy {
            allowed_hosts: vec!["allowed.example".into()],
            allow_private_networks: false,
        },
    };
    runtime
        .load("hostile", guest("hostile"), &settings)
        .await
        .expect("the hostile guest loads")
}

async fn attack(
    runtime: &PluginRuntime,
    plugin: &Plugin,
    config: Value,
) -> Result<flowhost::plugin::ActionOutput, CallError> {
    runtime
        .run_action(plugin, context("c-hostile", "hi", "en"), &config)
        .await
}

#[tokio::test]
async fn an_infinite_loop_is_interrupted_at_its_budget() {
    let runtime = runtime();
    let plugin = hostile(
        &runtime,
        Limits {
            guest_time_ms: 100,
            ..Limits::default()
        },
    )
    .await;
    let started = Instant::now();
    let err = attack(&runtime, &plugin, json!({"attack": "spin"}))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err,
        CallError::Timeout {
            budget: Duration::from_millis(100)
        }
    );
    assert_eq!(err.code(), "timeout");
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "stopped after {took:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_guest_yields_so_other_conversations_go_on() {
    // One thread only: if the spinning guest did not yield, the second call
    // could not start until the first was interrupted.
    let runtime = std::sync::Arc::new(runtime());
    let plugin = std::sync::Arc::new(
        hostile(
            &runtime,
            Limits {
                guest_time_ms: 1_000,
                ..Limits::default()
            },
        )
        .await,
    );
    let started = Instant::now();
    let spinning = {
        let (runtime, plugin) = (runtime.clone(), plugin.clone());
        tokio::spawn(async move { attack(&runtime, &plugin, json!({"attack": "spin"})).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ok = attack(&runtime, &plugin, json!({"attack": "ok"}))
        .await
        .expect("a normal call succeeds");
    let finished_ok = started.elapsed();
    assert_eq!(ok.store, Some(("answer".into(), json!(42))));
    assert!(
        finished_ok < Duration::from_millis(900),
        "normal call waited {finished_ok:?} behind the spinning one"
    );
    assert_eq!(spinning.await.unwrap().unwrap_err().code(), "timeout");
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let runtime = runtime();
    let plugin = hostile(
        &runtime,
        Limits {
            memory_bytes: 16 << 20,
            ..Limits::default()
        },
    )
    .await;
    let err = attack(&runtime, &plugin, json!({"attack": "memory-bomb"}))
        .await
        .unwrap_err();
    assert_eq!(err, CallError::OutOfMemory { limit: 16 << 20 });
    assert!(err.to_string().contains("out of memory"), "{err}");
}

#[tokio::test]
async fn unbounded_recursion_overflows_the_stack_cleanly() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let err = attack(&runtime, &plugin, json!({"attack": "recursion"}))
        .await
        .unwrap_err();
    assert_eq!(err, CallError::StackOverflow);

    // Large frames exhaust the guest's own stack in linear memory first,
    // which traps as an out-of-bounds access; the message says so.
    let err = attack(&runtime, &plugin, json!({"attack": "deep-frames"}))
        .await
        .unwrap_err();
    let CallError::Trap { message } = &err else {
        panic!("expected a trap, got {err:?}")
    };
    assert!(
        message.contains("out of bounds memory access") && message.contains("stack"),
        "{message}"
    );
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let err = attack(&runtime, &plugin, json!({"attack": "panic"}))
        .await
        .unwrap_err();
    let CallError::Panic { message } = &err else {
        panic!("expected a panic, got {err:?}")
    };
    assert!(message.contains("the hostile plugin gives up"), "{message}");
    assert_eq!(err.code(), "panic");
}

#[tokio::test]
async fn http_to_a_host_off_the_allow_list_is_denied() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let err = attack(
        &runtime,
        &plugin,
        json!({"attack": "http", "url": "http://evil.example/steal"}),
    )
    .await
    .unwrap_err();
    let CallError::Http { reason } = &err else {
        panic!("expected an HTTP error, got {err:?}")
    };
    assert!(
        reason.contains("evil.example") && reason.contains("not in the allowed hosts"),
        "{reason}"
    );

    // A loopback address is refused even when written as a literal.
    let err = attack(
        &runtime,
        &plugin,
        json!({"attack": "http", "url": "http://127.0.0.1:9/"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "http", "{err}");
}

#[tokio::test]
async fn files_environment_and_sockets_are_out_of_reach() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let out = attack(&runtime, &plugin, json!({"attack": "file"}))
        .await
        .expect("the guest reports what it saw");
    let (_, seen) = out.store.unwrap();
    for op in ["read", "write", "list"] {
        let text = seen[op].as_str().unwrap();
        assert!(text.starts_with("Err("), "{op} succeeded: {text}");
    }
    assert!(!std::path::Path::new("/tmp/flowhost-escape").exists());

    let out = attack(&runtime, &plugin, json!({"attack": "env"}))
        .await
        .expect("the guest reports what it saw");
    let (_, seen) = out.store.unwrap();
    assert_eq!(
        seen["vars"],
        json!([]),
        "the guest saw environment variables"
    );
    assert_eq!(seen["args"], json!([]), "the guest saw arguments");
    assert!(
        seen["socket"].as_str().unwrap().starts_with("Err("),
        "the guest opened a socket: {seen}"
    );
}

#[tokio::test]
async fn huge_outputs_are_refused() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let err = attack(&runtime, &plugin, json!({"attack": "huge-output"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::OutputTooLarge { limit, .. } if limit == Limits::default().max_output_bytes),
        "{err:?}"
    );

    // Flooding stdout fills a bounded pipe; the write fails inside the guest.
    let err = attack(&runtime, &plugin, json!({"attack": "stdout-flood"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "panic", "{err}");
}

#[tokio::test]
async fn undeclared_capabilities_are_refused() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let err = attack(&runtime, &plugin, json!({"attack": "undeclared"}))
        .await
        .unwrap_err();
    let CallError::Capability { reason } = &err else {
        panic!("expected a capability error, got {err:?}")
    };
    assert!(
        reason.contains("did not declare the `conversation-data` capability"),
        "{reason}"
    );
    assert!(err.to_string().contains("conversation-data"));

    let err = attack(&runtime, &plugin, json!({"attack": "undeclared-read"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "capability", "{err}");
}

#[tokio::test]
async fn oversized_input_is_refused_before_the_guest_runs() {
    let runtime = runtime();
    let plugin = hostile(
        &runtime,
        Limits {
            max_input_bytes: 1024,
            ..Limits::default()
        },
    )
    .await;
    let err = attack(
        &runtime,
        &plugin,
        json!({"attack": "ok", "url": "x".repeat(2048)}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "input_too_large", "{err}");
}

#[tokio::test]
async fn a_component_for_an_unknown_contract_version_is_rejected_by_name() {
    let runtime = runtime();
    let err = runtime
        .load(
            "future",
            guest("future-contract"),
            &PluginSettings::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LoadError::UnsupportedContract { ref found, .. } if found == "9.0.0"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("flowhost:plugin@9.0.0")
            && text.contains("supports flowhost:plugin@0.2.0, flowhost:plugin@0.1.0"),
        "{text}"
    );
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_rejected() {
    let runtime = runtime();
    let err = runtime
        .load("junk", b"\0asm not really", &PluginSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::InvalidComponent { .. }), "{err:?}");
}

#[tokio::test]
async fn a_chatbot_adapter_loads_as_a_chatbot_and_is_not_an_action() {
    let runtime = runtime();
    let bot = runtime
        .load("echo-bot", guest("echo-bot"), &PluginSettings::default())
        .await
        .unwrap();
    assert_eq!(bot.info().kind, PluginKind::Chatbot);
    assert_eq!(bot.info().contract, "0.1.0");
    let err = runtime
        .run_action(&bot, context("c", "hi", "en"), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "wrong_kind");
}

/// The issue's acceptance test: 1,000 hostile calls in a row, then a normal
/// call still works and memory has not grown without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_thousand_hostile_calls_the_host_is_still_healthy() {
    let runtime = runtime();
    // Small budgets keep the thousand calls quick; the behaviour is the same.
    // 100 ms, not less: a budget counts wall time while the guest runs, and
    // building the huge output must fit in it on a busy 2-core machine.
    // 16 MiB of memory: the bomb reaches the cap after touching 16 fresh
    // pages of a megabyte each, well within the budget even when the
    // machine is busy (32 MiB once took longer than 100 ms).
    let plugin = hostile(
        &runtime,
        Limits {
            guest_time_ms: 100,
            memory_bytes: 16 << 20,
            ..Limits::default()
        },
    )
    .await;
    let attacks = [
        ("spin", "timeout"),
        ("memory-bomb", "out_of_memory"),
        ("recursion", "stack_overflow"),
        ("panic", "panic"),
        ("http", "http"),
        ("huge-output", "output_too_large"),
        ("undeclared", "capability"),
    ];

    // Warm up so the pool and caches are at their working size before the
    // memory baseline is taken.
    for (name, _) in attacks {
        let _ = attack(&runtime, &plugin, json!({"attack": name})).await;
    }
    let baseline = resident_bytes();

    let mut counts = std::collections::BTreeMap::<&str, u32>::new();
    for round in 0..1_000 {
        let (name, expected) = attacks[round % attacks.len()];
        let err = attack(&runtime, &plugin, json!({"attack": name}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), expected, "call {round} ({name}): {err}");
        *counts.entry(expected).or_default() += 1;
    }
    let grown = resident_bytes().saturating_sub(baseline);
    eprintln!(
        "resident memory growth over 1,000 hostile calls: {} KiB",
        grown >> 10
    );

    let ok = attack(&runtime, &plugin, json!({"attack": "ok"}))
        .await
        .expect("a normal call still works");
    assert_eq!(ok.store, Some(("answer".into(), json!(42))));
    assert_eq!(counts.values().sum::<u32>(), 1_000);
    assert!(
        grown < 48 << 20,
        "resident memory grew by {} MiB over 1,000 hostile calls",
        grown >> 20
    );
}

/// Issue 8, item 2: templates that would build gigabytes (a repeated string
/// grown by `replace`, a string doubled in a loop, endless output) fail in
/// the template sandbox, four at once, and the host's memory hardly moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_bombs_fail_in_the_sandbox_not_in_the_host() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let bombs = [
        r#"{{ ("x" * 100000000) | replace("x", "xxxxxxxxxx") }}"#,
        r#"{% set ns = namespace(s="xxxxxxxx") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"#,
        r#"{% for i in range(100000) %}{{ "y" * 1000 }}{% endfor %}"#,
        r#"{{ (["z" * 1000000] * 1000) | join(",") }}"#,
    ];
    let before = resident_bytes();
    for _round in 0..3 {
        let calls = bombs.iter().map(|bomb| {
            attack(
                &runtime,
                &plugin,
                json!({"attack": "template", "template": bomb}),
            )
        });
        for (bomb, result) in bombs.iter().zip(futures::future::join_all(calls).await) {
            let err = result.expect_err(bomb);
            let text = err.to_string();
            assert!(
                text.contains("memory") || text.contains("larger than") || text.contains("fuel"),
                "{bomb}: {text}"
            );
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 200 << 20, "the host grew by {} MiB", grown >> 20);
    // A real template still renders, and the plugin still works.
    let ok = attack(
        &runtime,
        &plugin,
        json!({"attack": "template", "template": "Hi {{ contact.name or 'there' }}!"}),
    )
    .await
    .unwrap();
    assert_eq!(ok.store, Some(("rendered".into(), json!("Hi Ada!".len()))));
}

/// The same bound for a flow's own templates and conditions.
#[tokio::test]
async fn a_flow_template_bomb_fails_with_a_reason() {
    use flowhost::templates;
    let runtime = runtime();
    let context = json!({"contact": {"name": "Ada"}});
    let err = templates::render(
        runtime.templates(),
        r#"{{ ("x" * 100000000) | replace("x", "xxxxxxxxxx") }}"#,
        &context,
        templates::MAX_RENDERED_BYTES,
    )
    .await
    .unwrap_err();
    assert!(err.0.contains("memory"), "{err}");
    let err = templates::evaluate(runtime.templates(), r#"("x" * 100000000) ~ "y""#, &context)
        .await
        .unwrap_err();
    assert!(
        err.0.contains("memory") || err.0.contains("larger"),
        "{err}"
    );
    assert_eq!(
        templates::render(
            runtime.templates(),
            "Hi {{ contact.name }}",
            &context,
            templates::MAX_RENDERED_BYTES
        )
        .await
        .unwrap(),
        "Hi Ada"
    );
    assert_eq!(
        templates::evaluate(runtime.templates(), "contact.name == 'Ada'", &context)
            .await
            .unwrap(),
        json!(true)
    );
}

/// Issue 8, item 6: saved data is capped per call (writes), and per
/// conversation (keys and bytes); a refused call stores nothing, and the
/// conversation keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_data_is_capped_per_call_and_per_conversation() {
    use flowhost::actions::ActionRunner;
    use flowhost::registry::PluginRegistry;
    use flowhost::storage::Storage;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("data-hog.wasm"), guest("data-hog")).unwrap();
    let runtime = Arc::new(runtime());
    let registry = PluginRegistry::load(&runtime, Some(&plugins), &Default::default())
        .await
        .unwrap();
    let runner = ActionRunner {
        runtime,
        registry: Arc::new(registry),
        storage: Storage::open(&dir.path().join("db")).unwrap(),
    };
    let hog = |keys: usize, value_bytes: usize, prefix: &str| json!({"keys": keys, "value_bytes": value_bytes, "prefix": prefix});
    let run = |config: Value| {
        let runner = &runner;
        async move {
            runner
                .run("data-hog", context("c-data", "hi", "en"), &config)
                .await
        }
    };
    let defaults = Limits::default();

    // The attack of the review: a hundred thousand keys in one call.
    let err = run(hog(100_000, 1_000, "a")).await.unwrap_err().to_string();
    assert!(err.contains("saved keys"), "{err}");
    assert!(runner.storage.load_data("c-data").await.unwrap().is_empty());

    // Fitting data is kept.
    run(hog(10, 1_000, "b")).await.unwrap();
    assert_eq!(runner.storage.load_data("c-data").await.unwrap().len(), 10);

    // Too many bytes for the conversation, in few keys: refused, and the
    // ten saved keys are untouched.
    let too_big = defaults.max_data_bytes / 100_000 + 1;
    let err = run(hog(2, 100_000 * too_big, "c"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("saved data would be") || err.contains("exceeds the limit"),
        "{err}"
    );
    // Rewriting one key over and over: capped per call.
    let mut rewrite = hog(defaults.max_data_writes as usize + 1, 1, "b");
    rewrite["same_key"] = json!(true);
    let err = run(rewrite).await.unwrap_err().to_string();
    assert!(err.contains("saved-data writes"), "{err}");
    assert_eq!(runner.storage.load_data("c-data").await.unwrap().len(), 10);

    // And the conversation still takes a small write.
    run(hog(1, 10, "d")).await.unwrap();
    assert_eq!(runner.storage.load_data("c-data").await.unwrap().len(), 11);
}

/// Issue 8, item 5 and issue 13: settings are found by the plugin's
/// declared name, whatever its file is called: `hostile-1.0.wasm` (cargo
/// writes `loyalty_points.wasm` for `loyalty-points`) runs with the limits
/// given for `hostile`, and a file named `request.wasm` gets nothing of the
/// built-in `request`'s HTTP policy. Two plugins declaring one name are
/// refused.
#[tokio::test]
async fn a_plugins_settings_follow_its_declared_name_not_its_file_name() {
    use flowhost::registry::{PluginRegistry, RegistryError};
    let runtime = runtime();
    let mut settings = std::collections::BTreeMap::new();
    settings.insert("request".to_string(), flowhost_tests::loopback_request());
    settings.insert(
        "hostile".into(),
        PluginSettings {
            limits: Limits {
                guest_time_ms: 42,
                ..Limits::default()
            },
            ..PluginSettings::default()
        },
    );
    for file in ["hostile-1.0.wasm", "request.wasm", "hostile.wasm"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), guest("hostile")).unwrap();
        let registry = PluginRegistry::load(&runtime, Some(dir.path()), &settings)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        // Its own settings, never `request`'s (which would keep the
        // default limits).
        let hostile = registry.get("hostile").expect("known by its declared name");
        assert_eq!(hostile.limits().guest_time_ms, 42, "{file}");
        assert_eq!(
            registry.get("request").unwrap().name(),
            "request",
            "{file}: the built-in stays"
        );
    }
    // Two files declaring one name: refused, naming both.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wasm"), guest("hostile")).unwrap();
    std::fs::write(dir.path().join("b.wasm"), guest("hostile")).unwrap();
    let err = PluginRegistry::load(&runtime, Some(dir.path()), &settings)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&err, RegistryError::Duplicate { name, .. } if name == "hostile"),
        "{err}"
    );
}

/// Issue 8, item 12: a guest blocked in a WASI sleep runs no wasm, so no
/// epoch stops it; the call's watchdog does, at its budget, instead of the
/// whole call's 30 s limit holding a pool slot.
#[tokio::test]
async fn a_guest_asleep_in_wasi_is_stopped_at_its_budget() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default()).await;
    let started = Instant::now();
    let err = attack(&runtime, &plugin, json!({"attack": "sleep"}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CallError::Timeout {
            budget: Limits::default().guest_time()
        },
        "stopped after {:?}",
        started.elapsed()
    );
}

/// Issue 8, item 13: what compiling would cost is bounded before it
/// starts: an oversized component (a real one padded with a custom section
/// past the limit), a core module, and a component that exports no plugin
/// contract are refused with their reason, uncompiled.
#[tokio::test]
async fn components_are_checked_before_they_are_compiled() {
    let runtime = runtime();
    let mut padded = guest("hostile").to_vec();
    // A custom section: id 0, size as LEB128, a name, then the padding.
    let payload_len: usize = flowhost::plugin::MAX_COMPONENT_BYTES + (1 << 20);
    let mut section = vec![0u8];
    let mut size = payload_len + 2;
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        section.push(if size == 0 { byte } else { byte | 0x80 });
        if size == 0 {
            break;
        }
    }
    section.extend_from_slice(&[1, b'x']);
    section.resize(section.len() + payload_len, 0);
    padded.extend_from_slice(&section);
    let err = runtime
        .load("padded", &padded, &PluginSettings::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "at most {} are accepted",
            flowhost::plugin::MAX_COMPONENT_BYTES
        )),
        "{err}"
    );

    let core_module = b"\0asm\x01\0\0\0";
    let err = runtime
        .load("core", core_module, &PluginSettings::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a component"), "{err}");

    // The smallest component: header only, no exports.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let err = runtime
        .load("empty", empty_component, &PluginSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err:?}");
}

/// Issue 8, item 21: a configuration schema that does not compile is a
/// load error, not a silently disabled check.
#[tokio::test]
async fn a_schema_that_does_not_compile_is_a_load_error() {
    let runtime = runtime();
    let err = runtime
        .load(
            "bad-schema",
            guest("bad-schema"),
            &PluginSettings::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoadError::BadDescription { .. })
            && err.to_string().contains("does not compile"),
        "{err}"
    );
}
