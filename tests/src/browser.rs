//! Runs a script of `tests/browser/` (playwright-core driving Debian's
//! headless Chromium; `tests/browser/setup` installs both, and the README's
//! test command runs it) and checks that it got to its last step.

use std::path::Path;
use std::time::Duration;

/// Runs `script` with `env`, within three minutes; its output once it
/// printed `step: done`. On failure the script leaves screenshots in
/// `<temp dir>/flowhost-<script>-shots` (the panic says where).
pub async fn run(script: &str, env: &[(&str, &str)]) -> String {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `bash tests/browser/setup` (the README's test command does)"
    );
    let shots = std::env::temp_dir().join(format!("flowhost-{script}-shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join(script))
        .current_dir(&browser_dir)
        .envs(env.iter().copied())
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .expect("the browser run ends within 3 minutes")
        .expect("node runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{script} failed (screenshots in {}):\n{log}",
        shots.display()
    );
    assert!(log.contains("step: done"), "{log}");
    log
}
