//! An action's fixtures: a context, a configuration (rendered as a flow
//! renders it) and what the action must do with them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{FixtureContext, Tally, differences, empty_object, error_mismatch, read};
use crate::plugin::{ActionOutput, Plugin, PluginRuntime};

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

pub(super) async fn run(
    runtime: &PluginRuntime,
    plugin: &Plugin,
    files: &[PathBuf],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    for path in files {
        let fixture: Fixture = read(path)?;
        let context = fixture.context.into_context();
        let config = crate::templates::render_json(
            runtime.templates(),
            &fixture.config,
            &context.template_context(),
        )
        .await;
        let outcome = match config {
            Ok(config) => runtime
                .run_action(plugin, context, &config)
                .await
                .map_err(|e| (e.code().to_string(), e.to_string())),
            Err(e) => Err(("invalid_config".to_string(), e.to_string())),
        };
        let shown = format!("{} ({})", path.display(), fixture.description);
        tally.record(&shown, mismatches(&fixture.expect, &outcome));
    }
    Ok(())
}

/// How `outcome` differs from what `expect` names.
fn mismatches(
    expect: &Expectation,
    outcome: &Result<ActionOutput, (String, String)>,
) -> Vec<String> {
    if let Some(problems) = error_mismatch(&expect.error, outcome) {
        return problems;
    }
    let Ok(output) = outcome else {
        unreachable!("error_mismatch answers for every error")
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
    differences([
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
    ])
}
