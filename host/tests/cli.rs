//! The `flowhost` binary's flow commands, run as a user would.

use std::process::Command;

/// Runs `flowhost` from the repository root, with its data directory (the
/// compiled-plugin cache) in a temporary directory.
fn flowhost(args: &[&str]) -> (bool, String) {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("flowhost.yaml");
    std::fs::write(&config, format!("data_dir: {}\n", data.path().display())).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("RUST_LOG", "warn")
        .output()
        .expect("flowhost runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn validate_accepts_the_example_and_lists_every_error_of_a_broken_flow() {
    let (ok, out) = flowhost(&["validate", "examples/shop-support.yaml"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("valid (1 connectors, 1 decision trees with 9 decisions"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "connectors:\n  dm: { title: DMs, account: nobody, next: { queue: q } }\nqueues:\n  other: { name: Other }\n",
    )
    .unwrap();
    let (ok, out) = flowhost(&["validate", broken.to_str().unwrap()]);
    assert!(!ok, "a broken flow must exit non-zero");
    assert!(
        out.contains(
            "error: connectors.dm.account (line 2, column 21): no account is named `nobody`"
        ),
        "{out}"
    );
    assert!(
        out.contains("error: connectors.dm.next (line 2, column 38): no queue is named `q`"),
        "{out}"
    );
    assert!(out.contains("2 errors"), "{out}");
}

#[test]
fn diagram_and_schema_print_what_they_promise() {
    let (ok, out) = flowhost(&["diagram", "examples/shop-support.yaml", "--format", "dot"]);
    assert!(ok && out.starts_with("digraph flow {"), "{out}");
    let (ok, out) = flowhost(&["schema"]);
    assert!(ok, "{out}");
    let schema: serde_json::Value = serde_json::from_str(&out).expect("the schema is JSON");
    assert_eq!(schema["title"], "Flow");
}

#[test]
fn the_published_schema_is_up_to_date() {
    let (ok, out) = flowhost(&["schema"]);
    assert!(ok, "{out}");
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/flow.schema.json"
    ))
    .unwrap();
    assert_eq!(
        out.trim(),
        published.trim(),
        "examples/flow.schema.json is stale: run `cargo run -p flowhost -- schema > examples/flow.schema.json`"
    );
}

/// Issue 8, item 3: `validate` run in some folder keeps no compiled code in
/// that folder (and so never runs code planted there): without a configured
/// `runtime.cache_dir` the tools compile in memory.
#[test]
fn validate_keeps_no_compiled_code_in_the_folder_it_runs_in() {
    let folder = tempfile::tempdir().unwrap();
    let planted = folder.path().join("flowhost-data/plugin-cache");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("planted.cwasm"), b"not code").unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shop-support.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .args(["validate", example])
        .current_dir(folder.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("flowhost runs");
    assert!(output.status.success(), "{output:?}");
    let files: Vec<_> = std::fs::read_dir(&planted)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["planted.cwasm"], "validate wrote a cache here");
    assert!(
        !folder
            .path()
            .join("flowhost-data/plugin-cache.key")
            .exists()
    );
}

/// `serve` with a flow whose `env:` secrets are unset stops at once and
/// names each one, rather than refusing every webhook in silence.
#[test]
fn serve_refuses_to_start_naming_every_unset_secret() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("flowhost.yaml");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shop-support.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\nlisten: 127.0.0.1:0\nflow: {example}\n",
            data.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env_remove("SHOP_IG_ACCESS_TOKEN")
        .env_remove("SHOP_IG_APP_SECRET")
        .env_remove("SHOP_IG_VERIFY_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("flowhost runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve started with unset secrets");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    for name in [
        "SHOP_IG_ACCESS_TOKEN",
        "SHOP_IG_APP_SECRET",
        "SHOP_IG_VERIFY_TOKEN",
    ] {
        assert!(
            stderr.contains(&format!("the environment variable {name} is not set")),
            "{stderr}"
        );
    }
}

