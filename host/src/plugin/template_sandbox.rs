//! The template sandbox: every template flowhost renders (a flow's texts,
//! action configurations and conditions, and the plugins' own
//! `templates.render`), unless it is direct (`templates::direct`: it
//! cannot build more than it reads), runs inside a component of minijinja
//! (`host/template-sandbox`) under its own memory cap and time budget. A
//! template that builds a gigabyte string fails there with `out of memory`;
//! the host's memory never sees it.
//!
//! Calls take their own pool slots (a plugin that is rendering already
//! holds one of the plugin slots, so sharing them could deadlock).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;

use super::cache::ArtifactCache;
use super::state::{CallClock, CallScope, CallState, PluginShared};
use super::{CallError, HttpGate, Limits, new_store, settle, watched};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/template_sandbox.rs"));
}

wasmtime::component::bindgen!({
    path: "template-sandbox/wit",
    world: "sandbox",
    exports: { default: async },
});

/// Renders running at once (they are short and CPU-bound).
pub const SANDBOX_SLOTS: u32 = 4;

/// Memory of one render: far more than any message template needs.
pub const SANDBOX_MEMORY_BYTES: usize = 32 * 1024 * 1024;

/// A template that failed to parse, render or stay within its bounds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

pub struct TemplateSandbox {
    engine: Engine,
    pre: SandboxPre<CallState>,
    slots: Semaphore,
    shared: Arc<PluginShared>,
}

impl TemplateSandbox {
    pub(crate) fn new(
        engine: &Engine,
        linker: &Linker<CallState>,
        cache: &ArtifactCache,
    ) -> anyhow::Result<Self> {
        let (_, bytes) = generated::COMPONENTS
            .first()
            .ok_or_else(|| anyhow::anyhow!("the template sandbox was not built"))?;
        let (component, _) = cache
            .load(engine, bytes)
            .map_err(|e| anyhow::anyhow!("compiling the template sandbox: {e}"))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(SandboxPre::new)
            .map_err(|e| anyhow::anyhow!("linking the template sandbox: {e:#}"))?;
        let limits = Limits {
            guest_time_ms: 200,
            call_timeout_ms: 5_000,
            memory_bytes: SANDBOX_MEMORY_BYTES,
            ..Limits::default()
        };
        let shared = Arc::new(PluginShared {
            name: "templates".into(),
            capabilities: Vec::new(),
            limits,
            http: HttpGate::new("templates", &Default::default())
                .map_err(|p| anyhow::anyhow!("{p}"))?,
            templates: None,
        });
        Ok(TemplateSandbox {
            engine: engine.clone(),
            pre,
            slots: Semaphore::new(SANDBOX_SLOTS as usize),
            shared,
        })
    }

    /// Renders `template` against `context`; output past `max_bytes` is an
    /// error, as is running out of the sandbox's memory or time.
    pub async fn render(
        &self,
        template: &str,
        context: &Value,
        max_bytes: usize,
    ) -> Result<String, TemplateError> {
        let context = context.to_string();
        let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
        self.call(async |pre, store| {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance
                .call_render(&mut *store, template, &context, max_bytes)
                .await
        })
        .await
    }

    /// Evaluates an expression against `context` into JSON.
    pub async fn evaluate(
        &self,
        expression: &str,
        context: &Value,
        max_bytes: usize,
    ) -> Result<Value, TemplateError> {
        let context = context.to_string();
        let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
        let json = self
            .call(async |pre, store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .call_evaluate(&mut *store, expression, &context, max_bytes)
                    .await
            })
            .await?;
        serde_json::from_str(&json).map_err(|e| TemplateError(e.to_string()))
    }

    async fn call(
        &self,
        run: impl AsyncFnOnce(
            &SandboxPre<CallState>,
            &mut wasmtime::Store<CallState>,
        ) -> wasmtime::Result<Result<String, String>>,
    ) -> Result<String, TemplateError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| TemplateError(e.to_string()))?;
        let mut store = new_store(&self.engine, self.shared.clone(), CallScope::empty());
        let limit = Duration::from_millis(self.shared.limits.call_timeout_ms);
        let (times, budget) = watched(&store);
        let finished = CallClock::watch(times, budget, limit, run(&self.pre, &mut store)).await;
        match settle(finished, limit, &store) {
            Ok(result) => result.map_err(TemplateError),
            Err(error) => Err(TemplateError(describe(error))),
        }
    }
}

/// Why the sandbox stopped a template, in a template author's words.
fn describe(error: CallError) -> String {
    match error {
        CallError::OutOfMemory { limit } => format!(
            "the template needed more than {} MiB of memory and was stopped",
            limit / (1024 * 1024)
        ),
        CallError::Timeout { budget } | CallError::CallTimeout { limit: budget } => {
            format!("the template ran longer than {budget:?} and was stopped")
        }
        other => format!("the template sandbox failed: {other}"),
    }
}
