//! Partner plugins as a partner makes them: `flowhost plugin new` writes a
//! project in Python or JavaScript, and the project's own build command
//! makes the component the end-to-end tests load.

use std::path::{Path, PathBuf};

/// Writes the project `name` in `lang` (`python` or `js`) exporting
/// `world` into a temporary folder, builds it as its README says, and
/// copies the component into `plugins` (a server's `plugins_dir`) as
/// `name.wasm`. Fails the test with the build's output.
pub async fn scaffolded_component(plugins: &Path, lang: &str, world: &str, name: &str) -> PathBuf {
    let projects = tempfile::tempdir().expect("a temporary folder");
    let sdk = flowhost::cli::scaffold::default_sdk();
    let project = flowhost::cli::scaffold::new_plugin(name, lang, world, projects.path(), &sdk)
        .expect("the scaffold writes the project");
    let build = match lang {
        "python" => "./build",
        "js" => "npm install --no-audit --no-fund --loglevel=error && npm run build",
        other => panic!("no scaffolded build for {other}"),
    };
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", build])
        .current_dir(&project)
        .output()
        .await
        .expect("the build runs");
    assert!(
        output.status.success(),
        "{name}: `{build}` failed (the README's test command runs sdk/python/setup and sdk/js/setup): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let component = plugins.join(format!("{name}.wasm"));
    std::fs::copy(project.join(format!("{name}.wasm")), &component)
        .expect("the component is built");
    component
}
