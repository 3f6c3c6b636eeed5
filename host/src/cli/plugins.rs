//! `flowhost plugin list | describe | run | test`: plugins without a
//! server (`plugin new` is in `scaffold`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::plugin::{
    ActionContext, ActionOutput, Contact, Conversation, InboundMessage, Plugin, PluginRuntime,
    PluginSettings, RuntimeConfig,
};

fn runtime() -> anyhow::Result<PluginRuntime> {
    PluginRuntime::new(&RuntimeConfig {
        max_concurrent_calls: 2,
        ..RuntimeConfig::default()
    })
}

/// Lists the built-in plugins (and those of `dir`), with their
/// configuration schemas when `schemas` is set.
pub async fn list(dir: Option<PathBuf>, schemas: bool) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let registry =
        crate::registry::PluginRegistry::load(&runtime, dir.as_deref(), &Default::default())
            .await?;
    for (plugin, origin) in registry.iter() {
        let info = plugin.info();
        let caps: Vec<String> = info.capabilities.iter().map(|c| c.to_string()).collect();
        println!(
            "{:<18} {:<8} {:<10} [{}]  {}  ({origin})",
            info.name,
            info.version,
            format!("{:?}", info.kind).to_lowercase(),
            caps.join(", "),
            info.description
        );
        if schemas {
            println!("{}", serde_json::to_string_pretty(&info.config_schema)?);
        }
    }
    Ok(())
}

/// Prints what a plugin (a built-in by name, or a component file) declares.
pub async fn describe(plugin: &str) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let plugin = load(&runtime, plugin, None).await?;
    println!("{}", serde_json::to_string_pretty(plugin.info())?);
    Ok(())
}

/// Loads a built-in by name, else the component file at `plugin`, with
/// the built-in's default settings (or `settings`).
async fn load(
    runtime: &PluginRuntime,
    plugin: &str,
    settings: Option<PluginSettings>,
) -> anyhow::Result<Plugin> {
    let (label, bytes) = match crate::builtin::components()
        .iter()
        .find(|(name, _)| *name == plugin)
    {
        Some((name, bytes)) => (name.to_string(), bytes.to_vec()),
        None => {
            let bytes = std::fs::read(plugin).with_context(|| {
                format!("`{plugin}` is neither a built-in plugin nor a readable component file")
            })?;
            let stem = std::path::Path::new(plugin)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (stem, bytes)
        }
    };
    let settings = settings.unwrap_or_else(|| crate::builtin::default_settings(&label));
    Ok(runtime.load(&label, &bytes, &settings).await?)
}

/// What `flowhost plugin run` was asked to do.
pub struct RunOptions {
    pub plugin: String,
    pub config: String,
    pub text: String,
    pub language: String,
    /// The conversation's saved data, a JSON object.
    pub data: String,
    pub allow_hosts: Vec<String>,
    pub allow_private_networks: bool,
}

/// Runs an action once and prints its output (the value it keeps, the
/// target it picks, saved-data changes, messages, tickets; its log lines go
/// to stderr); `Ok(false)` if it failed.
pub async fn run(options: RunOptions) -> anyhow::Result<bool> {
    let runtime = runtime()?;
    let config: serde_json::Value =
        serde_json::from_str(&options.config).context("--plugin-config is not JSON")?;
    let data: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&options.data).context("--data is not a JSON object")?;
    let builtin = crate::builtin::components()
        .iter()
        .any(|(name, _)| *name == options.plugin);
    let mut settings = if builtin {
        crate::builtin::default_settings(&options.plugin)
    } else {
        PluginSettings::default()
    };
    if !options.allow_hosts.is_empty() {
        settings.http.allowed_hosts = options.allow_hosts;
    }
    settings.http.allow_private_networks |= options.allow_private_networks;
    let loaded = load(&runtime, &options.plugin, Some(settings)).await?;
    let context = context(options.text, options.language, data, Contact::default());
    let config =
        crate::templates::render_json(runtime.templates(), &config, &context.template_context())
            .await?;
    match runtime.run_action(&loaded, context, &config).await {
        Ok(output) => {
            println!("{}", serde_json::to_string_pretty(&output)?);
            Ok(true)
        }
        Err(error) => {
            eprintln!("error ({}): {error}", error.code());
            Ok(false)
        }
    }
}

