//! Bearer-token checks for the admin (and later agent) APIs.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;

/// Rejects requests without `Authorization: Bearer <admin token>`. Tokens
/// are compared as SHA-256 digests in constant time.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(&request) {
        Some(token) if same_secret(token, &state.admin_token) => next.run(request).await,
        Some(_) => (StatusCode::FORBIDDEN, "wrong admin token").into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the admin API needs `Authorization: Bearer <admin token>`",
        )
            .into_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(request: &Request) -> Option<&str> {
    bearer_of(request.headers())
}

/// The token of an `Authorization: Bearer <token>` header among `headers`.
pub fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Constant-time comparison of two secrets of any length.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_by_value() {
        assert!(super::same_secret("abc", "abc"));
        assert!(!super::same_secret("abc", "abd"));
        assert!(!super::same_secret("abc", "abcd"));
    }
}
