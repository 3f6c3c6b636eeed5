//! A customer's side of Instagram: signed webhook deliveries, as Meta
//! posts them.

use flowhost::channels::instagram::signature::sign;
use serde_json::{Value, json};

/// Posts one messaging item from `customer` to the account `ig_id`,
/// written at `written_ms`, signed with the app's `secret`; the status.
pub async fn deliver_message(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    ig_id: &str,
    customer: &str,
    message: Value,
    written_ms: u64,
) -> u16 {
    let body = json!({"object": "instagram", "entry": [{"id": ig_id, "time": written_ms, "messaging": [
        {"sender": {"id": customer}, "recipient": {"id": ig_id}, "timestamp": written_ms, "message": message}
    ]}]})
    .to_string();
    http.post(format!("{base}/webhooks/instagram"))
        .header(
            "X-Hub-Signature-256",
            sign(secret.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("the webhook is delivered")
        .status()
        .as_u16()
}
