//! Outbound HTTP (capability `http`).
//!
//! The host sends the request only to the plugin's allowed hosts, checks the
//! resolved address and every redirect, caps the response size and bounds the
//! time. There is no other way out of the sandbox.

#[cfg(target_arch = "wasm32")]
use crate::bindings::action::flowhost::plugin::http as host;
// Natively (a plugin's `cargo test`) calls go to the thread's mock host.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::http as host;

pub use crate::bindings::action::flowhost::plugin::http::{HttpError, Method, Request, Response};

/// Sends `request` and waits for the whole response.
pub fn send(request: Request) -> Result<Response, HttpError> {
    host::send(&request)
}

/// A request with no body.
pub fn request(method: Method, url: &str) -> Request {
    Request {
        method,
        url: url.to_string(),
        headers: Vec::new(),
        body: None,
    }
}

/// A `GET` request.
pub fn get(url: &str) -> Request {
    request(Method::Get, url)
}

/// A `POST` request with a JSON body and its content type.
pub fn post_json(url: &str, body: &serde_json::Value) -> Request {
    Request {
        method: Method::Post,
        url: url.to_string(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body.to_string().into_bytes()),
    }
}

/// The response body parsed as JSON.
pub fn json(response: &Response) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_slice(&response.body)
}

impl Method {
    /// The method's name as it goes on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => return Err(format!("unsupported HTTP method {other:?}")),
        })
    }
}

/// A plain sentence for an [`HttpError`] (its `Display` is the generated
/// debug form).
pub fn explain(error: &HttpError) -> String {
    match error {
        HttpError::Denied(why) => format!("request denied: {why}"),
        HttpError::InvalidRequest(why) => format!("invalid request: {why}"),
        HttpError::Timeout => "request timed out".into(),
        HttpError::TooLarge(cap) => format!("response larger than {cap} bytes"),
        HttpError::Connection(why) => format!("connection failed: {why}"),
    }
}
