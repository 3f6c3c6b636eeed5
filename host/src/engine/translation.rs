//! A queue's `translation_provider` at work: the agent reads the customer's
//! messages in their own language, and their replies go out in the
//! customer's. Translations are history lines of kind `translation`, with
//! the language they are in, beside the line they translate.

use super::agents::Refusal;
use super::{Engine, Turn};
use crate::flow::model::Queue;
use crate::model::Position;
use crate::plugin::OutgoingMessage;
use crate::registry::PluginSet;

/// Customer messages translated for an agent who takes a waiting
/// conversation, at most (the latest ones).
const WAITING_TRANSLATED: usize = 10;

impl Engine {
    fn translating_queue(&self, turn: &Turn) -> Option<Queue> {
        let queue = turn.state.position.queue()?;
        let settings = turn.flow.compiled.flow.queues.get(queue)?.clone();
        settings.translation_provider.as_ref()?;
        Some(settings)
    }

    /// Translates `text` with the queue's translator, or says why not.
    async fn translate(
        &self,
        plugins: &PluginSet,
        queue: &Queue,
        text: &str,
        source: &str,
        target: &str,
    ) -> Result<String, String> {
        let provider = queue.translation_provider.as_deref().unwrap_or_default();
        let Some(plugin) = plugins.get(provider) else {
            return Err(format!("no translator plugin `{provider}`"));
        };
        let config = if queue.translation_config.is_null() {
            serde_json::json!({})
        } else {
            queue.translation_config.clone()
        };
        self.runtime
            .run_translator(&plugin, &config, text, Some(source), target)
            .await
            .map(|t| t.text)
            .map_err(|e| format!("translator `{provider}` ({}): {e}", e.code()))
    }

    /// A customer's message to an agent who reads another language.
    pub(super) async fn translate_inbound(&self, turn: &mut Turn, text: &str) {
        let Position::WithAgent { agent, .. } = &turn.state.position else {
            return;
        };
        let Some(queue) = self.translating_queue(turn) else {
            return;
        };
        let language = match self.storage.agent(agent).await {
            Ok(Some(agent)) => agent.language,
            _ => return,
        };
        self.translate_line(turn, &queue, text, &language).await;
    }

    /// The messages a customer wrote while waiting, for the agent who now
    /// answers them (`language` is theirs).
    pub(super) async fn translate_waiting(&self, turn: &mut Turn, language: &str) {
        let Some(queue) = self.translating_queue(turn) else {
            return;
        };
        let since = turn.state.people_since_ms.unwrap_or(0);
        let history = match self.storage.history(&turn.state.key()).await {
            Ok(history) => history,
            Err(e) => return turn.error(format!("reading the history to translate: {e}")),
        };
        let waiting: Vec<String> = history
            .into_iter()
            .filter(|line| line.kind == "in" && line.at_ms >= since)
            .map(|line| line.text)
            .collect();
        let latest = waiting.len().saturating_sub(WAITING_TRANSLATED);
        for text in &waiting[latest..] {
            self.translate_line(turn, &queue, text, language).await;
        }
    }

    async fn translate_line(&self, turn: &mut Turn, queue: &Queue, text: &str, language: &str) {
        let customer = turn.state.language.clone();
        if customer == language || text.trim().is_empty() {
            return;
        }
        let plugins = turn.flow.plugins.clone();
        match self
            .translate(&plugins, queue, text, &customer, language)
            .await
        {
            Ok(translated) => turn
                .state
                .note_translation(turn.now_ms, translated, language),
            Err(e) => turn.error(e),
        }
    }

    /// An agent's reply in the customer's language: the message's text is
    /// replaced by its translation, and the agent's own words are kept as
    /// a translation line. A failed translation refuses the reply (nothing
    /// is sent in a language the customer may not read).
    pub(super) async fn translate_reply(
        &self,
        turn: &mut Turn,
        agent_language: &str,
        message: &mut OutgoingMessage,
    ) -> Result<Option<String>, Refusal> {
        let Some(queue) = self.translating_queue(turn) else {
            return Ok(None);
        };
        let customer = turn.state.language.clone();
        let Some(text) = message.text.clone().filter(|_| customer != agent_language) else {
            return Ok(None);
        };
        let translated = self
            .translate(
                &turn.flow.plugins.clone(),
                &queue,
                &text,
                agent_language,
                &customer,
            )
            .await
            .map_err(Refusal::Translation)?;
        message.text = Some(translated);
        Ok(Some(text))
    }
}
