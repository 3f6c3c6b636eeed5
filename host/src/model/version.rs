//! Published flows: every production flow is a numbered, immutable
//! version; the sandbox is the one editable draft beside them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One published flow. Never changed once written: a rollback publishes
/// an old document again as a new version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowVersion {
    /// 1, 2, 3, ... in the order they were published.
    pub number: u64,
    /// The flow document, normalised (every default written out), as JSON.
    pub document: Value,
    /// Who published it: `admin`, or `file` for a flow read from the
    /// configuration at start.
    pub applied_by: String,
    pub applied_at_ms: u64,
    pub comment: String,
    pub origin: VersionOrigin,
    /// The uploaded plugins this version runs with: declared name ->
    /// SHA-256 of the component. Built-ins and the plugin directory's are
    /// the server's own and not pinned.
    #[serde(default)]
    pub plugins: BTreeMap<String, String>,
}

/// Where a version came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum VersionOrigin {
    /// The sandbox, applied through the admin API.
    Sandbox,
    /// The `flow:` file of the configuration, read at start; `sha256` of
    /// its text tells an edited file from the one already imported.
    File { path: String, sha256: String },
    /// An older version published again.
    Rollback { to: u64 },
}

/// The draft admins edit before they apply it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sandbox {
    /// The flow document as JSON; it parses as a flow (it is checked when
    /// written) but may not validate yet.
    pub document: Value,
    /// The production version it was copied from or last applied as: an
    /// apply is refused if production moved on since.
    pub based_on: u64,
    pub updated_at_ms: u64,
    /// Customers (their channel ids) whose new sessions run on the sandbox
    /// rather than production, on live traffic, while it validates.
    #[serde(default)]
    pub test_contacts: Vec<String>,
    /// Uploaded plugins the sandbox runs with (name -> SHA-256); an upload
    /// lands here and reaches production only when the sandbox is applied.
    #[serde(default)]
    pub plugins: BTreeMap<String, String>,
}

/// A component uploaded through the admin API, stored by content hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadedPlugin {
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// The name the plugin declares (`describe`); settings are found by it.
    pub name: String,
    /// `action`, `chatbot` or `translator`.
    pub kind: String,
    /// The plugin's own version, as it declares it.
    pub version: String,
    /// The `flowhost:plugin` contract version it was built for.
    pub contract: String,
    pub size_bytes: u64,
    pub uploaded_at_ms: u64,
}
