//! Meta's "Instagram API with Instagram Login", as flowhost uses it to
//! connect an account: the authorization window's URL, the code exchanged
//! for a short-lived token, that token for a long-lived one (60 days), the
//! account's id and name, its webhook subscription, and the refresh of a
//! long-lived token. Every endpoint comes from configuration, so tests run
//! the whole flow against a stand-in.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `instagram_login:` in the server configuration: the Meta app that
/// connects accounts, and where Meta's endpoints are.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstagramLoginSettings {
    /// The Instagram app id (App Dashboard > Instagram > API setup with
    /// Instagram login).
    pub app_id: String,
    /// The Instagram app secret; `env:NAME` reads the environment.
    pub app_secret: Option<String>,
    /// Where Meta sends the admin back; unset: `<public_url>/admin/ui/instagram/callback`.
    /// It must be listed in the app's Business login settings.
    pub redirect_uri: Option<String>,
    pub authorize_url: String,
    pub token_url: String,
    pub graph_url: String,
    pub api_version: String,
    pub scopes: Vec<String>,
    /// The webhook fields each connected account is subscribed to.
    pub subscribed_fields: Vec<String>,
    /// A token is refreshed when it has fewer days than this left (Meta
    /// refreshes only tokens at least a day old).
    pub refresh_days_before_expiry: u64,
    /// How often tokens are checked for refresh.
    pub refresh_check_seconds: u64,
}

impl Default for InstagramLoginSettings {
    fn default() -> Self {
        InstagramLoginSettings {
            app_id: String::new(),
            app_secret: None,
            redirect_uri: None,
            authorize_url: "https://www.instagram.com/oauth/authorize".into(),
            token_url: "https://api.instagram.com/oauth/access_token".into(),
            graph_url: "https://graph.instagram.com".into(),
            api_version: "v23.0".into(),
            scopes: vec![
                "instagram_business_basic".into(),
                "instagram_business_manage_messages".into(),
            ],
            subscribed_fields: [
                "messages",
                "messaging_postbacks",
                "messaging_seen",
                "message_reactions",
            ]
            .map(String::from)
            .to_vec(),
            refresh_days_before_expiry: 10,
            refresh_check_seconds: 3600,
        }
    }
}

/// What Meta answered instead of what was asked: its error's code (190:
/// the token is no longer valid) and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Meta refused: {message}")]
pub struct MetaError {
    pub code: Option<i64>,
    pub message: String,
}

impl MetaError {
    /// Meta's error 190: the token expired or was revoked.
    pub fn token_rejected(&self) -> bool {
        self.code == Some(190)
    }

    fn unreachable(error: reqwest::Error) -> Self {
        MetaError {
            code: None,
            message: format!(
                "Meta did not answer: {}",
                crate::channels::cause_chain(&error)
            ),
        }
    }
}

/// A long-lived token and how long it lives.
#[derive(Debug, Clone)]
pub struct LongLivedToken {
    pub access_token: String,
    pub expires_in_seconds: u64,
}

/// The account a token belongs to.
#[derive(Debug, Clone)]
pub struct AccountInfo {
    /// The professional account's id, as webhooks name it.
    pub user_id: String,
    pub username: String,
}

/// The short-lived token a code is exchanged for.
#[derive(Debug, Clone)]
pub struct ShortLivedToken {
    pub access_token: String,
    pub permissions: Vec<String>,
}

/// The client of Meta's login and Graph endpoints for one app.
pub struct MetaLogin {
    settings: InstagramLoginSettings,
    app_secret: String,
    redirect_uri: String,
    http: reqwest::Client,
}

