//! Built-in action `request`: calls an HTTP API and keeps the response.
//!
//! The response is kept under `name` as `{"status": 200, "ok": true,
//! "headers": {...}, "body": <JSON or text>}` so later templates and
//! conditions can read `{{ order.body.status }}`. A non-2xx answer is kept,
//! not failed: the flow decides what a 404 means. Network failures and
//! refused hosts fail the action with a typed error.

use std::collections::BTreeMap;

use flowhost_sdk::http::{self, Method};
use flowhost_sdk::{Action, ActionError, Capability, Context, Outcome, PluginInfo, plugin_info};
use serde::Deserialize;
use serde_json::{Value, json};

struct Request;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// A string is sent as is; any other JSON value is sent as JSON.
    #[serde(default)]
    body: Option<Value>,
    /// The name the response is kept under.
    name: String,
}

fn default_method() -> String {
    "GET".into()
}

impl Action for Request {
    type Config = Config;

    fn describe() -> PluginInfo {
        plugin_info(
            "request",
            env!("CARGO_PKG_VERSION"),
            "Calls an HTTP API and keeps the status and body under a name.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["url", "name"],
                "additionalProperties": false,
                "properties": {
                    "method": {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], "default": "GET"},
                    "url": {"type": "string", "minLength": 1},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"description": "A string is sent as is; other JSON values are sent as JSON."},
                    "name": {"type": "string", "minLength": 1, "description": "Where the response is kept."}
                }
            }),
            &[Capability::Http, Capability::Log],
        )
    }

    fn run(_context: &Context, config: Config) -> Result<Outcome, ActionError> {
        let method: Method = config.method.parse().map_err(ActionError::InvalidConfig)?;
        let mut headers: Vec<(String, String)> = config.headers.into_iter().collect();
        let body = match config.body {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.into_bytes()),
            Some(value) => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                Some(value.to_string().into_bytes())
            }
        };
        let response = http::send(http::Request {
            method,
            url: config.url,
            headers,
            body,
        })?;

        let body = match serde_json::from_slice::<Value>(&response.body) {
            Ok(json) => json,
            Err(_) => Value::String(String::from_utf8_lossy(&response.body).into_owned()),
        };
        let headers: serde_json::Map<String, Value> = response
            .headers
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let kept = json!({
            "status": response.status,
            "ok": (200..300).contains(&response.status),
            "headers": headers,
            "body": body,
        });
        Ok(Outcome::store(config.name, &kept))
    }
}

flowhost_sdk::export_action!(Request);