/// `--log-format json` writes one JSON object per line: a received webhook
/// and a turn each leave one at INFO, without the customer's text, inside
/// their spans; the text format has no colour escapes when stderr is not a
/// terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_or_plain_text_without_escapes() {
    for format in ["json", "text"] {
        let lines = serve_one_message(format).await;
        assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "{lines:#?}");
        assert!(
            lines.iter().all(|l| !l.contains("a secret question")),
            "{lines:#?}"
        );
        if format == "text" {
            assert!(
                lines.iter().any(|l| l.contains("webhook received")),
                "{lines:#?}"
            );
            continue;
        }
        let events: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        let find = |message: &str| {
            events
                .iter()
                .find(|e| e["message"] == message)
                .unwrap_or_else(|| panic!("no {message:?} line in {events:#?}"))
                .clone()
        };
        let webhook = find("webhook received");
        assert_eq!(
            (&webhook["level"], &webhook["channel"], &webhook["new"]),
            (&"INFO".into(), &"instagram".into(), &1.into())
        );
        let turn = find("turn");
        assert_eq!(turn["conversation"], "shop-ig:IGSID-log:1");
        assert_eq!(turn["position"], "waiting");
        assert!(turn["ms"].as_f64().is_some(), "{turn}");
        // Lines carry their span: the turn's conversation and flow version,
        // the webhook's channel, the send's account.
        assert_eq!(turn["span"]["name"], "turn", "{turn}");
        assert_eq!(turn["span"]["conversation"], "shop-ig:IGSID-log", "{turn}");
        assert_eq!(turn["span"]["flow_version"], 1, "{turn}");
        assert_eq!(webhook["span"]["name"], "webhook", "{webhook}");
    }
}

/// With `--otlp-endpoint`, the webhook, turn, plugin-call and send spans
/// reach an OpenTelemetry collector (a stand-in speaking OTLP/HTTP with JSON
/// bodies) with their fields and nesting; spans still batched when SIGTERM
/// stops the server are sent before it exits.
#[cfg(feature = "otel")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_opentelemetry_collector() {
    let (collected, replies, base) = collector_and_graph().await;
    let mut server = ExampleServer::start(&["--otlp-endpoint", &base], Some(&base));
    server.deliver("IGSID-otel", "hello").await;
    server.lines_until(|l| l.contains("message part sent"));
    // The batch is due only after 5 s: what arrives now, the stop sent.
    assert!(collected.lock().unwrap().is_empty());
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    assert!(server.child.wait().unwrap().success());
    assert_eq!(replies.lock().unwrap().len(), 1);

    let spans = otlp_spans(&collected.lock().unwrap());
    assert!(spans.iter().all(|s| s.service == "flowhost"), "{spans:#?}");
    let find = |name: &str, key: &str, value: &str| {
        spans
            .iter()
            .find(|s| s.name == name && s.attributes.get(key).map(String::as_str) == Some(value))
            .unwrap_or_else(|| panic!("no {name} span with {key}={value} in {spans:#?}"))
    };
    find("webhook", "channel", "instagram");
    let turn = find("turn", "conversation", "shop-ig:IGSID-otel");
    assert_eq!(turn.attributes["flow_version"], "1", "{turn:#?}");
    let call = find("plugin_call", "plugin", "send-message");
    assert_eq!(
        (&call.parent, &call.trace),
        (&turn.id, &turn.trace),
        "a plugin call is a child of its turn"
    );
    find("send", "account", "shop-ig");
}

/// A collector that cannot be reached costs the server nothing but the
/// spans: the message is answered, and SIGTERM still stops it.
#[cfg(feature = "otel")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_only_loses_the_spans() {
    let (_, replies, graph) = collector_and_graph().await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let mut server = ExampleServer::start(&["--otlp-endpoint", &nowhere], Some(&graph));
    server.deliver("IGSID-otel-down", "hello").await;
    server.lines_until(|l| l.contains("message part sent"));
    assert_eq!(replies.lock().unwrap().len(), 1);
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    assert!(server.child.wait().unwrap().success());
}

/// One span as an OTLP collector received it.
#[cfg(feature = "otel")]
#[derive(Debug)]
struct OtlpSpan {
    service: String,
    name: String,
    id: String,
    parent: String,
    trace: String,
    /// String and integer values, as text.
    attributes: std::collections::HashMap<String, String>,
}

