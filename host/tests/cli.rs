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
        out.contains("error: connectors.dm.account: no account is named `nobody`"),
        "{out}"
    );
    assert!(
        out.contains("error: connectors.dm.next: no queue is named `q`"),
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
