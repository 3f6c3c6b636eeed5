//! Published flows: every production flow is a numbered, immutable
//! version; the sandbox is the one editable draft beside them.

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
}