/// The spans of OTLP/JSON `ExportTraceServiceRequest` bodies.
#[cfg(feature = "otel")]
fn otlp_spans(bodies: &[serde_json::Value]) -> Vec<OtlpSpan> {
    let attributes = |list: &serde_json::Value| {
        let list = list.as_array().cloned().unwrap_or_default();
        list.iter()
            .filter_map(|a| {
                let value = &a["value"];
                let text = value["stringValue"]
                    .as_str()
                    .or(value["intValue"].as_str())
                    .map(str::to_string)
                    .or(value["intValue"].as_i64().map(|n| n.to_string()))?;
                Some((a["key"].as_str()?.to_string(), text))
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    let mut spans = Vec::new();
    for resource_spans in bodies
        .iter()
        .flat_map(|b| b["resourceSpans"].as_array().unwrap())
    {
        let service = attributes(&resource_spans["resource"]["attributes"])
            .remove("service.name")
            .unwrap_or_default();
        for scope in resource_spans["scopeSpans"].as_array().unwrap() {
            for span in scope["spans"].as_array().unwrap() {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_string();
                spans.push(OtlpSpan {
                    service: service.clone(),
                    name: text("name"),
                    id: text("spanId"),
                    parent: text("parentSpanId"),
                    trace: text("traceId"),
                    attributes: attributes(&span["attributes"]),
                });
            }
        }
    }
    spans
}

/// A stand-in OpenTelemetry collector (`POST /v1/traces`, JSON only, as
/// OTLP/HTTP specifies) and Graph API (`POST /v23.0/{id}/messages`) on one
/// loopback port: the bodies each received, and its base URL.
#[cfg(feature = "otel")]
async fn collector_and_graph() -> (
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    String,
) {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::post;
    type Bodies = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;
    let (spans, replies) = (Bodies::default(), Bodies::default());
    let (spans_in, replies_in) = (spans.clone(), replies.clone());
    let router = axum::Router::new()
        .route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let spans = spans_in.clone();
                async move {
                    if headers[header::CONTENT_TYPE] != "application/json" {
                        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
                    }
                    let request: serde_json::Value = match serde_json::from_slice(&body) {
                        Ok(request) => request,
                        Err(error) => {
                            return (StatusCode::BAD_REQUEST, error.to_string()).into_response();
                        }
                    };
                    spans.lock().unwrap().push(request);
                    // An ExportTraceServiceResponse with nothing rejected.
                    axum::Json(serde_json::json!({})).into_response()
                }
            }),
        )
        .route(
            "/v23.0/{ig_id}/messages",
            post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let replies = replies_in.clone();
                async move {
                    let mut replies = replies.lock().unwrap();
                    replies.push(body.clone());
                    axum::Json(serde_json::json!({
                        "recipient_id": body["recipient"]["id"],
                        "message_id": format!("m{}", replies.len()),
                    }))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (spans, replies, base)
}

/// Runs `serve` with the example flow and `--log-format format`, delivers
/// one signed message, and returns stderr's lines once its turn is logged.
async fn serve_one_message(format: &str) -> Vec<String> {
    let mut server = ExampleServer::start(&["--log-format", format], None);
    server.deliver("IGSID-log", "a secret question").await;
    let seen = server.lines_until(|l| l.contains("\"turn\"") || l.contains(" turn "));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    seen
}

/// `serve` running the example flow (starting at its support decision tree)
/// on a free loopback port, its stderr read line by line.
struct ExampleServer {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
    base: String,
    _dir: tempfile::TempDir,
}

impl ExampleServer {
    /// Starts it with `args` before `serve`, and the Instagram account's
    /// Graph API at `graph` if given; waits until it is ready.
    fn start(args: &[&str], graph: Option<&str>) -> Self {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut flow = include_str!("../../examples/shop-support.yaml").replace(
            "next: { time_condition: business-hours }",
            "next: { decision_tree: support }",
        );
        if let Some(graph) = graph {
            flow = flow.replace(
                "    verify_token: env:SHOP_IG_VERIFY_TOKEN\n",
                &format!("    verify_token: env:SHOP_IG_VERIFY_TOKEN\n    api_base_url: {graph}\n"),
            );
        }
        std::fs::write(dir.path().join("flow.yaml"), flow).unwrap();
        let port = free_port();
        let config = dir.path().join("flowhost.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\ndata_dir: {}\nflow: {}\nruntime:\n  cache_dir: {}\n",
                dir.path().join("data").display(),
                dir.path().join("flow.yaml").display(),
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join("cli-plugin-cache")
                    .display(),
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .env("SHOP_IG_APP_SECRET", "log-secret")
            .env("SHOP_IG_VERIFY_TOKEN", "log-verify")
            .env("SHOP_IG_ACCESS_TOKEN", "log-token")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("flowhost runs");
        let (lines_in, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if lines_in.send(line).is_err() {
                    return;
                }
            }
        });
        let mut server = Self {
            child,
            lines,
            seen: Vec::new(),
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        server.lines_until(|l| l.contains("listening"));
        server
    }

    /// Delivers one signed Instagram message from `customer`.
    async fn deliver(&self, customer: &str, text: &str) {
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(std::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Sent now: a reply is allowed only within 24 hours of it.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let body = serde_json::json!({"object": "instagram", "entry": [{"id": "17841400000000001", "time": now_ms, "messaging": [
            {"sender": {"id": customer}, "recipient": {"id": "17841400000000001"}, "timestamp": now_ms,
             "message": {"mid": format!("mid.{customer}"), "text": text}}]}]})
        .to_string();
        let signature =
            flowhost::channels::instagram::signature::sign(b"log-secret", body.as_bytes());
        let response = http
            .post(format!("{}/webhooks/instagram", self.base))
            .header("X-Hub-Signature-256", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// Reads stderr up to the first line that `wanted` accepts (within two
    /// minutes); returns every line read since start.
    fn lines_until(&mut self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("the awaited line never came: {:#?}", self.seen);
            };
            let done = wanted(&line);
            self.seen.push(line);
            if done {
                return self.seen.clone();
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `plugin list` shows every built-in (with schemas on request).
#[test]
fn plugin_list_shows_every_builtin_and_its_schema_on_request() {
    let (ok, out) = flowhost(&["plugin", "list"]);
    assert!(ok, "{out}");
    for name in [
        "request",
        "send-message",
        "save-data",
        "create-ticket",
        "webhook-bot",
        "rasa",
        "phrase-translator",
    ] {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name}: {out}");
    }
    assert!(!out.contains("\"required\""), "no schemas unless asked");
    let (ok, out) = flowhost(&["plugin", "list", "--schemas"]);
    assert!(ok, "{out}");
    assert!(out.contains(r#""required": ["#), "{out}");
}

/// `plugin describe` takes a built-in's name or a component file.
#[test]
fn plugin_describe_takes_a_name_or_a_file() {
    let (ok, out) = flowhost(&["plugin", "describe", "webhook-bot"]);
    assert!(ok, "{out}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&info["name"], &info["kind"]),
        (&"webhook-bot".into(), &"chatbot".into())
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("save-data.wasm");
    let bytes = flowhost::builtin::components()
        .iter()
        .find(|(name, _)| *name == "save-data")
        .unwrap()
        .1;
    std::fs::write(&file, bytes).unwrap();
    let (ok, out) = flowhost(&["plugin", "describe", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains(r#""name": "save-data""#), "{out}");

    let (ok, out) = flowhost(&["plugin", "describe", "no-such-plugin"]);
    assert!(!ok);
    assert!(
        out.contains("neither a built-in plugin nor a readable component file"),
        "{out}"
    );
}

/// `plugin run` with a configuration, saved data, a language and a message.
#[test]
fn plugin_run_prints_the_outcome_and_its_effects() {
    let (ok, out) = flowhost(&[
        "plugin",
        "run",
        "send-message",
        "--lang",
        "tr",
        "--plugin-config",
        r#"{"text": "Hello {{ data.name }}", "variants": {"tr": {"text": "Merhaba {{ data.name }}, {{ message.text }}"}}}"#,
        "--data",
        r#"{"name": "Ada"}"#,
        "--text",
        "nerede?",
    ]);
    assert!(ok, "{out}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        output["effects"]["messages"][0]["text"],
        "Merhaba Ada, nerede?"
    );

    let (ok, out) = flowhost(&[
        "plugin",
        "run",
        "save-data",
        "--plugin-config",
        r#"{"key": "vip", "value": true}"#,
    ]);
    assert!(ok, "{out}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output["effects"]["data_changes"]["vip"], true);

    // A bad configuration: exit 1 and the typed error.
    let (ok, out) = flowhost(&[
        "plugin",
        "run",
        "save-data",
        "--plugin-config",
        r#"{"value": 1}"#,
    ]);
    assert!(!ok);
    assert!(out.contains("error (invalid_config)"), "{out}");
    let (ok, out) = flowhost(&["plugin", "run", "save-data", "--plugin-config", "{not json"]);
    assert!(!ok);
    assert!(out.contains("--plugin-config is not JSON"), "{out}");
}

/// `plugin run request` reaches a host only when it is allowed to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_run_reaches_only_the_allowed_hosts() {
    let router = axum::Router::new().route(
        "/orders/1",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "shipped"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let config = format!(r#"{{"url": "http://{addr}/orders/1", "name": "order"}}"#);
    let run = move |extra: &'static [&'static str]| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "plugin",
                "run",
                "request",
                "--plugin-config",
                config.as_str(),
            ];
            args.extend_from_slice(extra);
            flowhost(&args)
        })
    };
    let (ok, out) = run(&[]).await.unwrap();
    assert!(!ok, "a private address is closed by default: {out}");
    assert!(out.contains("error (http)"), "{out}");
    let (ok, out) = run(&["--allow-host", "127.0.0.1", "--allow-private-networks"])
        .await
        .unwrap();
    assert!(ok, "{out}");
    let output: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output["store"][0], "order");
    assert_eq!(output["store"][1]["body"]["status"], "shipped");
}

/// `chat` talks to a flow in the terminal: the customer's lines in, the
/// bot's answers out, and no log lines in between.
/// Runs `flowhost chat` with `args` from the repository root, types
/// `input`, and returns whether it succeeded, its stdout and its stderr.
fn chat(args: &[&str], input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("chat")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("flowhost runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn chat_answers_in_the_terminal() {
    let data = tempfile::tempdir().unwrap();
    let flow = data.path().join("flow.yaml");
    std::fs::write(
        &flow,
        include_str!("../../examples/shop-support.yaml").replace(
            "next: { time_condition: business-hours }",
            "next: { decision_tree: support }",
        ),
    )
    .unwrap();
    let chat_data = data.path().join("chat");
    let (ok, stdout, stderr) = chat(
        &[
            flow.to_str().unwrap(),
            "--data-dir",
            chat_data.to_str().unwrap(),
        ],
        "hello\n2\n/state\n/quit\n",
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("How can we help you today?"), "{stdout}");
    assert!(stdout.contains("[2] Talk to an agent"), "{stdout}");
    // `2` picked the quick reply; `/state` shows where that led.
    assert!(stdout.contains("Connecting you to an agent"), "{stdout}");
    assert!(
        stdout.contains(r#""at":"queued","queue":"support""#),
        "{stdout}"
    );
    assert!(
        !stderr.contains(" INFO "),
        "no log lines at the default level: {stderr}"
    );
}

const TOKEN: &str = "cli-admin-token-of-at-least-32-bytes";

/// A server (in this process) running `flow` with its `env:` secrets
/// written in; its base URL and the flow as served.
async fn example_server(
    dir: &std::path::Path,
    flow: &str,
) -> (flowhost::app::Server, String, String) {
    let flow = flow
        .replace("env:SHOP_IG_ACCESS_TOKEN", "cli-token")
        .replace("env:SHOP_IG_APP_SECRET", "cli-secret")
        .replace("env:SHOP_IG_VERIFY_TOKEN", "cli-verify");
    std::fs::write(dir.join("flow.yaml"), &flow).unwrap();
    let mut config = flowhost::config::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        flow: Some(dir.join("flow.yaml")),
        admin_token: Some(TOKEN.into()),
        ..Default::default()
    };
    config.runtime.cache_dir =
        Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-plugin-cache"));
    let server = flowhost::app::start(config)
        .await
        .expect("the server starts");
    let base = format!("http://{}", server.addr);
    (server, base, flow)
}

/// `chat --server` talks to a running server's sandbox, not production,
/// and `--at` reaches the server: the example's office hours answer at a
/// Monday noon in Istanbul, the after-hours automessage on a Sunday night.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_talks_to_a_running_servers_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../../examples/shop-support.yaml");
    let (server, base, flow) = example_server(dir.path(), example).await;
    let edited = flow.replace("How can we help you today?", "How may we help, sandbox?");
    let pushed = reqwest::Client::new()
        .put(format!("{base}/admin/sandbox"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(edited)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 200);
    let talk = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            chat(&args, "hello\n2\n/quit\n")
        })
    };
    let at = |moment: &str| {
        ["--server", &base, "--token", TOKEN, "--at", moment]
            .map(String::from)
            .to_vec()
    };
    let (ok, open, stderr) = talk(at("2026-11-23T12:00:00+03:00")).await.unwrap();
    assert!(ok, "{open}\n{stderr}");
    assert!(open.contains("nothing reaches customers"), "{open}");
    assert!(
        open.contains("How may we help, sandbox?"),
        "the sandbox's text: {open}"
    );
    assert!(
        open.contains("Connecting you to an agent"),
        "the quick reply: {open}"
    );
    let (ok, closed, stderr) = talk(at("2026-11-22T23:30[Europe/Istanbul]")).await.unwrap();
    assert!(ok, "{closed}\n{stderr}");
    assert!(closed.contains("We're closed right now"), "{closed}");
    let (ok, out, stderr) = talk(at("tonight")).await.unwrap();
    assert!(
        !ok && stderr.contains("`tonight` is not a moment"),
        "{out}\n{stderr}"
    );
    server.stop().await.unwrap();
}

/// `flowhost admin` publishes on a running server: pull, push, diff,
/// apply, history, rollback, and a refusal that lists every error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_publish_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let flow = include_str!("../../examples/shop-support.yaml").replace(
        "next: { time_condition: business-hours }",
        "next: { decision_tree: support }",
    );
    let (server, base, flow) = example_server(dir.path(), &flow).await;
    let admin = |args: Vec<String>, token: &'static str| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let output = Command::new(env!("CARGO_BIN_EXE_flowhost"))
                .arg("admin")
                .args(&args)
                .env("FLOWHOST_SERVER", &base)
                .env("FLOWHOST_ADMIN_TOKEN", token)
                .output()
                .expect("flowhost runs");
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            (output.status.success(), text)
        })
    };
    let run = |args: &[&str]| admin(args.iter().map(|a| a.to_string()).collect(), TOKEN);

    let pulled = dir.path().join("sandbox.yaml");
    let (ok, out) = run(&["sandbox", "pull", "--output", pulled.to_str().unwrap()])
        .await
        .unwrap();
    assert!(ok, "{out}");
    let sandbox = std::fs::read_to_string(&pulled).unwrap();
    assert!(sandbox.contains("How can we help you today?"), "{sandbox}");
    std::fs::write(
        &pulled,
        sandbox.replace("How can we help you today?", "How may we help?"),
    )
    .unwrap();
    let (ok, out) = run(&["sandbox", "push", pulled.to_str().unwrap()])
        .await
        .unwrap();
    assert!(ok && out.contains("the sandbox is valid"), "{out}");
    let (ok, out) = run(&["diff"]).await.unwrap();
    assert!(ok && out.starts_with("~ decision_trees.support"), "{out}");
    assert!(out.contains("How may we help?"), "{out}");
    let (ok, out) = run(&["apply", "--comment", "wording"]).await.unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("version 2 is production; new sessions run on it now"),
        "{out}"
    );
    let (ok, out) = run(&["rollback", "1"]).await.unwrap();
    assert!(ok && out.contains("version 3 is production"), "{out}");
    let (ok, out) = run(&["history"]).await.unwrap();
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("*   3") && lines[0].ends_with("rollback to version 1"),
        "{out}"
    );
    assert!(
        lines[1].ends_with("wording") && lines[2].contains("by file"),
        "{out}"
    );

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        flow.replace("go: { decision: handoff }", "go: { decision: nowhere }"),
    )
    .unwrap();
    let (ok, out) = run(&["sandbox", "push", broken.to_str().unwrap()])
        .await
        .unwrap();
    assert!(ok && out.contains("does not validate yet"), "{out}");
    let (ok, out) = run(&["apply", "--expect", "3"]).await.unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.contains("(invalid_flow)")
            && out.contains("error: decision_trees.support.decisions.welcome.targets[1].go"),
        "{out}"
    );
    let (ok, out) = admin(
        vec!["history".into()],
        "a-wrong-token-of-at-least-32-bytes!",
    )
    .await
    .unwrap();
    assert!(!ok && out.contains("403"), "{out}");

    // Plugins: the upload reaches the API and its refusal is shown (the
    // accepted upload is tested in tests/publishing.rs, where partner
    // components are built).
    let component = dir.path().join("send-message.wasm");
    let builtin = flowhost::builtin::components()
        .iter()
        .find(|(name, _)| *name == "send-message")
        .unwrap();
    std::fs::write(&component, builtin.1).unwrap();
    let (ok, out) = run(&["plugin", "upload", component.to_str().unwrap()])
        .await
        .unwrap();
    assert!(!ok && out.contains("(reserved_name)"), "{out}");
    std::fs::write(&component, b"not a component").unwrap();
    let (ok, out) = run(&["plugin", "upload", component.to_str().unwrap()])
        .await
        .unwrap();
    assert!(!ok && out.contains("(invalid_plugin)"), "{out}");
    let (ok, out) = run(&["plugin", "remove", "greet"]).await.unwrap();
    assert!(!ok && out.contains("404"), "{out}");

    // Instagram accounts: none connected, and no Meta app to connect with
    // (the login itself is tested in tests/publishing.rs).
    let (ok, out) = run(&["instagram", "list"]).await.unwrap();
    assert!(
        ok && out.contains("no connected Instagram accounts"),
        "{out}"
    );
    let (ok, out) = run(&["instagram", "connect"]).await.unwrap();
    assert!(!ok && out.contains("(not_configured)"), "{out}");
    let (ok, out) = run(&["instagram", "refresh", "1784"]).await.unwrap();
    assert!(!ok && out.contains("409"), "{out}");
    let (ok, out) = run(&["instagram", "disconnect", "1784"]).await.unwrap();
    assert!(!ok && out.contains("404"), "{out}");
    server.stop().await.unwrap();
}

