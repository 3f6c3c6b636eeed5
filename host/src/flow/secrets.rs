//! Whether each account of a flow can work with the secrets this process
//! has: checked at start-up, so an unset `env:` variable stops the server
//! with its name instead of letting it refuse every webhook in silence.

use super::model::{Account, Flow};

/// One problem per unusable secret, each naming its field (and the
/// environment variable, for `env:` secrets).
pub fn unusable_secrets(flow: &Flow) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, account) in &flow.accounts {
        let mut check = |field: &str, value: &Option<String>, needed_for: Option<&str>| {
            if let Some(problem) = problem(key, field, value, needed_for) {
                problems.push(problem);
            }
        };
        match account {
            Account::Instagram {
                access_token,
                app_secret,
                verify_token,
                ..
            } => {
                check(
                    "app_secret",
                    app_secret,
                    Some("no webhook could be verified"),
                );
                check("access_token", access_token, Some("no reply could be sent"));
                check("verify_token", verify_token, None);
            }
            Account::Connexease {
                username,
                password,
                webhook_secret,
                api_token,
                ..
            } => {
                check(
                    "webhook_secret",
                    webhook_secret,
                    Some("no webhook could be verified"),
                );
                check("api_token", api_token, None);
                check("username", username, None);
                check("password", password, None);
                let login = username.is_some() && password.is_some();
                if api_token.is_none() && !login {
                    problems.push(format!(
                        "accounts.{key}: neither api_token nor username and password is set, so no reply could be sent"
                    ));
                }
            }
        }
    }
    problems
}

/// What is wrong with one secret: an `env:` variable that is unset or
/// empty, or (when `needed_for` says why it is needed) no value at all.
fn problem(
    key: &str,
    field: &str,
    value: &Option<String>,
    needed_for: Option<&str>,
) -> Option<String> {
    match value.as_deref() {
        None => needed_for.map(|why| format!("accounts.{key}.{field} is not set, so {why}")),
        Some(value) => {
            let name = value.strip_prefix("env:")?;
            let set = std::env::var(name).is_ok_and(|v| !v.is_empty());
            (!set).then(|| {
                format!("accounts.{key}.{field}: the environment variable {name} is not set")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unset_variable_and_missing_secret_is_named() {
        let flow = crate::flow::parse(
            r#"
accounts:
  shop:
    channel: instagram
    ig_user_id: "1"
    app_secret: env:FLOWHOST_TEST_SURELY_UNSET_SECRET
    verify_token: env:FLOWHOST_TEST_SURELY_UNSET_VERIFY
  cx:
    channel: connexease
    channel_id: c1
    webhook_secret: s3cret
    username: me
"#,
        )
        .unwrap();
        let problems = unusable_secrets(&flow);
        assert_eq!(
            problems,
            [
                "accounts.cx: neither api_token nor username and password is set, so no reply could be sent",
                "accounts.shop.app_secret: the environment variable FLOWHOST_TEST_SURELY_UNSET_SECRET is not set",
                "accounts.shop.access_token is not set, so no reply could be sent",
                "accounts.shop.verify_token: the environment variable FLOWHOST_TEST_SURELY_UNSET_VERIFY is not set",
            ]
        );
    }
}
