//! What a plugin costs by the language it is written in: the same greeting
//! action (as `flowhost plugin new --lang rust|python|js` writes it)
//! compiled the first time, loaded from the
//! compiled-code cache, and called once (fresh instance from `InstancePre`,
//! run, drop). The components come from the environment, built beforehand
//! (see BENCHMARKS.md, "Plugins by language"):
//!
//!   FLOWHOST_BENCH_RUST=... FLOWHOST_BENCH_PYTHON=... FLOWHOST_BENCH_JS=... \
//!     cargo bench -p flowhost --bench plugin_languages
//!
//! A language whose variable is unset is left out.

use std::collections::BTreeMap;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use flowhost::plugin::{
    ActionContext, Contact, InboundMessage, PluginRuntime, PluginSettings, RuntimeConfig,
};
use serde_json::json;

fn context() -> ActionContext {
    ActionContext {
        contact: Contact {
            id: "IGSID".into(),
            name: Some("Ada".into()),
            username: None,
        },
        last_message: Some(InboundMessage {
            id: "mid.1".into(),
            text: Some("hi".into()),
            ..Default::default()
        }),
        data: BTreeMap::new(),
        language: "en".into(),
        ..Default::default()
    }
}

fn runtime(cache: Option<&std::path::Path>) -> PluginRuntime {
    PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 4,
        cache_dir: cache.map(std::path::Path::to_path_buf),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (language, variable) in [
        ("rust", "FLOWHOST_BENCH_RUST"),
        ("python", "FLOWHOST_BENCH_PYTHON"),
        ("js", "FLOWHOST_BENCH_JS"),
    ] {
        let Ok(path) = std::env::var(variable) else {
            eprintln!("{language}: {variable} is unset, left out");
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let settings = PluginSettings::default();

        let cold = runtime(Some(cache.path()));
        let started = Instant::now();
        rt.block_on(cold.load(language, &bytes, &settings)).unwrap();
        let compile = started.elapsed();
        let warm = runtime(Some(cache.path()));
        let started = Instant::now();
        let plugin = rt.block_on(warm.load(language, &bytes, &settings)).unwrap();
        let cached = started.elapsed();
        assert!(plugin.loaded_from_cache());
        eprintln!(
            "{language}: {} bytes; first compile {compile:.2?}; load from the cache {cached:.2?}",
            bytes.len()
        );

        let config = json!({"greeting": "Hello"});
        let output = rt
            .block_on(warm.run_action(&plugin, context(), &config))
            .unwrap();
        assert_eq!(
            output.effects.messages[0].text.as_deref(),
            Some("Hello, Ada!")
        );
        c.bench_function(&format!("{language}: one action call"), |b| {
            b.iter(|| {
                rt.block_on(warm.run_action(&plugin, context(), &config))
                    .unwrap()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