/// `chat --at` fixes the clock: the example flow's office hours answer at
/// a Monday noon in Istanbul, the after-hours automessage on a Sunday night.
#[test]
fn chat_at_a_given_moment_takes_that_moments_branch() {
    let talk = |at: &str| {
        let (ok, stdout, stderr) = chat(
            &["examples/shop-support.yaml", "--at", at],
            "hello\n/quit\n",
        );
        assert!(ok, "{stdout}\n{stderr}");
        stdout
    };
    let open = talk("2026-11-23T12:00:00+03:00");
    assert!(open.contains("How can we help you today?"), "{open}");
    let closed = talk("2026-11-22T23:30:00[Europe/Istanbul]");
    assert!(closed.contains("We're closed right now"), "{closed}");
    let (ok, out) = flowhost(&["chat", "examples/shop-support.yaml", "--at", "tonight"]);
    assert!(!ok && out.contains("--at `tonight`"), "{out}");
}

/// Issue 11, item 7, as admins saw it in `chat`: a first `Merhaba` is
/// answered in Turkish, and an inflected `temsilciyle` matches the
/// similar word `temsilci`, handing the customer to the queue.
#[test]
fn chat_answers_a_turkish_greeting_in_turkish_and_matches_inflected_words() {
    let (ok, stdout, stderr) = chat(
        &[
            "examples/shop-support.yaml",
            "--at",
            "2026-11-23T12:00:00+03:00",
        ],
        "Merhaba\ntemsilciyle görüşmek istiyorum\n/state\n/quit\n",
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Size nasıl yardımcı olabiliriz?"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""at":"queued","queue":"support""#),
        "{stdout}"
    );
}

