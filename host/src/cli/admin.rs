//! `flowhost admin`: a client of a running server's admin API, for
//! publishing from a terminal or a script (pull and push the sandbox, see
//! the diff, apply, list the versions, roll back, upload plugins, connect
//! Instagram accounts, and `chat --server`'s trial chats with the sandbox).

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::engine::TurnReport;
use crate::publishing::trial::TrialStarted;

/// Where the server is and the admin token to show it.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(server: &str, token: &str) -> anyhow::Result<Self> {
        if token.is_empty() {
            anyhow::bail!("no admin token: set FLOWHOST_ADMIN_TOKEN (or pass --token)");
        }
        Ok(AdminClient {
            base: format!("{}/admin", server.trim_end_matches('/')),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
        })
    }

    /// One request; a refusal becomes an error with the API's message and
    /// every issue with its path.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(String, &str)>,
    ) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some((body, content_type)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        if status.is_success() {
            return Ok(text);
        }
        anyhow::bail!("{status}: {}", refusal_text(&text))
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|b| (b.to_string(), "application/json"));
        let text = self.call(method, path, body).await?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The sandbox as YAML.
    pub async fn pull(&self) -> anyhow::Result<String> {
        self.call(Method::GET, "/sandbox?format=yaml", None).await
    }

    /// Replaces the sandbox; what validation says of it.
    pub async fn push(&self, document: String) -> anyhow::Result<String> {
        let answer = self
            .call(
                Method::PUT,
                "/sandbox",
                Some((document, "application/yaml")),
            )
            .await?;
        let answer: Value = serde_json::from_str(&answer)?;
        Ok(validation_text(&answer["validation"]))
    }

    pub async fn diff(&self, from: &str, to: &str) -> anyhow::Result<String> {
        let path = format!("/diff?from={from}&to={to}");
        let answer = self.json(Method::GET, &path, None).await?;
        Ok(diff_text(&answer))
    }

    pub async fn apply(&self, comment: &str, expect: Option<u64>) -> anyhow::Result<String> {
        let body = json!({"comment": comment, "expected_production": expect});
        let answer = self.json(Method::POST, "/apply", Some(body)).await?;
        Ok(applied_text(&answer))
    }

    pub async fn rollback(&self, version: u64, comment: &str) -> anyhow::Result<String> {
        let path = format!("/versions/{version}/rollback");
        let answer = self
            .json(Method::POST, &path, Some(json!({"comment": comment})))
            .await?;
        Ok(applied_text(&answer))
    }

    /// Uploads a component into the sandbox; what it is and what
    /// validation says of the sandbox with it.
    pub async fn upload_plugin(&self, component: Vec<u8>) -> anyhow::Result<String> {
        let url = format!("{}/plugins", self.base);
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .header("content-type", "application/wasm")
            .body(component)
            .send()
            .await
            .with_context(|| format!("reaching {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            anyhow::bail!("{status}: {}", refusal_text(&text));
        }
        let answer: Value = serde_json::from_str(&text)?;
        let plugin = &answer["plugin"];
        Ok(format!(
            "uploaded {} {} ({}) into the sandbox; it runs in production once applied\n{}",
            plugin["name"].as_str().unwrap_or("?"),
            plugin["version"].as_str().unwrap_or("?"),
            plugin["sha256"].as_str().unwrap_or("?"),
            validation_text(&answer["validation"])
        ))
    }

    pub async fn remove_plugin(&self, name: &str) -> anyhow::Result<String> {
        let path = format!("/sandbox/plugins/{}", encoded(name));
        let validation = self.json(Method::DELETE, &path, None).await?;
        Ok(format!(
            "{name} is out of the sandbox\n{}",
            validation_text(&validation)
        ))
    }

    /// One line per connected account.
    pub async fn instagram_accounts(&self) -> anyhow::Result<String> {
        let answer = self.json(Method::GET, "/instagram/accounts", None).await?;
        let accounts = answer["accounts"].as_array().cloned().unwrap_or_default();
        if accounts.is_empty() {
            return Ok("no connected Instagram accounts".into());
        }
        Ok(accounts
            .iter()
            .map(account_line)
            .collect::<Vec<_>>()
            .join("\n"))
    }

    pub async fn instagram_connect(&self) -> anyhow::Result<String> {
        let answer = self.json(Method::POST, "/instagram/connect", None).await?;
        Ok(format!(
            "open this within 10 minutes, in a browser signed in to the Instagram account:\n{}",
            answer["authorize_url"].as_str().unwrap_or("")
        ))
    }

    pub async fn instagram_refresh(&self, ig_user_id: &str) -> anyhow::Result<String> {
        let path = format!("/instagram/accounts/{}/refresh", encoded(ig_user_id));
        Ok(account_line(&self.json(Method::POST, &path, None).await?))
    }

    pub async fn instagram_disconnect(&self, ig_user_id: &str) -> anyhow::Result<String> {
        let path = format!("/instagram/accounts/{}", encoded(ig_user_id));
        self.call(Method::DELETE, &path, None).await?;
        Ok(format!("{ig_user_id} is disconnected"))
    }

    /// Opens a trial chat with the sandbox (`options`: connector, language, at).
    pub async fn open_trial(&self, options: Value) -> anyhow::Result<TrialStarted> {
        let answer = self.json(Method::POST, "/trials", Some(options)).await?;
        Ok(serde_json::from_value(answer)?)
    }

    pub async fn trial_say(
        &self,
        id: &str,
        text: &str,
        payload: Option<String>,
    ) -> anyhow::Result<TurnReport> {
        let path = format!("/trials/{}/messages", encoded(id));
        let said = json!({"text": text, "payload": payload});
        Ok(serde_json::from_value(
            self.json(Method::POST, &path, Some(said)).await?,
        )?)
    }

    pub async fn trial_timers(&self, id: &str, skip: bool) -> anyhow::Result<Vec<TurnReport>> {
        let path = format!("/trials/{}/timers", encoded(id));
        let request = json!({ "skip": skip });
        Ok(serde_json::from_value(
            self.json(Method::POST, &path, Some(request)).await?,
        )?)
    }

    pub async fn close_trial(&self, id: &str) -> anyhow::Result<()> {
        let path = format!("/trials/{}", encoded(id));
        self.call(Method::DELETE, &path, None).await?;
        Ok(())
    }

    pub async fn history(&self) -> anyhow::Result<String> {
        let answer = self.json(Method::GET, "/versions", None).await?;
        let lines: Vec<String> = answer["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{}{:>4}  {}  by {}  {}",
                    if v["production"] == true { "*" } else { " " },
                    v["number"].as_u64().unwrap_or(0),
                    when(v["applied_at_ms"].as_u64().unwrap_or(0)),
                    v["applied_by"].as_str().unwrap_or(""),
                    v["comment"].as_str().unwrap_or("")
                )
            })
            .collect();
        Ok(lines.join("\n"))
    }
}

