//! The built-in actions, run as components through the real runtime, with
//! real sled on disk and real HTTP on loopback.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Redirect;
use axum::routing::{get, post};
use flowhost::actions::{ActionRunError, ActionRunner};
use flowhost::plugin::{
    Capability, HttpPolicy, PluginKind, PluginRuntime, PluginSettings, RuntimeConfig,
};
use flowhost::registry::PluginRegistry;
use flowhost::storage::Storage;
use flowhost_tests::{builtin, context, runtime, serve};
use serde_json::{Value, json};

/// A runner over the built-ins with `request` allowed to reach loopback.
async fn runner(dir: &std::path::Path) -> ActionRunner {
    let runtime = Arc::new(runtime());
    let mut settings = BTreeMap::new();
    settings.insert(
        "request".to_string(),
        PluginSettings {
            http: HttpPolicy {
                allowed_hosts: vec!["127.0.0.1".into()],
                allow_private_networks: true,
            },
            ..PluginSettings::default()
        },
    );
    let registry = PluginRegistry::load(&runtime, None, &settings)
        .await
        .expect("built-ins load");
    ActionRunner {
        runtime,
        registry: Arc::new(registry),
        storage: Storage::open(dir).expect("sled opens"),
    }
}

/// A stand-in for a shop's order API.
async fn order_api() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let router = axum::Router::new()
        .route(
            "/orders/{id}",
            get(move |Path(id): Path<String>, headers: HeaderMap| {
                let log = log.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    log.lock()
                        .unwrap()
                        .push(format!("GET /orders/{id} auth={auth:?}"));
                    if id == "404404" {
                        return (
                            StatusCode::NOT_FOUND,
                            Json(json!({"error": "no such order"})),
                        );
                    }
                    (StatusCode::OK, Json(json!({"id": id, "status": "shipped"})))
                }
            }),
        )
        .route(
            "/echo",
            post(|Json(body): Json<Value>| async move { Json(json!({"received": body})) }),
        )
        .route("/huge", get(|| async { "x".repeat(3 << 20) }))
        .route("/text", get(|| async { "plain words" }))
        .route(
            "/away",
            get(|| async { Redirect::temporary("http://localhost:9/elsewhere") }),
        );
    (serve(router).await, seen)
}

#[tokio::test]
async fn the_built_ins_describe_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let names = runner.registry.names(PluginKind::Action);
    assert_eq!(
        names,
        ["create-ticket", "request", "save-data", "send-message"]
    );
    let request = runner.registry.get("request").unwrap();
    assert_eq!(
        request.info().capabilities,
        [Capability::Log, Capability::Http]
    );
    assert_eq!(
        request.info().config_schema["required"],
        json!(["url", "name"])
    );
    assert_eq!(
        runner
            .registry
            .get("save-data")
            .unwrap()
            .info()
            .capabilities,
        [Capability::ConversationData]
    );
}

#[tokio::test]
async fn request_keeps_status_and_json_body_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let (addr, seen) = order_api().await;

    // The order number comes from saved data through a template.
    runner
        .run(
            "save-data",
            context("c1", "", "en"),
            &json!({"key": "order", "value": "{{ message.text }}"}),
        )
        .await
        .ok();
    runner
        .run(
            "save-data",
            context("c1", "123456", "en"),
            &json!({"key": "order", "value": "{{ message.text }}"}),
        )
        .await
        .unwrap();
    let out = runner
        .run(
            "request",
            context("c1", "where is it?", "en"),
            &json!({
                "url": format!("http://{addr}/orders/{{{{ data.order }}}}"),
                "headers": {"Authorization": "Bearer shop-token"},
                "name": "order"
            }),
        )
        .await
        .unwrap();
    let (name, kept) = out.store.unwrap();
    assert_eq!(name, "order");
    assert_eq!(kept["status"], 200);
    assert_eq!(kept["ok"], true);
    assert_eq!(kept["body"], json!({"id": "123456", "status": "shipped"}));
    assert_eq!(kept["headers"]["content-type"], "application/json");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [r#"GET /orders/123456 auth=Some("Bearer shop-token")"#]
    );
}

#[tokio::test]
async fn request_posts_json_and_keeps_non_2xx_answers() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let (addr, _) = order_api().await;

    let out = runner
        .run("request", context("c2", "x", "en"), &json!({"method": "POST", "url": format!("http://{addr}/echo"), "body": {"a": [1, 2]}, "name": "echo"}))
        .await
        .unwrap();
    assert_eq!(
        out.store.unwrap().1["body"],
        json!({"received": {"a": [1, 2]}})
    );

    let out = runner
        .run(
            "request",
            context("c2", "x", "en"),
            &json!({"url": format!("http://{addr}/orders/404404"), "name": "order"}),
        )
        .await
        .unwrap();
    let kept = out.store.unwrap().1;
    assert_eq!(
        (kept["status"].clone(), kept["ok"].clone()),
        (json!(404), json!(false))
    );

    let out = runner
        .run(
            "request",
            context("c2", "x", "en"),
            &json!({"url": format!("http://{addr}/text"), "name": "t"}),
        )
        .await
        .unwrap();
    assert_eq!(out.store.unwrap().1["body"], "plain words");
}

