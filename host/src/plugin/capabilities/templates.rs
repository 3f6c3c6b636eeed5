//! `templates`: minijinja rendering against the call's context, in the
//! template sandbox: the output stops at the plugin's output limit, and the
//! work at the sandbox's memory cap and time budget.

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
        let Some(sandbox) = self.plugin.templates.clone() else {
            return Ok(Err(HostError::Failed(
                "templates are not available here".into(),
            )));
        };
        // The rendering's own memory and time are the sandbox's; the time
        // it takes is charged to this call as host time.
        let started = self.begin_host_time();
        let context = self.scope.context.template_context();
        let rendered = crate::templates::render(&sandbox, &template, &context, limit).await;
        self.charge_host_time(started);
        Ok(rendered.map_err(|e| HostError::Failed(e.0)))
    }
}
