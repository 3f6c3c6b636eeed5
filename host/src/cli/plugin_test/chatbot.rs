//! A chatbot adapter's fixtures: a customer's message forwarded by
//! `deliver` to a stand-in bot that answers as the fixture says, or a body
//! the bot posts to its callback URL (`parse-callback`); and what the
//! adapter must make of it.
//!
//! The stand-in listens on loopback; a fixture with `bot` gets its address
//! as the configuration's `url` (a chatbot node passes its bot's URL there
//! too), and the adapter may reach it whatever `--allow-host` says.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{FixtureContext, Tally, differences, empty_object, error_mismatch, read};
use crate::plugin::{
    BotTurn, ChatbotInbound, ChatbotSession, CustomFieldValue, Plugin, PluginRuntime,
    PluginSettings,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[serde(default)]
    description: String,
    #[serde(default)]
    context: FixtureContext,
    #[serde(default = "empty_object")]
    config: Value,
    /// The session's custom fields, by name.
    #[serde(default)]
    fields: BTreeMap<String, String>,
    /// What the customer did; `deliver` forwards it.
    inbound: Option<FixtureInbound>,
    /// How the stand-in bot answers `deliver`'s request.
    bot: Option<BotAnswer>,
    /// A body the bot posts to its callback URL (JSON, or a string sent as
    /// it is); `parse-callback` reads it.
    callback: Option<Value>,
    expect: Expectation,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FixtureInbound {
    text: Option<String>,
    quick_reply: Option<String>,
    is_start: bool,
}

/// The stand-in bot's answer: a status and a body (JSON, or a string sent
/// as it is; none for an empty body).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BotAnswer {
    #[serde(default = "ok")]
    status: u16,
    body: Option<Value>,
}

fn ok() -> u16 {
    200
}

/// What a fixture expects; only what it names is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    /// The error's code (`bot_unavailable`, `bot_protocol`,
    /// `invalid_config`, ...): the call must fail with it.
    error: Option<String>,
    /// The texts of the bot's replies, in order.
    replies: Option<Vec<String>>,
    /// The queue the bot hands the conversation to (`null` for none).
    #[serde(default, deserialize_with = "present")]
    handoff_queue: Option<Option<String>>,
    /// Fields of the JSON the adapter posted to the bot, each with the
    /// value it must have had.
    bot_request: Option<BTreeMap<String, Value>>,
}

/// `Some(None)` for an explicit `null`, unlike a missing field.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub(super) async fn run(
    runtime: &PluginRuntime,
    plugin: &Plugin,
    mut settings: PluginSettings,
    files: &[PathBuf],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let bot = StandInBot::start().await?;
    settings.http.allowed_hosts.push("127.0.0.1".into());
    settings.http.allow_private_networks = true;
    let plugin = plugin.with_http_policy(&settings.http)?;
    for path in files {
        let fixture: Fixture = read(path)?;
        let shown = format!("{} ({})", path.display(), fixture.description);
        let problems = match (&fixture.inbound, &fixture.callback) {
            (Some(_), None) => deliver(runtime, &plugin, &bot, fixture).await?,
            (None, Some(_)) => parse_callback(runtime, &plugin, fixture).await,
            _ => anyhow::bail!(
                "{}: a chatbot fixture has either `inbound` (with `bot`) or `callback`",
                path.display()
            ),
        };
        tally.record(&shown, problems);
    }
    Ok(())
}

