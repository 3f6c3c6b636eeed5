//! `flowhost plugin test`: runs a component in flowhost's runtime against
//! fixture files and says, per fixture, whether it did what the fixture
//! expects. An action's fixture gives a context and a configuration
//! (`action.rs`); a chatbot adapter's gives a customer message and what a
//! stand-in bot answers, or a callback body (`chatbot.rs`).

mod action;
mod chatbot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

use crate::plugin::{ActionContext, Contact, PluginKind, PluginSettings};

/// Runs `plugin` against each fixture (a `.json` file, or a folder of
/// them), prints one line each, then `N passed, M failed`; `Ok(true)` when
/// every fixture passed.
pub async fn test(
    plugin: &str,
    fixtures: &[PathBuf],
    allow_hosts: Vec<String>,
    cache_dir: Option<&Path>,
) -> anyhow::Result<bool> {
    let files = fixture_files(fixtures)?;
    let runtime = super::plugins::runtime(cache_dir)?;
    let mut settings = PluginSettings::default();
    settings.http.allowed_hosts = allow_hosts;
    let loaded = super::plugins::load(&runtime, plugin, Some(settings.clone())).await?;
    let mut tally = Tally::default();
    match loaded.info().kind {
        PluginKind::Action => action::run(&runtime, &loaded, &files, &mut tally).await?,
        PluginKind::Chatbot => {
            chatbot::run(&runtime, &loaded, settings, &files, &mut tally).await?
        }
        PluginKind::Translator => {
            anyhow::bail!("{plugin} is a translator: plugin test runs actions and chatbot adapters")
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(tally.failed == 0)
}

/// Fixtures passed and failed so far.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    /// Prints a fixture's line (and its problems) and counts it.
    fn record(&mut self, shown: &str, problems: Vec<String>) {
        if problems.is_empty() {
            self.passed += 1;
            println!("ok      {shown}");
        } else {
            self.failed += 1;
            println!("FAILED  {shown}");
            for problem in problems {
                println!("        {problem}");
            }
        }
    }
}

/// Reads the fixture at `path` as `T`, and the name its line shows.
fn read<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a fixture", path.display()))
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The conversation a fixture's call runs in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FixtureContext {
    text: String,
    language: String,
    contact: FixtureContact,
    data: BTreeMap<String, Value>,
}

/// Who the customer is (flowhost gives the id).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FixtureContact {
    name: Option<String>,
    username: Option<String>,
}

impl Default for FixtureContext {
    fn default() -> Self {
        FixtureContext {
            text: String::new(),
            language: "en".into(),
            contact: FixtureContact::default(),
            data: BTreeMap::new(),
        }
    }
}

impl FixtureContext {
    fn into_context(self) -> ActionContext {
        let contact = Contact {
            name: self.contact.name,
            username: self.contact.username,
            ..Default::default()
        };
        super::plugins::context(self.text, self.language, self.data, contact)
    }
}

/// `what: expected X, got Y` for each value a fixture names that differs.
fn differences(
    checks: impl IntoIterator<Item = (&'static str, Option<Value>, Value)>,
) -> Vec<String> {
    checks
        .into_iter()
        .filter_map(|(what, wanted, got)| match wanted {
            Some(wanted) if wanted != got => Some(format!("{what}: expected {wanted}, got {got}")),
            _ => None,
        })
        .collect()
}

/// The fixture files: each file given, and the `.json` files of each folder.
fn fixture_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        anyhow::bail!("no fixtures: give .json files or folders holding them");
    }
    Ok(files)
}

/// How a call's error compares with the error a fixture expects: `Some`
/// problems to report, or `None` when the call succeeded as expected.
fn error_mismatch<T>(
    expected: &Option<String>,
    outcome: &Result<T, (String, String)>,
) -> Option<Vec<String>> {
    match (outcome, expected) {
        (Err((code, _)), Some(wanted)) if code == wanted => Some(Vec::new()),
        (Err((code, message)), wanted) => {
            let wanted = wanted.as_deref().unwrap_or("success");
            Some(vec![format!(
                "expected {wanted}, got the error {code}: {message}"
            )])
        }
        (Ok(_), Some(wanted)) => Some(vec![format!("expected the error {wanted}, got success")]),
        (Ok(_), None) => None,
    }
}
