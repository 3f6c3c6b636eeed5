//! `http`: outbound HTTP through a gate that enforces the plugin's policy.
//!
//! - only hosts on the plugin's allow list (`api.example.com`,
//!   `*.example.com`, or `*` for any public host);
//! - the address is checked after DNS resolution (a public name that
//!   resolves to 10.0.0.1 is refused), and again on every redirect;
//! - loopback, private, link-local, CGNAT and other special addresses are
//!   refused unless the plugin's policy allows private networks;
//! - the guest cannot set `Host` (or framing headers), and reqwest drops
//!   `Authorization` and cookies when a redirect leaves the origin;
//! - no proxy from the environment, a time budget per request, a cap on the
//!   response body, and a cap on requests per call.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};

use super::super::bindings::v0_1_0::flowhost::plugin::http::{
    Host, HttpError, Method, Request, Response,
};
use super::super::state::CallState;
use super::super::types::Capability;

/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// Headers the host sets itself; a guest that sends one is refused.
const RESERVED_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// Where a plugin may send HTTP requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpPolicy {
    /// Host names: `api.example.com`, `*.example.com` (subdomains only), or
    /// `*` (any host with a public address).
    pub allowed_hosts: Vec<String>,
    /// Allow loopback and private addresses (tests, on-premises APIs).
    pub allow_private_networks: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Subdomains(String),
}

impl HostPattern {
    fn parse(pattern: &str) -> Option<Self> {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*" {
            return Some(HostPattern::Any);
        }
        let (subdomains, name) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, pattern),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        match (valid || name.parse::<IpAddr>().is_ok(), subdomains) {
            (false, _) => None,
            (true, true) => Some(HostPattern::Subdomains(format!(".{name}"))),
            (true, false) => Some(HostPattern::Exact(name)),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
        }
    }
}

/// The policy in its checked form, shared by the client's resolver and
/// redirect hook.
#[derive(Debug)]
struct Gatekeeper {
    plugin: String,
    patterns: Vec<HostPattern>,
    allow_private: bool,
}

/// Why the gate refused a request; found again in reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GateRefusal(String);

impl Gatekeeper {
    fn check_url(&self, url: &reqwest::Url) -> Result<(), GateRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(GateRefusal(format!(
                "scheme `{}` is not allowed",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(GateRefusal("the URL has no host".into())),
        };
        if !self.patterns.iter().any(|p| p.matches(&host)) {
            return Err(GateRefusal(format!(
                "host `{host}` is not in the allowed hosts of plugin `{}`",
                self.plugin
            )));
        }
        // An address written in the URL never reaches the resolver.
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            self.check_address(&host, ip)?;
        }
        Ok(())
    }

    fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), GateRefusal> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(GateRefusal(format!(
                "`{host}` resolves to {ip}, a loopback or private address, which plugin `{}` may not reach",
                self.plugin
            )))
        }
    }
}

/// Whether `ip` is an ordinary public unicast address, after IANA's IPv4
/// and IPv6 special-purpose registries. IPv6 forms that carry an IPv4
/// address (mapped, compatible, translated, NAT64, 6to4) are judged by the
/// address they carry; Teredo and local-use NAT64 are never public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local NAT64 64:ff9b:1::/48
                || (s[0] == 0x2001 && s[1] == 0x0000) // Teredo 2001::/32
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
                || (s[0] == 0x3fff && s[1] & 0xf000 == 0) // documentation 3fff::/20
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID 2001:10::/28
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0020) // ORCHIDv2 2001:20::/28
                || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking 2001:2::/48
                || s[0] == 0x5f00) // SRv6 SIDs 5f00::/16
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF assignments 192.0.0/24 (192.0.0.192: a metadata address)
        || (a == 192 && b == 88 && c == 99) // 6to4 relays 192.88.99/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms
