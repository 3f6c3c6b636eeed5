//! `templates`: minijinja rendering against the call's context. Template
//! work is bounded by minijinja's fuel rather than a clock, so the same
//! template always succeeds or fails the same way.

use std::time::Instant;

use super::super::bindings::v0_1_0::flowhost::plugin::templates::Host;
use super::super::bindings::v0_1_0::flowhost::plugin::types::HostError;
use super::super::state::CallState;
use super::super::types::Capability;

impl Host for CallState {
    async fn render(&mut self, template: String) -> wasmtime::Result<Result<String, HostError>> {
        if let Err(denied) = self.require(Capability::Templates) {
            return Ok(Err(denied));
        }
        let limit = self.plugin.limits.max_output_bytes;
        if template.len() > limit {
            return Ok(Err(HostError::Invalid(format!(
                "template larger than {limit} bytes"
            ))));
        }
        let started = Instant::now();
        let rendered = crate::templates::render(&template, &self.scope.context.template_context());
        self.charge_host_time(started);
        Ok(match rendered {
            Ok(text) if text.len() > limit => Err(HostError::Failed(format!(
                "rendered text larger than {limit} bytes"
            ))),
            Ok(text) => Ok(text),
            Err(e) => Err(HostError::Failed(e.0)),
        })
    }
}
