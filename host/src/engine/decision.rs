//! Decisions: their steps (actions as plugin calls, conditions, loops),
//! their prompt and buttons, and matching the customer's answer to a target.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};

use super::matcher::normalize;
use super::{Engine, Next, Turn};
use crate::analytics::Fact;
use crate::flow::CompiledFlow;
use crate::flow::model::{Answer, Decision, Step, Target};
use crate::model::Position;
use crate::plugin::{InboundMessage, QuickReply};
use crate::templates;

type StepFuture<'a> = Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;

impl Engine {
    pub(super) async fn run_decision(&self, turn: &mut Turn, tree: &str, name: &str) -> Next {
        let flow = turn.flow.compiled.clone();
        let Some(decision) = flow.decision(tree, name) else {
            turn.error(format!("decision `{name}` of tree `{tree}` does not exist"));
            return Next::Stay;
        };
        turn.set_position(Position::Waiting {
            tree: tree.to_string(),
            decision: name.to_string(),
        });
        turn.count(Fact::DecisionEntered {
            tree: tree.to_string(),
            decision: name.to_string(),
        });
        let sent_before = turn.commit.outbox.len();

        if let Some(target) = self.run_steps(turn, &decision.actions).await {
            return match find_target(decision, &target) {
                Some(index) => leave(turn, tree, name, decision, index),
                None => {
                    turn.error(format!("decision `{name}`: no target `{target}` to follow"));
                    self.to_default_queue(turn)
                }
            };
        }

        self.prompt(turn, decision, sent_before, name).await;

        match decision
            .targets
            .iter()
            .position(|t| t.when == Answer::Immediately)
        {
            Some(index) => leave(turn, tree, name, decision, index),
            None => Next::Stay,
        }
    }