/// that carry one: mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:aabb:ccdd::`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let last =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(last(hi, lo)),
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(last(hi, lo)),
        // `::` and `::1` are themselves, not IPv4-compatible addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(last(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(last(hi, lo)),
        [0x2002, hi, lo, ..] => Some(last(hi, lo)),
        _ => None,
    }
}

/// Resolves names with the system resolver, then drops every address the
/// plugin may not reach; a name left with none is refused.
struct GuardedResolver(Arc<Gatekeeper>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let gate = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match gate.check_address(&host, addr.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let error =
                    refusal.unwrap_or_else(|| GateRefusal(format!("`{host}` has no address")));
                return Err(Box::new(error) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// One plugin's HTTP client and policy.
pub(crate) struct HttpGate {
    client: reqwest::Client,
    gate: Arc<Gatekeeper>,
}

impl HttpGate {
    /// Builds the gate; `Err` names the first pattern that does not parse.
    pub fn new(plugin: &str, policy: &HttpPolicy) -> Result<Self, String> {
        let patterns = policy
            .allowed_hosts
            .iter()
            .map(|p| HostPattern::parse(p).ok_or_else(|| p.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let gate = Arc::new(Gatekeeper {
            plugin: plugin.to_string(),
            patterns,
            allow_private: policy.allow_private_networks,
        });
        // Redirects are followed by `send` itself, hop by hop, so each hop
        // is checked and a hop to another origin carries nothing of the
        // guest's; no Referer ever tells a server where the guest came from.
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(gate.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .user_agent(concat!("flowhost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpGate { client, gate })
    }

    /// Sends one request under the gate's policy and the given bounds,
    /// following at most [`MAX_REDIRECTS`] redirects. A hop to another
    /// origin drops the guest's headers; one that would carry the guest's
    /// body there (307, 308) is not followed: the guest gets the redirect.
    pub async fn send(
        &self,
        request: Request,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response, HttpError> {
        let mut url = reqwest::Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("URL {:?}: {e}", request.url)))?;
        let mut method = method(request.method);
        let mut headers = guest_headers(&request.headers)?;
        let mut body = request.body;
        let exchange = async {
            for hop in 0..=MAX_REDIRECTS {
                self.gate
                    .check_url(&url)
                    .map_err(|e| HttpError::Denied(e.0))?;
                let mut builder = self
                    .client
                    .request(method.clone(), url.clone())
                    .headers(headers.clone());
                if let Some(body) = &body {
                    builder = builder.body(body.clone());
                }
                let response = builder.send().await.map_err(classify)?;
                let Some(next) = redirect_target(&response, &url) else {
                    return read_response(response, max_body).await;
                };
                if hop == MAX_REDIRECTS {
                    return Err(HttpError::Denied(format!(
                        "more than {MAX_REDIRECTS} redirects"
                    )));
                }
                let status = response.status().as_u16();
                if matches!(status, 301..=303) && method != reqwest::Method::HEAD {
                    // As browsers do: the next hop is a GET without a body.
                    method = reqwest::Method::GET;
                    body = None;
                }
                if next.origin() != url.origin() {
                    if body.is_some() {
                        return read_response(response, max_body).await;
                    }
                    headers.clear();
                }
                url = next;
            }
            unreachable!("the last hop returns")
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }
}

/// The guest's headers, refusing the ones the host sets itself.
fn guest_headers(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, HttpError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(HttpError::InvalidRequest(format!(
                "header `{name}` is set by the host, not the plugin"
            )));
        }
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| HttpError::InvalidRequest(format!("header name {name:?}: {e}")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|e| HttpError::InvalidRequest(format!("header `{name}`: {e}")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Where a redirect response points, resolved against `url`.
fn redirect_target(response: &reqwest::Response, url: &reqwest::Url) -> Option<reqwest::Url> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION)?;
    url.join(location.to_str().ok()?).ok()
}

/// Reads a response whole, refusing a body past `max_body`.
async fn read_response(
    mut response: reqwest::Response,
    max_body: usize,
) -> Result<Response, HttpError> {
    if response
        .content_length()
        .is_some_and(|len| len > max_body as u64)
    {
        return Err(HttpError::TooLarge(max_body as u64));
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > max_body {
            return Err(HttpError::TooLarge(max_body as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

/// Maps a reqwest failure onto the contract's error, finding the gate's
/// own refusals (from the resolver or the redirect hook) in the chain.
fn classify(error: reqwest::Error) -> HttpError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(inner) = source {
        if let Some(refusal) = inner.downcast_ref::<GateRefusal>() {
            return HttpError::Denied(refusal.0.clone());
        }
        source = inner.source();
    }
    if error.is_timeout() {
        return HttpError::Timeout;
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    HttpError::Connection(text)
}

impl Host for CallState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        if let Err(denied) = self.require(Capability::Http) {
            return Ok(Err(HttpError::Denied(super::host_error_text(denied))));
        }
        let limits = &self.plugin.limits;
        if self.scope.http_requests >= limits.max_http_requests {
            return Ok(Err(HttpError::Denied(format!(
                "more than {} HTTP requests in one call",
                limits.max_http_requests
            ))));
        }
        self.scope.http_requests += 1;
        let started = self.begin_host_time();
        let plugin = self.plugin.clone();
        let limits = &plugin.limits;
        let result = plugin
            .http
            .send(
                request,
                limits.http_timeout(),
                limits.http_max_response_bytes,
            )
            .await;
        self.charge_host_time(started);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(patterns: &[&str], allow_private: bool) -> Gatekeeper {
        Gatekeeper {
            plugin: "t".into(),
            patterns: patterns
                .iter()
                .map(|p| HostPattern::parse(p).unwrap())
                .collect(),
            allow_private,
        }
    }

    fn url(text: &str) -> reqwest::Url {
        reqwest::Url::parse(text).unwrap()
    }

    #[test]
    fn patterns_match_exact_hosts_and_subdomains_only() {
        let g = gate(&["api.shop.example", "*.cdn.example"], false);
        assert!(g.check_url(&url("https://api.shop.example/x")).is_ok());
        assert!(g.check_url(&url("https://API.shop.example/x")).is_ok());
        assert!(g.check_url(&url("https://evil.example/x")).is_err());
        assert!(g.check_url(&url("https://shop.example/x")).is_err());
        assert!(g.check_url(&url("https://img.cdn.example/x")).is_ok());
        assert!(g.check_url(&url("https://cdn.example/x")).is_err());
        assert!(g.check_url(&url("https://xcdn.example/x")).is_err());
        assert!(g.check_url(&url("ftp://api.shop.example/x")).is_err());
    }

    #[test]
    fn address_literals_are_checked_without_dns() {
        let g = gate(&["*"], false);
        assert!(g.check_url(&url("http://127.0.0.1:8080/")).is_err());
        assert!(
            g.check_url(&url("http://169.254.169.254/latest/meta-data"))
                .is_err()
        );
        assert!(g.check_url(&url("http://[::1]/")).is_err());
        assert!(g.check_url(&url("http://10.1.2.3/")).is_err());
        assert!(g.check_url(&url("http://93.184.216.34/")).is_ok());
        assert!(
            gate(&["127.0.0.1"], true)
                .check_url(&url("http://127.0.0.1:9/"))
                .is_ok()
        );
    }

    #[test]
    fn special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            // Issue 8, item 9: IPv6 forms that carry a private IPv4
            // address, and the special-purpose ranges.
            "::127.0.0.1",
            "::ffff:0:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
            "2001:db8::1",
            "192.0.0.192",
            "192.0.0.8",
            "192.88.99.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(HostPattern::parse("exa mple.com").is_none());
        assert!(HostPattern::parse("https://x.com").is_none());
        assert!(HostPattern::parse("").is_none());
    }
}