/// The context `plugin run` and `plugin test` run an action in.
fn context(
    text: String,
    language: String,
    data: BTreeMap<String, Value>,
    contact: Contact,
) -> ActionContext {
    ActionContext {
        conversation: Conversation {
            id: "cli".into(),
            channel: "cli".into(),
            ..Default::default()
        },
        contact: Contact {
            id: "cli-user".into(),
            ..contact
        },
        last_message: Some(InboundMessage {
            id: "cli-1".into(),
            text: Some(text),
            ..Default::default()
        }),
        data,
        language,
        ..Default::default()
    }
}

/// One fixture of `flowhost plugin test`: a context, a configuration and
/// what the action must do with them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[serde(default)]
    description: String,
    #[serde(default)]
    context: FixtureContext,
    #[serde(default = "empty_object")]
    config: Value,
    expect: Expectation,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

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

/// What a fixture expects; only what it names is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    /// The error's code (`invalid_config`, `failed`, `http`, ...): the call
    /// must fail with it.
    error: Option<String>,
    /// `[name, value]` the action keeps.
    store: Option<(String, Value)>,
    next_target: Option<String>,
    /// The texts of the messages sent, in order.
    messages: Option<Vec<String>>,
    /// Saved-data keys set (a value) or removed (`null`).
    data: Option<BTreeMap<String, Value>>,
    /// The titles of the tickets created.
    tickets: Option<Vec<String>>,
}

/// Runs the action `plugin` against each fixture (a `.json` file, or a
/// folder of them) and prints one line each, then `N passed, M failed`;
/// `Ok(true)` when every fixture passed.
pub async fn test(
    plugin: &str,
    fixtures: &[PathBuf],
    allow_hosts: Vec<String>,
) -> anyhow::Result<bool> {
    let runtime = runtime()?;
    let mut settings = PluginSettings::default();
    settings.http.allowed_hosts = allow_hosts;
    let loaded = load(&runtime, plugin, Some(settings)).await?;
    let (mut passed, mut failed) = (0, 0);
    for path in fixture_files(fixtures)? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let fixture: Fixture = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a fixture", path.display()))?;
        let shown = format!("{} ({})", path.display(), fixture.description);
        let c = fixture.context;
        let contact = Contact {
            name: c.contact.name,
            username: c.contact.username,
            ..Default::default()
        };
        let context = context(c.text, c.language, c.data, contact);
        let config = crate::templates::render_json(
            runtime.templates(),
            &fixture.config,
            &context.template_context(),
        )
        .await;
        let outcome = match config {
            Ok(config) => runtime
                .run_action(&loaded, context, &config)
                .await
                .map_err(|e| (e.code().to_string(), e.to_string())),
            Err(e) => Err(("invalid_config".to_string(), e.to_string())),
        };
        match mismatches(&fixture.expect, &outcome) {
            problems if problems.is_empty() => {
                passed += 1;
                println!("ok      {shown}");
            }
            problems => {
                failed += 1;
                println!("FAILED  {shown}");
                for problem in problems {
                    println!("        {problem}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
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

/// How `outcome` differs from what `expect` names.
fn mismatches(
    expect: &Expectation,
    outcome: &Result<ActionOutput, (String, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let output = match (outcome, &expect.error) {
        (Err((code, _)), Some(wanted)) if code == wanted => return problems,
        (Err((code, message)), wanted) => {
            let wanted = wanted.as_deref().unwrap_or("success");
            problems.push(format!(
                "expected {wanted}, got the error {code}: {message}"
            ));
            return problems;
        }
        (Ok(_), Some(wanted)) => {
            problems.push(format!("expected the error {wanted}, got success"));
            return problems;
        }
        (Ok(output), None) => output,
    };
    let sent: Vec<_> = output
        .effects
        .messages
        .iter()
        .map(|m| m.text.clone())
        .collect();
    let made: Vec<_> = output
        .effects
        .tickets
        .iter()
        .map(|t| t.title.clone())
        .collect();
    let checks = [
        (
            "store",
            expect.store.as_ref().map(|s| json!(s)),
            json!(output.store),
        ),
        (
            "next_target",
            expect.next_target.as_ref().map(|t| json!(t)),
            json!(output.next_target),
        ),
        (
            "messages",
            expect.messages.as_ref().map(|m| json!(m)),
            json!(sent),
        ),
        (
            "data",
            expect.data.as_ref().map(|d| json!(d)),
            json!(output.effects.data_changes),
        ),
        (
            "tickets",
            expect.tickets.as_ref().map(|t| json!(t)),
            json!(made),
        ),
    ];
    for (what, wanted, got) in checks {
        if let Some(wanted) = wanted
            && wanted != got
        {
            problems.push(format!("{what}: expected {wanted}, got {got}"));
        }
    }
    problems
}