/// The `sh` block of the partner guide (`docs/partners.md`) marked for
/// `lang`.
fn guide_block(lang: &str) -> &'static str {
    let guide = include_str!("../../docs/partners.md");
    let marker = format!("in an empty folder ({lang}). -->");
    let at = guide
        .find(&marker)
        .unwrap_or_else(|| panic!("the guide marks its {lang} block for this test"));
    let block = &guide[at..];
    let start = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    &block[start..start + block[start..].find("```").unwrap()]
}

/// Runs `script` with bash (errexit, pipefail) in `dir`, with this build's
/// `flowhost` first on the PATH; its output, stdout then stderr.
fn run_script(script: &str, dir: &std::path::Path) -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_flowhost"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        // The test's own build settings are not the partner's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUST_LOG", "warn")
        .output()
        .expect("bash runs");
    let out = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script}\n---\n{out}");
    out
}

/// The guide's quick start in `lang`, run exactly as written in an empty
/// folder: the project passes its own unit tests and its fixtures, and the
/// component answers in `chat`. Returns the folder and the output.
fn the_guide_runs_as_written_in(lang: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_script(guide_block(lang), dir.path());
    assert!(out.contains("2 passed, 0 failed"), "plugin test: {out}");
    assert!(
        out.contains("bot> Welcome back, Terminal Customer!"),
        "chat: {out}"
    );
    (dir, out)
}