impl MetaLogin {
    pub fn new(settings: InstagramLoginSettings, app_secret: String, redirect_uri: String) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("flowhost/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        MetaLogin {
            settings,
            app_secret,
            redirect_uri,
            http,
        }
    }

    pub fn settings(&self) -> &InstagramLoginSettings {
        &self.settings
    }

    /// The authorization window an admin is sent to; `state` comes back
    /// with the code.
    pub fn authorize_url(&self, state: &str) -> String {
        let mut url = url::Url::parse(&self.settings.authorize_url).unwrap_or_else(|_| {
            url::Url::parse("https://www.instagram.com/oauth/authorize").expect("a URL")
        });
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.app_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &self.settings.scopes.join(","))
            .append_pair("state", state);
        url.to_string()
    }

    /// The authorization code for a short-lived token. Meta appends `#_`
    /// to the code in the redirect; it is not part of the code.
    pub async fn exchange_code(&self, code: &str) -> Result<ShortLivedToken, MetaError> {
        let code = code.trim_end_matches("#_");
        let form = [
            ("client_id", self.settings.app_id.as_str()),
            ("client_secret", self.app_secret.as_str()),
            ("grant_type", "authorization_code"),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code", code),
        ];
        let request = self.http.post(&self.settings.token_url).form(&form);
        let answer = answer(request).await?;
        // Meta answers `{"data": [{...}]}` (current documentation) or the
        // fields themselves (earlier versions).
        let fields = answer["data"].get(0).unwrap_or(&answer);
        Ok(ShortLivedToken {
            access_token: text(fields, "access_token")?,
            permissions: permissions(&fields["permissions"]),
        })
    }

    /// A short-lived token for a long-lived one.
    pub async fn long_lived(&self, short: &str) -> Result<LongLivedToken, MetaError> {
        let url = self.graph("access_token");
        let query = [
            ("grant_type", "ig_exchange_token"),
            ("client_secret", self.app_secret.as_str()),
            ("access_token", short),
        ];
        long_lived(answer(self.http.get(url).query(&query)).await?)
    }

    /// A long-lived token for a new one, valid 60 days from now.
    pub async fn refresh(&self, long: &str) -> Result<LongLivedToken, MetaError> {
        let url = self.graph("refresh_access_token");
        let query = [("grant_type", "ig_refresh_token"), ("access_token", long)];
        long_lived(answer(self.http.get(url).query(&query)).await?)
    }

    /// Whose token this is.
    pub async fn account(&self, token: &str) -> Result<AccountInfo, MetaError> {
        let url = self.graph(&format!("{}/me", self.settings.api_version));
        let query = [("fields", "user_id,username"), ("access_token", token)];
        let answer = answer(self.http.get(url).query(&query)).await?;
        Ok(AccountInfo {
            user_id: id_text(&answer["user_id"]).ok_or_else(|| missing("user_id"))?,
            username: text(&answer, "username")?,
        })
    }

    /// Subscribes the token's account to the app's webhook fields.
    pub async fn subscribe(&self, token: &str) -> Result<(), MetaError> {
        let url = self.graph(&format!("{}/me/subscribed_apps", self.settings.api_version));
        let fields = self.settings.subscribed_fields.join(",");
        let query = [
            ("subscribed_fields", fields.as_str()),
            ("access_token", token),
        ];
        let answer = answer(self.http.post(url).query(&query)).await?;
        match answer["success"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(MetaError {
                code: None,
                message: format!("the webhook subscription was not confirmed: {answer}"),
            }),
        }
    }

    fn graph(&self, path: &str) -> String {
        format!("{}/{path}", self.settings.graph_url.trim_end_matches('/'))
    }
}

/// The JSON of a 2xx answer, or Meta's error.
async fn answer(request: reqwest::RequestBuilder) -> Result<Value, MetaError> {
    let response = request.send().await.map_err(MetaError::unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(MetaError::unreachable)?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() && value.is_object() {
        return Ok(value);
    }
    let error = &value["error"];
    // The token endpoint answers `{"error_type", "code", "error_message"}`.
    let message = error["message"]
        .as_str()
        .or(value["error_message"].as_str())
        .map(String::from)
        .unwrap_or_else(|| {
            format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )
        });
    Err(MetaError {
        code: error["code"].as_i64().or(value["code"].as_i64()),
        message,
    })
}

fn long_lived(answer: Value) -> Result<LongLivedToken, MetaError> {
    Ok(LongLivedToken {
        access_token: text(&answer, "access_token")?,
        expires_in_seconds: answer["expires_in"]
            .as_u64()
            .ok_or_else(|| missing("expires_in"))?,
    })
}

fn text(value: &Value, field: &str) -> Result<String, MetaError> {
    value[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
        .ok_or_else(|| missing(field))
}

/// An id Meta may write as a number or a string.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Permissions as a comma list or an array.
fn permissions(value: &Value) -> Vec<String> {
    match value {
        Value::String(list) => list
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|p| p.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn missing(field: &str) -> MetaError {
    MetaError {
        code: None,
        message: format!("Meta's answer has no `{field}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_url_carries_the_app_the_scopes_and_the_state() {
        let settings = InstagramLoginSettings {
            app_id: "990602627938098".into(),
            ..Default::default()
        };
        let login = MetaLogin::new(
            settings,
            "s".into(),
            "https://flowhost.example/cb?x=1".into(),
        );
        let url = url::Url::parse(&login.authorize_url("st&te")).unwrap();
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(url.host_str(), Some("www.instagram.com"));
        assert_eq!(query["client_id"], "990602627938098");
        assert_eq!(query["redirect_uri"], "https://flowhost.example/cb?x=1");
        assert_eq!(query["response_type"], "code");
        assert_eq!(
            query["scope"],
            "instagram_business_basic,instagram_business_manage_messages"
        );
        assert_eq!(query["state"], "st&te");
    }

    #[test]
    fn ids_and_permissions_come_in_either_form() {
        assert_eq!(
            id_text(&serde_json::json!(17841405793187218u64)).unwrap(),
            "17841405793187218"
        );
        assert_eq!(id_text(&serde_json::json!("1784")).unwrap(), "1784");
        assert_eq!(permissions(&serde_json::json!("a, b")), ["a", "b"]);
        assert_eq!(permissions(&serde_json::json!(["a"])), ["a"]);
    }
}