/// A path segment, percent-encoded.
fn encoded(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// `@shop (1784...)  connected  token until 2027-02-04 ...`
fn account_line(account: &Value) -> String {
    let status = &account["status"];
    let state = match status["state"].as_str() {
        Some("connected") => "connected".to_string(),
        _ => format!(
            "reconnect needed: {}",
            status["reason"].as_str().unwrap_or("")
        ),
    };
    format!(
        "@{} ({})  {state}  token until {}",
        account["username"].as_str().unwrap_or(""),
        account["ig_user_id"].as_str().unwrap_or(""),
        when(account["token_expires_at_ms"].as_u64().unwrap_or(0))
    )
}

fn when(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// The API's error shape as lines: the message, then each issue.
fn refusal_text(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return body.trim().to_string();
    };
    let error = &value["error"];
    let mut text = format!(
        "{} ({})",
        error["message"].as_str().unwrap_or(body),
        error["code"].as_str().unwrap_or("?")
    );
    for issue in error["issues"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n  error: {}: {}",
            issue["path"].as_str().unwrap_or(""),
            issue["message"].as_str().unwrap_or("")
        ));
    }
    text
}

fn validation_text(validation: &Value) -> String {
    let mut lines = vec![if validation["valid"] == true {
        "the sandbox is valid".to_string()
    } else {
        "the sandbox was saved but does not validate yet:".to_string()
    }];
    for (kind, list) in [("error", "errors"), ("warning", "warnings")] {
        for issue in validation[list].as_array().into_iter().flatten() {
            lines.push(format!(
                "  {kind}: {}: {}",
                issue["path"].as_str().unwrap_or(""),
                issue["message"].as_str().unwrap_or("")
            ));
        }
    }
    lines.join("\n")
}

/// `+ queues.sales`, `- terminates.old`, `~ decision_trees.menu` and, under
/// a changed entity, each path with its old and new values.
fn diff_text(answer: &Value) -> String {
    let changes = answer["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        return format!("no changes from {} to {}", answer["from"], answer["to"]);
    }
    let mut lines = Vec::new();
    for change in changes {
        let sign = match change["change"].as_str() {
            Some("added") => "+",
            Some("removed") => "-",
            _ => "~",
        };
        lines.push(format!(
            "{sign} {}.{}",
            change["section"].as_str().unwrap_or(""),
            change["name"].as_str().unwrap_or("")
        ));
        for field in change["fields"].as_array().into_iter().flatten() {
            let shown = |v: &Value| {
                if v.is_null() {
                    "(none)".into()
                } else {
                    v.to_string()
                }
            };
            lines.push(format!(
                "    {}: {} -> {}",
                field["path"].as_str().unwrap_or(""),
                shown(&field["old"]),
                shown(&field["new"])
            ));
        }
    }
    lines.join("\n")
}

fn applied_text(answer: &Value) -> String {
    let version = &answer["version"];
    let live = if answer["live"] == true {
        "new sessions run on it now"
    } else {
        "it serves after the server restarts"
    };
    format!("version {} is production; {live}", version["number"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_list_every_issue() {
        let body = r#"{"error":{"code":"invalid_flow","message":"the flow does not validate","issues":[{"path":"connectors.dm.next","message":"no queue `x`"}]}}"#;
        assert_eq!(
            refusal_text(body),
            "the flow does not validate (invalid_flow)\n  error: connectors.dm.next: no queue `x`"
        );
    }

    #[test]
    fn a_diff_reads_as_signed_lines() {
        let answer = json!({"from": "production", "to": "sandbox", "changes": [
            {"section": "queues", "name": "vip", "change": "added"},
            {"section": "queues", "name": "sales", "change": "changed",
             "fields": [{"path": "queues.sales.priority", "old": 1, "new": 5}]},
        ]});
        assert_eq!(
            diff_text(&answer),
            "+ queues.vip\n~ queues.sales\n    queues.sales.priority: 1 -> 5"
        );
    }
}
