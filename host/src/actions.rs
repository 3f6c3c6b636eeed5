//! Runs one decision-tree action for a conversation: loads the saved data,
//! renders the action's configuration, calls the plugin in its sandbox, and
//! commits what it changed only if it succeeded.

use std::sync::Arc;

use serde_json::Value;

use crate::plugin::{ActionContext, ActionOutput, CallError, PluginRuntime};
use crate::registry::PluginRegistry;
use crate::storage::{Storage, StorageError};
use crate::templates::{self, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum ActionRunError {
    #[error("no plugin is named `{0}`")]
    UnknownPlugin(String),
    #[error("rendering the configuration: {0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ActionRunError {
    /// The short name a flow routes on (`timeout`, `http`, `template`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ActionRunError::UnknownPlugin(_) => "unknown_plugin",
            ActionRunError::Template(_) => "template",
            ActionRunError::Call(e) => e.code(),
            ActionRunError::Storage(_) => "storage",
        }
    }
}

/// Everything needed to run actions.
#[derive(Clone)]
pub struct ActionRunner {
    pub runtime: Arc<PluginRuntime>,
    pub registry: Arc<PluginRegistry>,
    pub storage: Storage,
}

impl ActionRunner {
    /// Runs `plugin` with `config` for the conversation in `context`.
    /// `context.data` is replaced by the conversation's stored data. The
    /// returned output carries the messages to send; saved data and tickets
    /// are already stored.
    pub async fn run(
        &self,
        plugin: &str,
        mut context: ActionContext,
        config: &Value,
    ) -> Result<ActionOutput, ActionRunError> {
        let plugin = self
            .registry
            .get(plugin)
            .ok_or_else(|| ActionRunError::UnknownPlugin(plugin.to_string()))?;
        context.data = self.storage.load_data(&context.conversation.id).await?;
        let config = templates::render_json(
            self.runtime.templates(),
            config,
            &context.template_context(),
        )
        .await?;
        let conversation_id = context.conversation.id.clone();
        let output = self.runtime.run_action(&plugin, context, &config).await?;
        use crate::engine::clock::Clock as _;
        let now_ms = crate::engine::clock::SystemClock.now_ms();
        self.storage
            .commit_effects(&conversation_id, output.effects.clone(), now_ms)
            .await?;
        Ok(output)
    }
}