    /// Sends the prompt with the button targets as quick replies, or puts
    /// the buttons on the last message this decision sent.
    async fn prompt(&self, turn: &mut Turn, decision: &Decision, sent_before: usize, name: &str) {
        let buttons: Vec<QuickReply> = decision
            .targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.when == Answer::Button)
            .map(|(i, t)| QuickReply {
                title: t
                    .title
                    .as_ref()
                    .map(|title| title.for_language(&turn.state.language).to_string())
                    .unwrap_or_default(),
                payload: CompiledFlow::target_id(t, i),
            })
            .collect();
        if let Some(prompt) = &decision.prompt {
            turn.send_text(
                self.runtime.templates(),
                prompt,
                buttons,
                &format!("decision `{name}` prompt"),
            )
            .await;
        } else if !buttons.is_empty() {
            match turn.commit.outbox[sent_before..].last_mut() {
                Some(last) => last.message.quick_replies.extend(buttons),
                None => turn.error(format!(
                    "decision `{name}`: no message to put its buttons on"
                )),
            }
        }
    }

    /// Picks the target the customer's answer chooses; with none, the
    /// default; with no default, asks again.
    pub(super) async fn answer(
        &self,
        turn: &mut Turn,
        tree: &str,
        name: &str,
        message: &InboundMessage,
    ) -> Next {
        let flow = turn.flow.compiled.clone();
        let Some(decision) = flow.decision(tree, name) else {
            turn.error(format!(
                "the flow no longer has decision `{name}` of tree `{tree}`; starting over"
            ));
            return Next::Stay;
        };
        let text = message.text.clone().unwrap_or_default();
        let chosen = Self::match_target(
            &flow,
            tree,
            name,
            decision,
            message,
            &text,
            &turn.state.language,
        );
        let (index, how) = match chosen {
            Some(found) => found,
            None => match decision
                .targets
                .iter()
                .position(|t| t.default || t.when == Answer::Default)
            {
                Some(index) => (index, "default".to_string()),
                None => {
                    turn.route(format!("no target of `{name}` matches; asking again"));
                    let sent_before = turn.commit.outbox.len();
                    self.prompt(turn, decision, sent_before, name).await;
                    return Next::Stay;
                }
            },
        };
        let target = &decision.targets[index];
        turn.state.results.insert(
            "answer".into(),
            json!({"text": text, "target": CompiledFlow::target_id(target, index), "matched_by": how}),
        );
        turn.route(format!(
            "answer matched target `{}` by {how}",
            CompiledFlow::target_id(target, index)
        ));
        leave(turn, tree, name, decision, index)
    }

    fn match_target(
        flow: &CompiledFlow,
        tree: &str,
        name: &str,
        decision: &Decision,
        message: &InboundMessage,
        text: &str,
        language: &str,
    ) -> Option<(usize, String)> {
        let waits_for_answer = |t: &Target| !matches!(t.when, Answer::Immediately | Answer::Jump);
        // A pressed quick reply or postback carries the target's id.
        if let Some(payload) = &message.payload
            && let Some(index) =
                decision.targets.iter().enumerate().position(|(i, t)| {
                    waits_for_answer(t) && CompiledFlow::target_id(t, i) == *payload
                })
        {
            return Some((index, "button".into()));
        }
        let typed = normalize(text);
        let mut button_number = 0;
        for (index, target) in decision.targets.iter().enumerate() {
            let key = (tree.to_string(), name.to_string(), index);
            let matched = match target.when {
                Answer::Button => {
                    button_number += 1;
                    // Quick replies are not shown on desktop: typing the
                    // title (or its number) answers too.
                    let titles = target.title.as_ref().map(|t| t.all()).unwrap_or_default();
                    !typed.is_empty()
                        && (typed == button_number.to_string()
                            || titles.iter().any(|(_, title)| normalize(title) == typed))
                }
                Answer::Pattern => flow
                    .patterns
                    .get(&key)
                    .is_some_and(|re| re.is_match(text.trim())),
                Answer::Similar => flow.words.get(&key).is_some_and(|lists| {
                    let primary = language.split(['-', '_']).next().unwrap_or(language);
                    let own = lists
                        .get(&Some(language.to_string()))
                        .or_else(|| lists.get(&Some(primary.to_string())));
                    own.is_some_and(|l| l.matches(text))
                        || lists.get(&None).is_some_and(|l| l.matches(text))
                }),
                Answer::Immediately | Answer::Default | Answer::Jump => false,
            };
            if matched {
                let how = match target.when {
                    Answer::Button => "typed button title",
                    Answer::Pattern => "pattern",
                    _ => "similar words",
                };
                return Some((index, how.into()));
            }
        }
        None
    }

    /// Runs steps in order. Returns the id of a target to follow when an
    /// action names one, fails with `on_error`, or a loop ends on one.
    pub(super) fn run_steps<'a>(&'a self, turn: &'a mut Turn, steps: &'a [Step]) -> StepFuture<'a> {
        Box::pin(async move {
            for step in steps {
                let jump = match step {
                    Step::Action(action) => {
                        let Some(plugin) = turn.flow.plugins.get(&action.action) else {
                            turn.error(format!("no plugin `{}`", action.action));
                            continue;
                        };
                        let failure = match templates::render_json(
                            self.runtime.templates(),
                            &action.config,
                            &turn.template_context(),
                        )
                        .await
                        {
                            Err(e) => Some(("template".to_string(), e.to_string())),
                            Ok(config) => match self
                                .runtime
                                .run_action(&plugin, turn.context(), &config)
                                .await
                            {
                                Ok(output) => {
                                    turn.state.note(
                                        turn.now_ms,
                                        "action",
                                        format!("{} ok", action.action),
                                    );
                                    match output.store {
                                        Some((name, _))
                                            if crate::flow::is_reserved_result_name(&name) =>
                                        {
                                            turn.error(format!(
                                                "action `{}` tried to keep its result as `{name}`, a reserved name; not kept",
                                                action.action
                                            ))
                                        }
                                        Some((name, value)) => {
                                            turn.state.results.insert(name, value);
                                        }
                                        None => {}
                                    }
                                    let effects = output.effects;
                                    for (key, change) in effects.data_changes {
                                        match &change {
                                            Some(value) => {
                                                turn.data.insert(key.clone(), value.clone())
                                            }
                                            None => turn.data.remove(&key),
                                        };
                                        turn.commit.effects.data_changes.insert(key, change);
                                    }
                                    turn.commit.effects.tickets.extend(effects.tickets);
                                    for message in effects.messages {
                                        turn.send(message);
                                    }
                                    if let Some(target) = output.next_target {
                                        return Some(target);
                                    }
                                    None
                                }
                                Err(e) => Some((e.code().to_string(), e.to_string())),
                            },
                        };
                        match failure {
                            None => None,
                            Some((code, message)) => {
                                turn.error(format!(
                                    "action `{}` failed ({code}): {message}",
                                    action.action
                                ));
                                turn.state.results.insert("error".into(), json!({"code": code, "message": message, "action": action.action}));
                                action.on_error.clone()
                            }
                        }
                    }
                    Step::Condition(condition) => {
                        match templates::evaluate(
                            self.runtime.templates(),
                            &condition.condition,
                            &turn.template_context(),
                        )
                        .await
                        {
                            Ok(value) => {
                                let branch = if templates::is_truthy(&value) {
                                    &condition.then
                                } else {
                                    &condition.otherwise
                                };
                                self.run_steps(turn, branch).await
                            }
                            Err(e) => {
                                turn.error(format!("condition `{}`: {e}", condition.condition));
                                None
                            }
                        }
                    }
                    Step::Loop(lp) => {
                        let items = match templates::evaluate(
                            self.runtime.templates(),
                            &lp.over,
                            &turn.template_context(),
                        )
                        .await
                        {
                            Ok(Value::Array(items)) => items,
                            Ok(Value::Null) => Vec::new(),
                            Ok(other) => {
                                turn.error(format!("loop `{}` is not a list but {other}", lp.over));
                                Vec::new()
                            }
                            Err(e) => {
                                turn.error(format!("loop `{}`: {e}", lp.over));
                                Vec::new()
                            }
                        };
                        let index_name = format!("{}_index", lp.item);
                        let mut jump = None;
                        for (index, item) in items
                            .into_iter()
                            .take(lp.max_iterations as usize)
                            .enumerate()
                        {
                            turn.state.results.insert(lp.item.clone(), item);
                            turn.state.results.insert(index_name.clone(), json!(index));
                            if let Some(until) = &lp.until {
                                match templates::evaluate(
                                    self.runtime.templates(),
                                    until,
                                    &turn.template_context(),
                                )
                                .await
                                {
                                    Ok(value) if templates::is_truthy(&value) => {
                                        jump = lp.target.clone();
                                        break;
                                    }
                                    Ok(_) => {}
                                    Err(e) => {
                                        turn.error(format!("loop condition `{until}`: {e}"));
                                        break;
                                    }
                                }
                            }
                            if let Some(target) = self.run_steps(turn, &lp.body).await {
                                jump = Some(target);
                                break;
                            }
                        }
                        turn.state.results.remove(&lp.item);
                        turn.state.results.remove(&index_name);
                        jump
                    }
                };
                if jump.is_some() {
                    return jump;
                }
            }
            None
        })
    }
}

/// Leaves decision `name` by its target `index`, counted.
fn leave(turn: &mut Turn, tree: &str, name: &str, decision: &Decision, index: usize) -> Next {
    let target = &decision.targets[index];
    turn.count(Fact::DecisionLeft {
        tree: tree.to_string(),
        decision: name.to_string(),
        target: CompiledFlow::target_id(target, index),
    });
    Next::Go(target.go.clone(), tree.to_string())
}

fn find_target(decision: &Decision, id: &str) -> Option<usize> {
    decision
        .targets
        .iter()
        .enumerate()
        .position(|(i, t)| CompiledFlow::target_id(t, i) == id)
}
