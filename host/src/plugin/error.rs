//! Typed failures of loading and calling plugins. A flow routes on
//! [`CallError::code`]; nothing a guest does turns into a host panic.

use std::time::Duration;

/// Why a component could not be loaded as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{plugin}`: not a valid component: {reason}")]
    InvalidComponent { plugin: String, reason: String },
    #[error(
        "plugin `{plugin}` was built for flowhost:plugin@{found}; this host supports {}",
        supported.iter().map(|v| format!("flowhost:plugin@{v}")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedContract {
        plugin: String,
        found: String,
        supported: Vec<String>,
    },
    #[error(
        "plugin `{plugin}` exports none of flowhost:plugin/action-plugin, flowhost:plugin/chatbot-adapter, flowhost:plugin/translator-plugin (it exports: {exports})"
    )]
    NotAPlugin { plugin: String, exports: String },
    #[error("plugin `{plugin}` needs an import this host does not provide: {reason}")]
    Link { plugin: String, reason: String },
    #[error("plugin `{plugin}`: describe failed: {source}")]
    Describe {
        plugin: String,
        #[source]
        source: Box<CallError>,
    },
    #[error("plugin `{plugin}`: describe returned {reason}")]
    BadDescription { plugin: String, reason: String },
    #[error("plugin `{plugin}`: compiled artifact cache at {path}: {reason}")]
    Cache {
        plugin: String,
        path: String,
        reason: String,
    },
    #[error("plugin `{plugin}`: allowed host {pattern:?} is not a host name, `*.domain` or `*`")]
    BadAllowedHost { plugin: String, pattern: String },
}

/// Why one call into a plugin failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The guest's code ran past its time budget.
    #[error("plugin ran longer than its budget of {} ms", .budget.as_millis())]
    Timeout { budget: Duration },
    /// The whole call, host calls included, ran past its hard cap.
    #[error("plugin call did not finish within {} ms", .limit.as_millis())]
    CallTimeout { limit: Duration },
    /// The guest asked for more linear memory than it may have.
    #[error("plugin ran out of memory (limit {limit} bytes)")]
    OutOfMemory { limit: usize },
    /// The guest recursed past the stack limit.
    #[error("plugin overflowed its stack")]
    StackOverflow,
    /// The guest panicked; the message is the tail of its stderr.
    #[error("plugin panicked: {message}")]
    Panic { message: String },
    /// Any other trap (out-of-bounds access, unreachable, ...).
    #[error("plugin trapped: {message}")]
    Trap { message: String },
    /// The context and configuration are larger than the plugin accepts.
    #[error("input of {size} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    /// The guest returned more than it may.
    #[error("plugin output of {size} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge { size: usize, limit: usize },
    /// The guest returned something malformed (a result that is not JSON).
    #[error("plugin returned invalid output: {reason}")]
    InvalidOutput { reason: String },
    /// The guest said its configuration is wrong.
    #[error("invalid configuration: {reason}")]
    InvalidConfig { reason: String },
    /// The guest failed because a host capability refused or failed.
    #[error("host capability refused or failed: {reason}")]
    Capability { reason: String },
    /// The guest failed on an HTTP request.
    #[error("HTTP request failed: {reason}")]
    Http { reason: String },
    /// The guest reported a business failure.
    #[error("action failed: {reason}")]
    Failed { reason: String },
    /// A chatbot adapter says the bot cannot be reached.
    #[error("chatbot unavailable: {reason}")]
    BotUnavailable { reason: String },
    /// A chatbot adapter says the bot broke its protocol.
    #[error("chatbot protocol error: {reason}")]
    BotProtocol { reason: String },
    /// A translator cannot translate between these languages.
    #[error("translation unsupported: {reason}")]
    UnsupportedLanguages { reason: String },
    /// A translator's provider cannot be reached.
    #[error("translator unavailable: {reason}")]
    TranslatorUnavailable { reason: String },
    /// The plugin is not of the kind the caller asked for.
    #[error("plugin `{plugin}` is not an {expected} plugin")]
    WrongKind {
        plugin: String,
        expected: &'static str,
    },
    /// The host itself failed to set up the call.
    #[error("host error: {reason}")]
    Host { reason: String },
}

impl CallError {
    /// A stable, short name of the failure for flows to route on and for
    /// metrics: `timeout`, `out_of_memory`, `panic`, `http`, ...
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Timeout { .. } | CallError::CallTimeout { .. } => "timeout",
            CallError::OutOfMemory { .. } => "out_of_memory",
            CallError::StackOverflow => "stack_overflow",
            CallError::Panic { .. } => "panic",
            CallError::Trap { .. } => "trap",
            CallError::InputTooLarge { .. } => "input_too_large",
            CallError::OutputTooLarge { .. } => "output_too_large",
            CallError::InvalidOutput { .. } => "invalid_output",
            CallError::InvalidConfig { .. } => "invalid_config",
            CallError::Capability { .. } => "capability",
            CallError::Http { .. } => "http",
            CallError::Failed { .. } => "failed",
            CallError::BotUnavailable { .. } => "bot_unavailable",
            CallError::BotProtocol { .. } => "bot_protocol",
            CallError::UnsupportedLanguages { .. } => "unsupported_languages",
            CallError::TranslatorUnavailable { .. } => "translator_unavailable",
            CallError::WrongKind { .. } => "wrong_kind",
            CallError::Host { .. } => "host",
        }
    }
}