/// Issue 13, items 4 to 6: the partner guide's Python quick start. Its
/// unit tests ran against `flowhost_testing`, the Python mock host.
#[test]
fn the_partner_guide_runs_as_written_in_python() {
    let (_dir, out) = the_guide_runs_as_written_in("python");
    assert!(
        out.contains("Ran 2 tests") && out.contains("OK"),
        "./test: {out}"
    );
}

/// Issue 13, items 4 to 6: the partner guide's JavaScript quick start. Its
/// unit tests ran in Node's test runner against the JavaScript mock host.
#[test]
fn the_partner_guide_runs_as_written_in_javascript() {
    let (_dir, out) = the_guide_runs_as_written_in("js");
    assert!(
        out.contains("# pass 3") && out.contains("# fail 0"),
        "npm test: {out}"
    );
}

/// Issue 13, item 4: `plugin new NAME --lang LANG --world chatbot` writes
/// an adapter that passes its own unit tests (`commands` run them, build
/// the component and test it), and its fixtures against `plugin test`'s
/// stand-in bot.
fn a_chatbot_project_passes_its_own_tests(lang: &str, commands: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{lang}-bot");
    let script = format!(
        "flowhost plugin new {name} --lang {lang} --world chatbot\ncd {name}\n{commands}\n"
    );
    let out = run_script(&script, dir.path());
    assert!(out.contains("4 passed, 0 failed"), "{lang}: {out}");
    dir
}

