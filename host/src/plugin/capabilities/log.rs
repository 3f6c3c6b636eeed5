//! `log`: guest log lines into the host's tracing output, control
//! characters escaped so a guest cannot forge the host's own lines.

use std::fmt::Write;

use super::super::bindings::v0_1_0::flowhost::plugin::log::{Host, Level};
use super::super::state::CallState;
use super::super::types::Capability;
use super::{escape_controls, truncate};

impl Host for CallState {
    async fn log(
        &mut self,
        level: Level,
        mut message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let limits = &self.plugin.limits;
        if self.require(Capability::Log).is_err() || self.scope.log_lines >= limits.max_log_lines {
            self.scope.effects.dropped_log_lines += 1;
            return Ok(());
        }
        self.scope.log_lines += 1;
        let mut rendered = String::new();
        for (key, value) in fields {
            let _ = write!(
                rendered,
                "{}={} ",
                escape_controls(&key),
                escape_controls(&value)
            );
        }
        truncate(&mut message, limits.max_log_line_bytes);
        truncate(&mut rendered, limits.max_log_line_bytes);
        let message = escape_controls(&message);
        let plugin = self.plugin.name.as_str();
        let conversation = self.scope.context.conversation.id.as_str();
        let fields = rendered.trim_end();
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "flowhost::plugin", $level, plugin, conversation, fields, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}
