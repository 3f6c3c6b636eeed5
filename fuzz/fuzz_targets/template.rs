//! A template and an expression: parsed by the host's checks, then
//! rendered and evaluated in the template sandbox, whose bounds (memory,
//! time, output) must hold for any input. A template the host renders
//! itself (a direct one) must render there exactly as in the sandbox.
#![no_main]

use std::sync::LazyLock;

use flowhost::plugin::{PluginRuntime, RuntimeConfig};
use flowhost::templates;
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<(PluginRuntime, tokio::runtime::Runtime)> = LazyLock::new(|| {
    // Compiled once and kept, so a run starts in a second.
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sandbox-cache");
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 1,
        cache_dir: Some(cache),
        ..RuntimeConfig::default()
    })
    .expect("the runtime starts");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio starts");
    (runtime, tokio)
});

fuzz_target!(init: {
    // Compile the sandbox before the first input's clock starts.
    LazyLock::force(&RUNTIME);
    // The host's parse checks catch a panic inside minijinja (one this
    // target found) and report an invalid template; libfuzzer-sys's hook
    // would abort before that. A panic nobody catches still reaches
    // libfuzzer-sys's own `catch_unwind` and is reported as a crash.
    std::panic::set_hook(Box::new(|info| eprintln!("caught? {info}")));
}, |source: &str| {
    let _ = templates::check(source);
    let _ = templates::check_expression(source);
    let (runtime, tokio) = &*RUNTIME;
    let context = serde_json::json!({"contact": {"name": "Ada"}, "data": {"n": 3, "list": [1, 2]}});
    tokio.block_on(async {
        if let Ok(text) =
            templates::render(runtime.templates(), source, &context, 4096).await
        {
            assert!(text.len() <= 4096);
        }
        if let Some(in_host) = templates::direct::render(source, &context, 4096) {
            let in_sandbox = runtime.templates().render(source, &context, 4096).await;
            // The sandbox's own bounds (memory, time, its wasm stack) are
            // the sandbox's; every other outcome must be the same.
            let stopped_by_sandbox = in_sandbox.as_ref().is_err_and(|e| {
                ["the template sandbox failed", "the template needed more than", "the template ran longer"]
                    .iter()
                    .any(|bound| e.0.starts_with(bound))
            });
            if !stopped_by_sandbox {
                assert_eq!(in_host, in_sandbox, "a direct template rendered otherwise in the host");
            }
        }
        let _ = templates::evaluate(runtime.templates(), source, &context).await;
    });
});