/// Then a chatbot fixture the adapter does not meet fails and says how,
/// and one that is neither a delivery nor a callback is refused.
#[test]
fn a_rust_chatbot_project_passes_its_own_tests() {
    let dir = a_chatbot_project_passes_its_own_tests(
        "rust",
        "cargo test\ncargo build --release --target wasm32-wasip2\nflowhost plugin test target/wasm32-wasip2/release/rust_bot.wasm fixtures/",
    );
    let project = dir.path().join("rust-bot");
    let component = project.join("target/wasm32-wasip2/release/rust_bot.wasm");
    let wrong = project.join("wrong.json");
    std::fs::write(
        &wrong,
        r#"{"inbound": {"text": "hi"}, "bot": {"body": {"replies": ["A"]}},
            "expect": {"replies": ["B"], "handoff_queue": "sales", "bot_request": {"text": "bye"}}}"#,
    )
    .unwrap();
    let test = |fixture: &std::path::Path| {
        flowhost(&[
            "plugin",
            "test",
            component.to_str().unwrap(),
            fixture.to_str().unwrap(),
        ])
    };
    let (ok, out) = test(&wrong);
    assert!(!ok, "{out}");
    for problem in [
        r#"replies: expected ["B"], got ["A"]"#,
        r#"handoff_queue: expected "sales", got null"#,
        r#"bot_request: expected {"text":"bye"}, got {"text":"hi"}"#,
        "0 passed, 1 failed",
    ] {
        assert!(out.contains(problem), "{problem}: {out}");
    }
    std::fs::write(&wrong, r#"{"expect": {}}"#).unwrap();
    let (ok, out) = test(&wrong);
    assert!(
        !ok && out.contains("either `inbound` (with `bot`) or `callback`"),
        "{out}"
    );
}