async fn deliver(
    runtime: &PluginRuntime,
    plugin: &Plugin,
    bot: &StandInBot,
    fixture: Fixture,
) -> anyhow::Result<Vec<String>> {
    let mut config = fixture.config;
    if let Some(answer) = fixture.bot {
        bot.answer_with(answer).await;
        if let Value::Object(fields) = &mut config {
            fields.insert("url".into(), json!(bot.url));
        }
    }
    let session = ChatbotSession {
        response_url:
            "http://flowhost.test/chatbots/fixture/callback?conversation=cli&hash=fixture-hash"
                .into(),
        hash: "fixture-hash".into(),
        custom_fields: fixture
            .fields
            .into_iter()
            .map(|(name, value)| CustomFieldValue {
                title: name.clone(),
                name,
                value: Some(value),
            })
            .collect(),
    };
    let inbound = fixture.inbound.unwrap_or_default();
    let inbound = ChatbotInbound {
        id: "cli-1".into(),
        text: inbound.text,
        quick_reply: inbound.quick_reply,
        attachments: Vec::new(),
        is_start: inbound.is_start,
    };
    let context = fixture.context.into_context();
    let outcome = runtime
        .run_chatbot(
            plugin,
            context,
            &config,
            &session,
            &inbound,
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| (e.code().to_string(), e.to_string()));
    let mut problems = mismatches(&fixture.expect, &outcome);
    if let Some(wanted) = &fixture.expect.bot_request {
        problems.extend(request_mismatches(wanted, bot.received().await));
    }
    Ok(problems)
}

async fn parse_callback(runtime: &PluginRuntime, plugin: &Plugin, fixture: Fixture) -> Vec<String> {
    let body = match fixture.callback.expect("a callback fixture") {
        Value::String(text) => text.into_bytes(),
        value => value.to_string().into_bytes(),
    };
    let outcome = runtime
        .parse_chatbot_callback(plugin, &fixture.config, &body)
        .await
        .map(|callback| callback.turn)
        .map_err(|e| (e.code().to_string(), e.to_string()));
    mismatches(&fixture.expect, &outcome)
}

/// How `outcome` differs from what `expect` names.
fn mismatches(expect: &Expectation, outcome: &Result<BotTurn, (String, String)>) -> Vec<String> {
    if let Some(problems) = error_mismatch(&expect.error, outcome) {
        return problems;
    }
    let Ok(turn) = outcome else {
        unreachable!("error_mismatch answers for every error")
    };
    let replies: Vec<_> = turn.replies.iter().map(|r| r.text.clone()).collect();
    differences([
        (
            "replies",
            expect.replies.as_ref().map(|r| json!(r)),
            json!(replies),
        ),
        (
            "handoff_queue",
            expect.handoff_queue.as_ref().map(|q| json!(q)),
            json!(turn.handoff_queue),
        ),
    ])
}

fn request_mismatches(wanted: &BTreeMap<String, Value>, received: Option<Value>) -> Vec<String> {
    let Some(received) = received else {
        return vec!["bot_request: the adapter posted no JSON to the bot".into()];
    };
    differences(wanted.iter().map(|(field, value)| {
        (
            "bot_request",
            Some(json!({ field: value })),
            json!({ field: received[field] }),
        )
    }))
}

/// A bot on loopback that answers every request as the current fixture
/// says and keeps the JSON body it was sent.
struct StandInBot {
    url: String,
    state: Arc<Mutex<BotState>>,
}

#[derive(Default)]
struct BotState {
    answer: Option<BotAnswer>,
    received: Option<Value>,
}

impl StandInBot {
    async fn start() -> anyhow::Result<StandInBot> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("starting the stand-in bot")?;
        let url = format!("http://{}/bot", listener.local_addr()?);
        let state = Arc::new(Mutex::new(BotState::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(StandInBot { url, state })
    }

    async fn answer_with(&self, answer: BotAnswer) {
        *self.state.lock().await = BotState {
            answer: Some(answer),
            received: None,
        };
    }

    async fn received(&self) -> Option<Value> {
        self.state.lock().await.received.clone()
    }
}

async fn answer(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<BotState>>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut state = state.lock().await;
    state.received = serde_json::from_slice(&body).ok();
    let Some(answer) = state.answer.clone() else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "this fixture has no `bot`",
        )
            .into_response();
    };
    let status = axum::http::StatusCode::from_u16(answer.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = match answer.body {
        None => String::new(),
        Some(Value::String(text)) => text,
        Some(value) => value.to_string(),
    };
    let content_type = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (status, content_type, body).into_response()
}