#[tokio::test]
async fn request_is_bounded_by_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let (addr, _) = order_api().await;

    let err = runner
        .run(
            "request",
            context("c3", "x", "en"),
            &json!({"url": format!("http://{addr}/huge"), "name": "h"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("response larger than 2097152 bytes"),
        "{err}"
    );

    // A redirect to a host off the allow list is refused, not followed.
    let err = runner
        .run(
            "request",
            context("c3", "x", "en"),
            &json!({"url": format!("http://{addr}/away"), "name": "r"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "http");
    assert!(
        err.to_string()
            .contains("`localhost` is not in the allowed hosts"),
        "{err}"
    );

    let err = runner
        .run(
            "request",
            context("c3", "x", "en"),
            &json!({"url": "http://other.example/", "name": "r"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not in the allowed hosts"),
        "{err}"
    );

    let err = runner
        .run("request", context("c3", "x", "en"), &json!({"url": format!("http://{addr}/text"), "headers": {"Host": "bank.example"}, "name": "r"}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("`Host` is set by the host"),
        "{err}"
    );
}

#[tokio::test]
async fn request_with_default_settings_cannot_reach_private_networks() {
    // The built-in default: any public host, private networks closed.
    let runtime = PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let request = runtime
        .load(
            "request",
            builtin("request"),
            &flowhost::builtin::default_settings("request"),
        )
        .await
        .unwrap();
    let (addr, seen) = order_api().await;
    let err = runtime
        .run_action(
            &request,
            context("c4", "x", "en"),
            &json!({"url": format!("http://{addr}/orders/1"), "name": "o"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "http");
    assert!(err.to_string().contains("loopback or private"), "{err}");
    let err = runtime
        .run_action(
            &request,
            context("c4", "x", "en"),
            &json!({"url": format!("http://localhost:{}/orders/1", addr.port()), "name": "o"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("resolves to 127.0.0.1")
            || err.to_string().contains("resolves to ::1"),
        "{err}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the private server was reached"
    );
}

#[tokio::test]
async fn send_message_picks_the_customers_language() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let config = json!({
        "text": "Hi {{ contact.name }}, how can we help?",
        "quick_replies": [{"title": "Order status"}, {"title": "Talk to an agent", "payload": "AGENT"}],
        "variants": {
            "tr": {"text": "Merhaba {{ contact.name }}, nasıl yardımcı olabiliriz?", "quick_replies": [{"title": "Sipariş durumu", "payload": "ORDER"}]},
            "pt": {"text": "Olá {{ contact.name }}!"}
        }
    });

    let en = runner
        .run("send-message", context("c5", "hello", "en"), &config)
        .await
        .unwrap();
    let [message] = en.effects.messages.as_slice() else {
        panic!("one message expected")
    };
    assert_eq!(message.text.as_deref(), Some("Hi Ada, how can we help?"));
    let replies: Vec<_> = message
        .quick_replies
        .iter()
        .map(|q| (q.title.as_str(), q.payload.as_str()))
        .collect();
    assert_eq!(
        replies,
        [
            ("Order status", "Order status"),
            ("Talk to an agent", "AGENT")
        ]
    );
    assert!(!message.id.is_empty());

    let tr = runner
        .run("send-message", context("c5", "merhaba", "tr"), &config)
        .await
        .unwrap();
    assert_eq!(
        tr.effects.messages[0].text.as_deref(),
        Some("Merhaba Ada, nasıl yardımcı olabiliriz?")
    );
    assert_eq!(tr.effects.messages[0].quick_replies[0].payload, "ORDER");

    // pt-BR falls back to pt; the variant's text replaces the default's, the
    // default's quick replies stay.
    let pt = runner
        .run("send-message", context("c5", "oi", "pt-BR"), &config)
        .await
        .unwrap();
    assert_eq!(pt.effects.messages[0].text.as_deref(), Some("Olá Ada!"));
    assert_eq!(pt.effects.messages[0].quick_replies.len(), 2);

    let err = runner
        .run(
            "send-message",
            context("c5", "x", "en"),
            &json!({"buttons": []}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
}

#[tokio::test]
async fn saved_data_and_tickets_persist_in_sled() {
    let dir = tempfile::tempdir().unwrap();
    let ticket_id = {
        let runner = runner(dir.path()).await;
        runner
            .run(
                "save-data",
                context("c6", "123456", "en"),
                &json!({"key": "order", "value": "{{ message.text }}"}),
            )
            .await
            .unwrap();
        runner
            .run(
                "save-data",
                context("c6", "x", "en"),
                &json!({"key": "profile", "value": {"vip": true, "tier": 2}}),
            )
            .await
            .unwrap();
        let out = runner
            .run(
                "create-ticket",
                context("c6", "x", "en"),
                &json!({"title": "Order {{ data.order }} is late", "category": "shipping", "comment": "Customer {{ contact.username }} asked twice."}),
            )
            .await
            .unwrap();
        let (name, kept) = out.store.unwrap();
        assert_eq!(name, "ticket");
        runner.storage.flush().await.unwrap();
        kept["id"].as_str().unwrap().to_string()
    };

    // A new process would open the same directory: everything is there.
    let storage = Storage::open(dir.path()).unwrap();
    let data = storage.load_data("c6").await.unwrap();
    assert_eq!(data["order"], "123456");
    assert_eq!(data["profile"], json!({"vip": true, "tier": 2}));
    assert!(
        storage
            .load_data("another-conversation")
            .await
            .unwrap()
            .is_empty()
    );
    let ticket = storage
        .ticket(&ticket_id)
        .await
        .unwrap()
        .expect("the ticket is stored");
    assert_eq!(ticket.title, "Order 123456 is late");
    assert_eq!(ticket.category, "shipping");
    assert_eq!(ticket.comment, "Customer ada.l asked twice.");
    assert_eq!(ticket.conversation_id, "c6");
    assert_eq!(storage.tickets_of("c6").await.unwrap(), [ticket]);
}

#[tokio::test]
async fn a_failed_action_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let err = runner
        .run(
            "save-data",
            context("c7", "x", "en"),
            &json!({"key": "k", "value": "{{ nowhere.to_be_found }}"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ActionRunError::Template(_)), "{err:?}");
    assert!(err.to_string().contains("config.value"), "{err}");

    let err = runner
        .run("save-data", context("c7", "x", "en"), &json!({"value": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    assert!(err.to_string().contains("missing field `key`"), "{err}");

    let err = runner
        .run(
            "create-ticket",
            context("c7", "x", "en"),
            &json!({"title": " ", "category": "c"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");

    assert!(runner.storage.load_data("c7").await.unwrap().is_empty());
    assert!(runner.storage.tickets_of("c7").await.unwrap().is_empty());
    assert!(matches!(
        runner
            .run("no-such-plugin", context("c7", "x", "en"), &json!({}))
            .await,
        Err(ActionRunError::UnknownPlugin(_))
    ));
}

#[tokio::test]
async fn compiled_components_are_cached_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        max_concurrent_calls: 2,
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let first = PluginRuntime::new(&config).unwrap();
    let plugin = first
        .load(
            "save-data",
            builtin("save-data"),
            &PluginSettings::default(),
        )
        .await
        .unwrap();
    assert!(!plugin.loaded_from_cache());
    let artifacts: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(artifacts.len(), 2, "the plugin and the template sandbox");
    drop(first);

    let second = PluginRuntime::new(&config).unwrap();
    let plugin = second
        .load(
            "save-data",
            builtin("save-data"),
            &PluginSettings::default(),
        )
        .await
        .unwrap();
    assert!(
        plugin.loaded_from_cache(),
        "the restart recompiled the component"
    );
    let out = second
        .run_action(
            &plugin,
            context("c8", "x", "en"),
            &json!({"key": "a", "value": 1}),
        )
        .await
        .unwrap();
    assert_eq!(out.effects.data_changes.get("a"), Some(&Some(json!(1))));
}

/// A hop to another origin carries nothing of the guest's: no
/// Authorization, none of its other headers (issue 8, item 11), no Referer
/// naming where it came from, and no body: a 307 that would carry the
/// guest's body elsewhere is handed back to the guest instead.
#[tokio::test]
async fn nothing_of_the_guest_follows_a_redirect_to_another_origin() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let landed = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = landed.clone();
    let landing = serve(
        axum::Router::new().route(
            "/land",
            get(|headers: HeaderMap| async move {
                Json(json!({
                    "authorization": headers.get("authorization").is_some(),
                    "api_key": headers.get("x-api-key").is_some(),
                    "referer": headers.get("referer").is_some(),
                }))
            })
            .post(move |body: String| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(body);
                    "posted"
                }
            }),
        ),
    )
    .await;
    let target = format!("http://{landing}/land");
    let hop = serve(
        axum::Router::new()
            .route(
                "/hop",
                get({
                    let target = target.clone();
                    move || async move { Redirect::temporary(&target) }
                }),
            )
            .route(
                "/hop",
                post(move || async move { Redirect::temporary(&target) }),
            ),
    )
    .await;

    let out = runner
        .run(
            "request",
            context("c9", "x", "en"),
            &json!({"url": format!("http://{hop}/hop"), "name": "r",
                "headers": {"Authorization": "Bearer secret", "X-Api-Key": "k"}}),
        )
        .await
        .unwrap();
    let kept = out.store.unwrap().1;
    assert_eq!(kept["status"], 200);
    assert_eq!(
        kept["body"],
        json!({"authorization": false, "api_key": false, "referer": false}),
        "something of the guest's went to another origin"
    );

    let out = runner
        .run(
            "request",
            context("c9", "x", "en"),
            &json!({"url": format!("http://{hop}/hop"), "method": "POST", "body": "card=4111", "name": "r"}),
        )
        .await
        .unwrap();
    assert_eq!(out.store.unwrap().1["status"], 307);
    assert!(
        landed.lock().unwrap().is_empty(),
        "the body was carried across"
    );
}

/// Issue 8, item 3: a compiled artifact is native code, so one the cache
/// did not write itself (here: another plugin's artifact planted under this
/// plugin's name) is never loaded; the component is compiled again. A cache
/// directory other users may write to is not used at all.
#[tokio::test]
async fn a_planted_artifact_is_never_loaded() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("plugin-cache");
    let config = RuntimeConfig {
        max_concurrent_calls: 2,
        cache_dir: Some(dir.clone()),
        ..RuntimeConfig::default()
    };
    let files = || -> std::collections::BTreeSet<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let load = async |runtime: &PluginRuntime, name: &str| {
        runtime
            .load(name, builtin(name), &PluginSettings::default())
            .await
            .unwrap()
    };
    let first = PluginRuntime::new(&config).unwrap();
    let before = files();
    load(&first, "save-data").await;
    let save_data = files().difference(&before).next().unwrap().clone();
    let before = files();
    load(&first, "create-ticket").await;
    let other = files().difference(&before).next().unwrap().clone();
    drop(first);
    std::fs::copy(&other, &save_data).unwrap();

    let second = PluginRuntime::new(&config).unwrap();
    let plugin = load(&second, "save-data").await;
    assert!(
        !plugin.loaded_from_cache(),
        "the planted artifact was loaded"
    );
    assert_eq!(plugin.name(), "save-data");
    drop(second);

    // Rewritten by the cache itself, it is a hit again.
    let third = PluginRuntime::new(&config).unwrap();
    let plugin = load(&third, "save-data").await;
    assert!(plugin.loaded_from_cache());
    drop(third);

    // A directory others may write to is not trusted.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fourth = PluginRuntime::new(&config).unwrap();
    let plugin = load(&fourth, "save-data").await;
    assert!(
        !plugin.loaded_from_cache(),
        "a shared cache directory was used"
    );
}

/// The built-in translator (contract 0.2.0) beside the 0.1.0 built-ins:
/// whole phrases, longest phrases within a message, detection, pairs it
/// does not know, and phrases a queue adds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phrase_translator_translates_offline() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner(dir.path()).await;
    let translator = runner.registry.get("phrase-translator").expect("built in");
    assert_eq!(translator.info().kind, PluginKind::Translator);
    assert_eq!(translator.info().contract, "0.2.0");
    let translate =
        |text: &'static str, source: Option<&'static str>, target: &'static str, config: Value| {
            let (runtime, translator) = (runner.runtime.clone(), translator.clone());
            async move {
                runtime
                    .run_translator(&translator, &config, text, source, target)
                    .await
            }
        };
    let none = json!({});
    let whole = translate("Where is my order?", Some("en"), "tr", none.clone())
        .await
        .unwrap();
    assert_eq!(whole.text, "siparişim nerede?");
    let parts = translate(
        "Merhaba! Kargom gecikti, sipariş 123456",
        None,
        "en",
        none.clone(),
    )
    .await
    .unwrap();
    assert_eq!(parts.source_language.as_deref(), Some("tr"), "detected");
    assert_eq!(parts.text, "hello my parcel is late order 123456");
    let same = translate("hello", Some("en"), "en", none.clone())
        .await
        .unwrap();
    assert_eq!(same.text, "hello");

    let unknown = translate("hello", Some("en"), "de", none.clone())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), "unsupported_languages", "{unknown}");
    let added = json!({"phrases": {"en-de": {"hello": "hallo"}}});
    assert_eq!(
        translate("hello", Some("en"), "de", added)
            .await
            .unwrap()
            .text,
        "hallo"
    );
    let bad = translate("hello", Some("en"), "de", json!({"phrases": 3}))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "invalid_config", "{bad}");

    // A translator is not an action.
    let error = runner
        .runtime
        .run_action(&translator, context("c", "hi", "en"), &none)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "wrong_kind");
}