#[test]
fn a_python_chatbot_project_passes_its_own_tests() {
    let _project = a_chatbot_project_passes_its_own_tests(
        "python",
        "./test\n./build\nflowhost plugin test python-bot.wasm fixtures/",
    );
}

#[test]
fn a_javascript_chatbot_project_passes_its_own_tests() {
    let _project = a_chatbot_project_passes_its_own_tests(
        "js",
        "npm install\nnpm test\nnpm run build\nflowhost plugin test js-bot.wasm fixtures/",
    );
}

/// Issue 13, items 4 to 6: the partner guide's Rust quick start; then a
/// fixture the component does not meet fails `plugin test` and says how,
/// and bad names are refused.
#[test]
fn the_partner_guide_runs_as_written() {
    let (dir, out) = the_guide_runs_as_written_in("rust");
    assert!(
        out.contains("test result: ok. 2 passed"),
        "cargo test: {out}"
    );

    let project = dir.path().join("loyalty-points");
    let component = project.join("target/wasm32-wasip2/release/loyalty_points.wasm");
    let fixtures = project.join("fixtures");
    let wrong = fixtures.join("greets.json");
    let fixture = std::fs::read_to_string(&wrong).unwrap();
    std::fs::write(
        &wrong,
        fixture.replace(
            "\"messages\": [\"Hello, Ada!\"]",
            "\"messages\": [\"Hi, Ada!\"]",
        ),
    )
    .unwrap();
    let (ok, out) = flowhost(&[
        "plugin",
        "test",
        component.to_str().unwrap(),
        fixtures.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAILED")
            && out.contains(r#"messages: expected ["Hi, Ada!"], got ["Hello, Ada!"]"#),
        "{out}"
    );
    assert!(out.contains("1 passed, 1 failed"), "{out}");

    let (ok, out) = flowhost(&[
        "plugin",
        "new",
        "loyalty-points",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = flowhost(&[
        "plugin",
        "new",
        "Bad_Name",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("is not a plugin name"), "{out}");
}
