//! Validation: every error of a flow document, each with the path to the
//! field and a plain reason, collected rather than stopped at the first.
//! A document that passes becomes a [`CompiledFlow`], the form the engine
//! runs (regular expressions compiled, hours parsed, word lists normalised).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::model::*;
use crate::engine::matcher::WordList;
use crate::plugin::Plugin;
use crate::plugin::PluginKind;
use crate::registry::{PluginRegistry, PluginSet};
use crate::routing::time::Schedule;
use crate::templates;

/// One problem, at a path such as
/// `decision_trees.support.decisions.welcome.targets[2].pattern`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct Issue {
    pub path: String,
    pub message: String,
    /// Where the path stands in the document's text, when it came as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<super::positions::Location>,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some(at) => write!(
                f,
                "{} (line {}, column {}): {}",
                self.path, at.line, at.column, self.message
            ),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// What validation found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub errors: Vec<Issue>,
    /// Problems that do not stop the flow (an unreachable decision).
    pub warnings: Vec<Issue>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for issue in &self.errors {
            writeln!(f, "error: {issue}")?;
        }
        for issue in &self.warnings {
            writeln!(f, "warning: {issue}")?;
        }
        Ok(())
    }
}

/// Characters of a quick reply's title Instagram shows.
const MAX_QUICK_REPLY_TITLE: usize = 20;

/// Names the engine itself keeps in the template context; an action's
/// result or a loop's item may not take them.
pub const RESERVED_RESULT_NAMES: &[&str] = &[
    "answer",
    "error",
    "vars",
    "config",
    "message",
    "conversation",
    "contact",
    "data",
    "language",
];

/// Whether results may not be kept under `name`.
pub fn is_reserved_result_name(name: &str) -> bool {
    RESERVED_RESULT_NAMES.contains(&name)
}

/// The longest a chatbot's `timeout_seconds` may be: Meta wants webhook
/// answers within seconds, and a customer should not wait longer.
pub const MAX_BOT_TIMEOUT_SECONDS: u64 = 60;

/// What validation knows of the plugins: kind and configuration schema.
#[derive(Default)]
pub struct PluginCatalog {
    plugins: BTreeMap<String, (PluginKind, Option<jsonschema::Validator>)>,
}

impl PluginCatalog {
    pub fn from_registry(registry: &PluginRegistry) -> Self {
        Self::of(registry.iter().map(|(plugin, _)| plugin))
    }

    /// The catalog of one version's plugins (the server's and its uploads).
    pub fn from_set(set: &PluginSet) -> Self {
        Self::of(set.plugins())
    }

    fn of<'a>(plugins: impl Iterator<Item = &'a Arc<Plugin>>) -> Self {
        let mut catalog = PluginCatalog::default();
        for plugin in plugins {
            let info = plugin.info();
            catalog.plugins.insert(
                info.name.clone(),
                // A schema that does not compile was refused when the
                // plugin loaded; `None` here means no plugin declared one.
                (
                    info.kind,
                    jsonschema::validator_for(&info.config_schema).ok(),
                ),
            );
        }
        catalog
    }
}

/// A target's position: tree, decision, index.
pub type TargetRef = (String, String, usize);

/// A validated flow, ready to run.
pub struct CompiledFlow {
    pub flow: Flow,
    pub schedules: BTreeMap<String, Schedule>,
    pub patterns: HashMap<TargetRef, Regex>,
    /// Per target: language (`None` = default) -> words.
    pub words: HashMap<TargetRef, BTreeMap<Option<String>, WordList>>,
    /// Account key -> connector key.
    pub connector_of_account: BTreeMap<String, String>,
}

impl CompiledFlow {
    /// The connector a simulated customer writes to (`wanted`, else the
    /// first) and its account: `(connector, account)`, or why there is none.
    pub fn entry(&self, wanted: Option<&str>) -> Result<(String, String), String> {
        let connector = match wanted {
            Some(name) => name.to_string(),
            None => self
                .flow
                .connectors
                .keys()
                .next()
                .cloned()
                .ok_or("the flow has no connector to write to")?,
        };
        match self.flow.connectors.get(&connector) {
            Some(found) => Ok((connector, found.account.clone())),
            None => Err(format!("the flow has no connector `{connector}`")),
        }
    }

    /// Decision `name` of tree `tree`.
    pub fn decision(&self, tree: &str, name: &str) -> Option<&Decision> {
        self.flow.decision_trees.get(tree)?.decisions.get(name)
    }

    /// The id of target `index` of a decision.
    pub fn target_id(target: &Target, index: usize) -> String {
        target
            .id
            .clone()
            .unwrap_or_else(|| format!("target-{index}"))
    }
}

/// Names every template may read.
const CONTEXT_NAMES: &[&str] = &[
    "message",
    "conversation",
    "contact",
    "data",
    "language",
    "error",
    "answer",
    "vars",
    "config",
    "range",
    "dict",
    "namespace",
    "debug",
];

/// Validates `flow` and compiles it, or reports every error.
pub fn compile(flow: Flow, catalog: &PluginCatalog) -> Result<(CompiledFlow, Vec<Issue>), Report> {
    let mut v = Validator {
        flow: &flow,
        catalog,
        report: Report::default(),
        known_names: HashSet::new(),
    };
    v.collect_result_names();
    let (schedules, patterns, words, connector_of_account) = v.check_all();
    let mut report = v.report;
    report.errors.sort();
    report.errors.dedup();
    if !report.errors.is_empty() {
        return Err(report);
    }
    let compiled = CompiledFlow {
        flow,
        schedules,
        patterns,
        words,
        connector_of_account,
    };
    Ok((compiled, report.warnings))
}

struct Validator<'a> {
    flow: &'a Flow,
    catalog: &'a PluginCatalog,
    report: Report,
    /// Context names templates may read: the fixed ones, result names kept
    /// by actions anywhere in the flow, and loop item names.
    known_names: HashSet<String>,
}

impl<'a> Validator<'a> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.report.errors.push(Issue {
            path: path.into(),
            message: message.into(),
            at: None,
        });
    }

    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.report.warnings.push(Issue {
            path: path.into(),
            message: message.into(),
            at: None,
        });
    }

    fn collect_result_names(&mut self) {
        self.known_names
            .extend(CONTEXT_NAMES.iter().map(|s| s.to_string()));
        self.known_names.insert("last_sent_message".into());
        self.known_names.insert("ticket".into());
        fn walk(steps: &[Step], names: &mut HashSet<String>) {
            for step in steps {
                match step {
                    Step::Action(a) => {
                        if let Some(name) = a.config.get("name").and_then(Value::as_str) {
                            names.insert(name.to_string());
                        }
                    }
                    Step::Condition(c) => {
                        walk(&c.then, names);
                        walk(&c.otherwise, names);
                    }
                    Step::Loop(l) => {
                        names.insert(l.item.clone());
                        names.insert(format!("{}_index", l.item));
                        walk(&l.body, names);
                    }
                }
            }
        }
        for tree in self.flow.decision_trees.values() {
            for decision in tree.decisions.values() {
                walk(&decision.actions, &mut self.known_names);
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn check_all(
        &mut self,
    ) -> (
        BTreeMap<String, Schedule>,
        HashMap<TargetRef, Regex>,
        HashMap<TargetRef, BTreeMap<Option<String>, WordList>>,
        BTreeMap<String, String>,
    ) {
        let flow = self.flow;
        self.check_language("default_language", &flow.default_language);
        for (i, language) in flow.languages.iter().enumerate() {
            self.check_language(&format!("languages[{i}]"), language);
        }

        for (key, account) in &flow.accounts {
            let (field, value) = match account {
                Account::Instagram { ig_user_id, .. } => ("ig_user_id", ig_user_id),
                Account::Connexease { channel_id, .. } => ("channel_id", channel_id),
            };
            if value.trim().is_empty() {
                self.error(format!("accounts.{key}.{field}"), "is empty");
            }
        }

        let mut connector_of_account = BTreeMap::new();
        for (key, connector) in &flow.connectors {
            let path = format!("connectors.{key}");
            if !flow.accounts.contains_key(&connector.account) {
                self.error(
                    format!("{path}.account"),
                    format!("no account is named `{}`", connector.account),
                );
            } else if let Some(other) =
                connector_of_account.insert(connector.account.clone(), key.clone())
            {
                self.error(
                    format!("{path}.account"),
                    format!(
                        "account `{}` already starts at connector `{other}`",
                        connector.account
                    ),
                );
            }
            self.check_destination(&format!("{path}.next"), &connector.next, None);
            if let Some(queue) = &connector.default_queue
                && !flow.queues.contains_key(queue)
            {
                self.error(
                    format!("{path}.default_queue"),
                    format!("no queue is named `{queue}`"),
                );
            }
        }

        let mut schedules = BTreeMap::new();
        for (key, group) in &flow.time_groups {
            match Schedule::parse(group) {
                Ok(schedule) => {
                    schedules.insert(key.clone(), schedule);
                }
                Err(errors) => {
                    for (field, message) in errors {
                        self.error(format!("time_groups.{key}.{field}"), message);
                    }
                }
            }
        }
        for (key, condition) in &flow.time_conditions {
            let path = format!("time_conditions.{key}");
            if !flow.time_groups.contains_key(&condition.time_group) {
                self.error(
                    format!("{path}.time_group"),
                    format!("no time group is named `{}`", condition.time_group),
                );
            }
            self.check_destination(&format!("{path}.open"), &condition.open, None);
            self.check_destination(&format!("{path}.closed"), &condition.closed, None);
        }

        for (key, automessage) in &flow.automessages {
            let path = format!("automessages.{key}");
            if automessage.messages.is_empty() {
                self.error(
                    format!("{path}.messages"),
                    "an automessage needs at least one message",
                );
            }
            for (i, message) in automessage.messages.iter().enumerate() {
                self.check_text(
                    &format!("{path}.messages[{i}].text"),
                    &message.text,
                    &HashSet::new(),
                );
            }
            self.check_destination(&format!("{path}.next"), &automessage.next, None);
        }

        let mut patterns = HashMap::new();
        let mut words = HashMap::new();
        for (tree_key, tree) in &flow.decision_trees {
            self.check_tree(tree_key, tree, &mut patterns, &mut words);
        }

        for (key, bot) in &flow.chatbots {
            self.check_chatbot(key, bot, flow);
        }

        for (key, queue) in &flow.queues {
            self.check_queue(key, queue);
        }

        for (key, terminate) in &flow.terminates {
            let path = format!("terminates.{key}");
            if terminate.cause.trim().is_empty() {
                self.error(format!("{path}.cause"), "is required");
            }
            if let Some(queue) = &terminate.queue
                && !flow.queues.contains_key(queue)
            {
                self.error(
                    format!("{path}.queue"),
                    format!("no queue is named `{queue}`"),
                );
            }
            if let Some(text) = &terminate.auto_response {
                self.check_text(&format!("{path}.auto_response"), text, &HashSet::new());
            }
        }

        self.check_cycles();
        self.check_reachability();
        (schedules, patterns, words, connector_of_account)
    }

    fn check_chatbot(&mut self, key: &str, bot: &Chatbot, flow: &Flow) {
        let path = format!("chatbots.{key}");
        let schema = match self.catalog.plugins.get(&bot.adapter) {
            None if !self.catalog.plugins.is_empty() => {
                self.error(
                    format!("{path}.adapter"),
                    format!("no plugin is named `{}`", bot.adapter),
                );
                None
            }
            Some((kind, _)) if *kind != PluginKind::Chatbot => {
                self.error(
                    format!("{path}.adapter"),
                    format!(
                        "`{}` is a {} plugin, not a chatbot adapter",
                        bot.adapter,
                        kind_name(*kind)
                    ),
                );
                None
            }
            Some((_, schema)) => schema.as_ref(),
            None => None,
        };
        if url::Url::parse(&bot.url)
            .map(|u| !matches!(u.scheme(), "http" | "https"))
            .unwrap_or(true)
        {
            self.error(
                format!("{path}.url"),
                format!("`{}` is not an http(s) URL", bot.url),
            );
        }
        let config = bot.adapter_config();
        let problems: Vec<(String, String)> = schema
            .into_iter()
            .flat_map(|schema| schema.iter_errors(&config))
            .map(|e| (e.instance_path().as_str().to_string(), e.to_string()))
            .collect();
        for (pointer, message) in problems {
            self.error(
                format!("{path}.config{}", pointer_to_path(&pointer)),
                format!("does not match the adapter's schema: {message}"),
            );
        }
        if !(1..=MAX_BOT_TIMEOUT_SECONDS).contains(&bot.timeout_seconds) {
            self.error(
                format!("{path}.timeout_seconds"),
                format!("must be between 1 and {MAX_BOT_TIMEOUT_SECONDS} (a customer waits that long for an answer)"),
            );
        }
        for (alias, queue) in &bot.queue_aliases {
            if !flow.queues.contains_key(queue) {
                self.error(
                    format!("{path}.queue_aliases.{alias}"),
                    format!("no queue is named `{queue}`"),
                );
            }
        }
        self.check_destination(&format!("{path}.fallback"), &bot.fallback, None);
        for (i, field) in bot.custom_fields.iter().enumerate() {
            self.check_template(
                &format!("{path}.custom_fields[{i}].value"),
                &field.value,
                &HashSet::new(),
            );
        }
    }

    fn check_queue(&mut self, key: &str, queue: &Queue) {
        let path = format!("queues.{key}");
        if queue.name.trim().is_empty() {
            self.error(format!("{path}.name"), "is required");
        }
        let waiting: HashSet<String> = ["queue".to_string()].into();
        let texts = [
            ("idle_session_message", &queue.idle_session_message),
            ("session_timeout_message", &queue.session_timeout_message),
            ("welcome_message", &queue.welcome_message),
            ("position_message", &queue.position_message),
        ];
        for (field, text) in texts {
            if let Some(text) = text {
                self.check_text(&format!("{path}.{field}"), text, &waiting);
            }
        }
        if let Some(provider) = &queue.translation_provider {
            self.check_translator(&path, provider, &queue.translation_config);
        }
        if let Some(user_name) = &queue.user_name {
            let agent: HashSet<String> = ["agent".to_string()].into();
            self.check_template(&format!("{path}.user_name"), user_name, &agent);
        }
        let leaves = [
            (
                "when_empty",
                &queue.when_empty,
                queue.leave_when_empty,
                "leave_when_empty is on",
            ),
            (
                "when_timeout",
                &queue.when_timeout,
                queue.message_timeout > 0,
                "message_timeout is set",
            ),
        ];
        for (field, destination, needed, because) in leaves {
            match destination {
                Some(destination) => {
                    self.check_destination(&format!("{path}.{field}"), destination, None)
                }
                None if needed => self.error(
                    format!("{path}.{field}"),
                    format!("is required when {because}: where do conversations go?"),
                ),
                None => {}
            }
        }
        if queue.sticky_fallback == RingStrategy::Sticky {
            self.error(
                format!("{path}.sticky_fallback"),
                "cannot be `sticky` itself",
            );
        }
        if queue.agent_ring_time == 0 || queue.period_to_check == 0 {
            self.error(
                path.clone(),
                "agent_ring_time and period_to_check must be at least 1 second",
            );
        }
        if let Some(url) = &queue.logo_url
            && !url.starts_with("https://")
        {
            self.error(format!("{path}.logo_url"), "must be an https:// URL");
        }
        if queue.idle_session_message.is_some()
            && queue.contact_message_timeout > 0
            && queue.idle_session_timeout >= queue.contact_message_timeout
        {
            self.warning(
                format!("{path}.idle_session_timeout"),
                "is not shorter than contact_message_timeout, so the idle message is never sent",
            );
        }
    }

    fn check_translator(&mut self, path: &str, provider: &str, config: &Value) {
        let field = format!("{path}.translation_provider");
        let schema = match self.catalog.plugins.get(provider) {
            None if !self.catalog.plugins.is_empty() => {
                return self.error(field, format!("no plugin is named `{provider}`"));
            }
            Some((kind, _)) if *kind != PluginKind::Translator => {
                return self.error(
                    field,
                    format!(
                        "`{provider}` is a {} plugin, not a translator",
                        kind_name(*kind)
                    ),
                );
            }
            Some((_, schema)) => schema.as_ref(),
            None => None,
        };
        let config = if config.is_null() {
            &serde_json::json!({})
        } else {
            config
        };
        let problems: Vec<(String, String)> = schema
            .into_iter()
            .flat_map(|schema| schema.iter_errors(config))
            .map(|e| (e.instance_path().as_str().to_string(), e.to_string()))
            .collect();
        for (pointer, message) in problems {
            self.error(
                format!("{path}.translation_config{}", pointer_to_path(&pointer)),
                format!("does not match the plugin's schema: {message}"),
            );
        }
    }

    fn check_language(&mut self, path: &str, code: &str) {
        if isolang::Language::from_639_1(code).is_none() {
            self.error(
                path,
                format!("`{code}` is not an ISO 639-1 language code (such as en, tr)"),
            );
        }
    }

    /// A variant in a language the flow does not list is never chosen
    /// (detection picks only among `languages`).
    fn check_listed_language(&mut self, path: &str, code: &str) {
        let listed = &self.flow.languages;
        if !listed.is_empty()
            && !listed.iter().any(|l| l == code)
            && code != self.flow.default_language
        {
            self.warning(
                path,
                format!(
                    "`{code}` is not among the flow's languages ({}); this variant is never used",
                    listed.join(", ")
                ),
            );
        }
    }

    /// Instagram cuts a quick reply's title at 20 characters.
    fn check_quick_reply_title(&mut self, path: &str, title: &Text) {
        for (language, text) in title.all() {
            let length = text.chars().count();
            if length > MAX_QUICK_REPLY_TITLE && !templates::is_template(text) {
                let at = match language {
                    Some(language) => format!("{path}.variants.{language}"),
                    None => path.to_string(),
                };
                self.warning(
                    at,
                    format!("{length} characters; Instagram shows at most {MAX_QUICK_REPLY_TITLE} of a quick reply's title"),
                );
            }
        }
    }

    /// Fields that mean nothing for the target's kind of answer, which an
    /// admin would expect to work.
    fn check_ignored_fields(&mut self, tpath: &str, target: &Target) {
        let ignored = [
            (
                "words",
                target.words.is_some() && target.when != Answer::Similar,
            ),
            (
                "pattern",
                target.pattern.is_some() && target.when != Answer::Pattern,
            ),
        ];
        for (field, is_ignored) in ignored {
            if is_ignored {
                self.warning(
                    format!("{tpath}.{field}"),
                    format!(
                        "ignored: `{field}` only counts when `when` is {}",
                        if field == "words" {
                            "`similar`"
                        } else {
                            "`pattern`"
                        }
                    ),
                );
            }
        }
    }

    /// `tree` is the decision tree the destination is inside, if any.
    fn check_destination(
        &mut self,
        path: &str,
        destination: &Destination,
        tree: Option<&DecisionTree>,
    ) {
        let flow = self.flow;
        let exists = match destination {
            Destination::Decision(name) => match tree {
                Some(tree) => tree.decisions.contains_key(name),
                None => {
                    self.error(path, format!("`decision: {name}` is only possible inside a decision tree; use `decision_tree`"));
                    return;
                }
            },
            Destination::DecisionTree(name) => flow.decision_trees.contains_key(name),
            Destination::Automessage(name) => flow.automessages.contains_key(name),
            Destination::TimeCondition(name) => flow.time_conditions.contains_key(name),
            Destination::Chatbot(name) => flow.chatbots.contains_key(name),
            Destination::Queue(name) => flow.queues.contains_key(name),
            Destination::Terminate(name) => flow.terminates.contains_key(name),
        };
        if !exists {
            let (kind, name) = destination.parts();
            self.error(path, format!("no {kind} is named `{name}`"));
        }
    }

    fn check_template(&mut self, path: &str, source: &str, local: &HashSet<String>) {
        match templates::check(source) {
            Err(e) => self.error(path, format!("template is not valid: {e}")),
            Ok(names) => self.check_names(path, names, local),
        }
    }

    fn check_names(&mut self, path: &str, names: HashSet<String>, local: &HashSet<String>) {
        let mut unknown: Vec<String> = names
            .into_iter()
            .filter(|n| !self.known_names.contains(n) && !local.contains(n))
            .collect();
        unknown.sort();
        if !unknown.is_empty() {
            self.error(
                path,
                format!(
                    "template uses unknown variable{} {}; known are message, conversation, contact, data, language, answer, error, vars (or config) and the names actions keep results under",
                    if unknown.len() > 1 { "s" } else { "" },
                    unknown.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }

    fn check_text(&mut self, path: &str, text: &Text, local: &HashSet<String>) {
        for (language, source) in text.all() {
            let field = match language {
                None => match text {
                    Text::Plain(_) => path.to_string(),
                    Text::Localized { .. } => format!("{path}.text"),
                },
                Some(language) => {
                    let field = format!("{path}.variants.{language}");
                    self.check_language(&field, language);
                    self.check_listed_language(&field, language);
                    field
                }
            };
            self.check_template(&field, source, local);
        }
    }

    fn check_expression(&mut self, path: &str, expression: &str, local: &HashSet<String>) {
        match templates::check_expression(expression) {
            Err(e) => self.error(path, format!("expression does not parse: {e}")),
            Ok(names) => self.check_names(path, names, local),
        }
    }

    fn check_tree(
        &mut self,
        tree_key: &str,
        tree: &DecisionTree,
        patterns: &mut HashMap<TargetRef, Regex>,
        words: &mut HashMap<TargetRef, BTreeMap<Option<String>, WordList>>,
    ) {
        let tree_path = format!("decision_trees.{tree_key}");
        if !tree.decisions.contains_key(&tree.start) {
            self.error(
                format!("{tree_path}.start"),
                format!("no decision is named `{}`", tree.start),
            );
        }
        for (decision_key, decision) in &tree.decisions {
            let path = format!("{tree_path}.decisions.{decision_key}");
            let target_ids: Vec<String> = decision
                .targets
                .iter()
                .enumerate()
                .map(|(i, t)| CompiledFlow::target_id(t, i))
                .collect();
            let mut seen = BTreeSet::new();
            for (i, id) in target_ids.iter().enumerate() {
                if !seen.insert(id) {
                    self.error(
                        format!("{path}.targets[{i}].id"),
                        format!("another target of this decision is `{id}`"),
                    );
                }
            }
            if let Some(prompt) = &decision.prompt {
                self.check_text(&format!("{path}.prompt"), prompt, &HashSet::new());
            }
            self.check_steps(
                &format!("{path}.actions"),
                &decision.actions,
                &target_ids,
                &HashSet::new(),
            );

            let mut defaults = Vec::new();
            let mut has_buttons = false;
            for (i, target) in decision.targets.iter().enumerate() {
                let tpath = format!("{path}.targets[{i}]");
                let key = (tree_key.to_string(), decision_key.clone(), i);
                if target.default || target.when == Answer::Default {
                    defaults.push(i);
                }
                self.check_ignored_fields(&tpath, target);
                if target.default && target.when == Answer::Immediately {
                    self.error(
                        format!("{tpath}.default"),
                        "an `immediately` target cannot also be the default answer",
                    );
                }
                match target.when {
                    Answer::Button => {
                        has_buttons = true;
                        match &target.title {
                            None => self
                                .error(format!("{tpath}.title"), "a button target needs a title"),
                            Some(title) => {
                                self.check_text(&format!("{tpath}.title"), title, &HashSet::new());
                                self.check_quick_reply_title(&format!("{tpath}.title"), title);
                            }
                        }
                    }
                    Answer::Pattern => match &target.pattern {
                        None => self.error(
                            format!("{tpath}.pattern"),
                            "a pattern target needs a pattern",
                        ),
                        Some(pattern) => match Regex::new(pattern) {
                            Ok(regex) => {
                                patterns.insert(key.clone(), regex);
                            }
                            Err(e) => self.error(
                                format!("{tpath}.pattern"),
                                format!(
                                    "regular expression does not compile: {}",
                                    first_line(&e.to_string())
                                ),
                            ),
                        },
                    },
                    Answer::Similar => match &target.words {
                        None => self.error(
                            format!("{tpath}.words"),
                            "a similar-words target needs words",
                        ),
                        Some(text) => {
                            let mut lists = BTreeMap::new();
                            for (language, list) in text.all() {
                                let in_language = language.unwrap_or(&self.flow.default_language);
                                let parsed = WordList::parse(list, in_language);
                                if parsed.is_empty() {
                                    self.error(format!("{tpath}.words"), "the word list is empty");
                                }
                                lists.insert(language.map(String::from), parsed);
                            }
                            words.insert(key.clone(), lists);
                        }
                    },
                    Answer::Immediately | Answer::Default | Answer::Jump => {}
                }
                self.check_destination(&format!("{tpath}.go"), &target.go, Some(tree));
            }
            if defaults.len() > 1 {
                let list = defaults
                    .iter()
                    .map(|i| format!("targets[{i}]"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    format!("{path}.targets[{}].default", defaults[1]),
                    format!("only one target can be the default answer ({list} are)"),
                );
            }
            if has_buttons
                && let Some(i) = decision
                    .targets
                    .iter()
                    .position(|t| t.when == Answer::Immediately)
            {
                self.error(
                    format!("{path}.targets[{i}]"),
                    "this decision moves on at once, so its buttons would be shown but never answered; use `when: jump` for targets only actions and loops lead to",
                );
            }
            let sends_message = steps_use(&decision.actions, "send-message");
            if has_buttons && decision.prompt.is_none() && !sends_message {
                self.error(format!("{path}.prompt"), "button targets need a prompt (or a send-message action) to attach their quick replies to");
            }
        }
    }

    /// A name results are kept under may not hide what the engine itself
    /// puts in the context (`answer`, `error`, `message`, ...).
    fn check_result_name(&mut self, path: &str, name: &str) {
        if is_reserved_result_name(name) {
            self.error(
                path,
                format!(
                    "`{name}` is reserved ({}); choose another name",
                    RESERVED_RESULT_NAMES.join(", ")
                ),
            );
        }
    }

    fn check_steps(
        &mut self,
        path: &str,
        steps: &[Step],
        target_ids: &[String],
        local: &HashSet<String>,
    ) {
        for (i, step) in steps.iter().enumerate() {
            let spath = format!("{path}[{i}]");
            match step {
                Step::Action(action) => {
                    match self.catalog.plugins.get(&action.action) {
                        None if !self.catalog.plugins.is_empty() => self.error(
                            format!("{spath}.action"),
                            format!("no plugin is named `{}`", action.action),
                        ),
                        Some((kind, _)) if *kind != PluginKind::Action => self.error(
                            format!("{spath}.action"),
                            format!(
                                "`{}` is a {} plugin, not an action",
                                action.action,
                                kind_name(*kind)
                            ),
                        ),
                        Some((_, Some(schema))) => {
                            let problems: Vec<(String, String)> = schema
                                .iter_errors(&action.config)
                                .filter(|e| {
                                    !is_template_at(&action.config, e.instance_path().as_str())
                                })
                                .map(|e| (e.instance_path().as_str().to_string(), e.to_string()))
                                .collect();
                            for (pointer, message) in problems {
                                self.error(
                                    format!("{spath}.config{}", pointer_to_path(&pointer)),
                                    format!("does not match the plugin's schema: {message}"),
                                );
                            }
                        }
                        _ => {}
                    }
                    self.check_config_templates(&format!("{spath}.config"), &action.config, local);
                    if let Some(name) = action.config.get("name").and_then(Value::as_str) {
                        self.check_result_name(&format!("{spath}.config.name"), name);
                    }
                    if let Some(target) = &action.on_error
                        && !target_ids.contains(target)
                    {
                        self.error(
                            format!("{spath}.on_error"),
                            format!("this decision has no target `{target}`"),
                        );
                    }
                }
                Step::Condition(condition) => {
                    self.check_expression(&format!("{spath}.if"), &condition.condition, local);
                    self.check_steps(&format!("{spath}.then"), &condition.then, target_ids, local);
                    self.check_steps(
                        &format!("{spath}.else"),
                        &condition.otherwise,
                        target_ids,
                        local,
                    );
                }
                Step::Loop(lp) => {
                    self.check_result_name(&format!("{spath}.as"), &lp.item);
                    self.check_expression(&format!("{spath}.loop"), &lp.over, local);
                    let mut inner = local.clone();
                    inner.insert(lp.item.clone());
                    if let Some(until) = &lp.until {
                        self.check_expression(&format!("{spath}.until"), until, &inner);
                    }
                    if let Some(target) = &lp.target
                        && !target_ids.contains(target)
                    {
                        self.error(
                            format!("{spath}.target"),
                            format!("this decision has no target `{target}`"),
                        );
                    }
                    if lp.max_iterations == 0 {
                        self.error(format!("{spath}.max_iterations"), "must be at least 1");
                    }
                    self.check_steps(&format!("{spath}.do"), &lp.body, target_ids, &inner);
                }
            }
        }
    }

    fn check_config_templates(&mut self, path: &str, value: &Value, local: &HashSet<String>) {
        match value {
            Value::String(text) => self.check_template(path, text, local),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check_config_templates(&format!("{path}[{i}]"), item, local);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    self.check_config_templates(&format!("{path}.{k}"), v, local);
                }
            }
            _ => {}
        }
    }

    /// Edges taken without waiting for the customer or a timer: a cycle of
    /// them would spin forever.
    fn check_cycles(&mut self) {
        let flow = self.flow;
        let mut edges: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let node = |d: &Destination, tree: &str| match d {
            Destination::Decision(n) => format!("decision_trees.{tree}.decisions.{n}"),
            Destination::DecisionTree(n) => match flow.decision_trees.get(n) {
                Some(t) => format!("decision_trees.{n}.decisions.{}", t.start),
                None => format!("decision_trees.{n}"),
            },
            other => {
                let (kind, name) = other.parts();
                format!("{kind}s.{name}")
            }
        };
        for (key, condition) in &flow.time_conditions {
            let from = format!("time_conditions.{key}");
            edges
                .entry(from.clone())
                .or_default()
                .push((node(&condition.open, ""), format!("{from}.open")));
            edges
                .entry(from.clone())
                .or_default()
                .push((node(&condition.closed, ""), format!("{from}.closed")));
        }
        for (key, automessage) in &flow.automessages {
            let waits = automessage.then_after_seconds > 0
                || automessage.messages.iter().any(|m| m.delay_seconds > 0);
            if !waits {
                let from = format!("automessages.{key}");
                edges
                    .entry(from.clone())
                    .or_default()
                    .push((node(&automessage.next, ""), format!("{from}.next")));
            }
        }
        for (tree_key, tree) in &flow.decision_trees {
            for (decision_key, decision) in &tree.decisions {
                if let Some((i, target)) = decision
                    .targets
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.when == Answer::Immediately)
                {
                    let from = format!("decision_trees.{tree_key}.decisions.{decision_key}");
                    edges.entry(from.clone()).or_default().push((
                        node(&target.go, tree_key),
                        format!("{from}.targets[{i}].go"),
                    ));
                }
            }
        }
        // Depth-first search for a back edge.
        let mut state: HashMap<String, u8> = HashMap::new(); // 1 = on stack, 2 = done
        let mut reported = BTreeSet::new();
        fn visit(
            n: &str,
            edges: &BTreeMap<String, Vec<(String, String)>>,
            state: &mut HashMap<String, u8>,
            stack: &mut Vec<(String, String)>,
            found: &mut Vec<(String, Vec<String>)>,
        ) {
            state.insert(n.to_string(), 1);
            for (to, via) in edges.get(n).into_iter().flatten() {
                stack.push((to.clone(), via.clone()));
                match state.get(to.as_str()) {
                    Some(1) => {
                        let start = stack
                            .iter()
                            .position(|(node, _)| node == to)
                            .map(|p| p + 1)
                            .unwrap_or(0);
                        let cycle: Vec<String> = std::iter::once(to.clone())
                            .chain(stack[start..].iter().map(|(node, _)| node.clone()))
                            .collect();
                        found.push((via.clone(), cycle));
                    }
                    Some(_) => {}
                    None => visit(to, edges, state, stack, found),
                }
                stack.pop();
            }
            state.insert(n.to_string(), 2);
        }
        let mut found = Vec::new();
        for start in edges.keys() {
            if !state.contains_key(start) {
                visit(start, &edges, &mut state, &mut Vec::new(), &mut found);
            }
        }
        for (via, cycle) in found {
            if reported.insert(via.clone()) {
                self.error(
                    via,
                    format!(
                        "this loops back without ever waiting for the customer: {}",
                        cycle.join(" -> ")
                    ),
                );
            }
        }
    }

    /// Warns about decisions no path from their tree's start reaches.
    fn check_reachability(&mut self) {
        for (tree_key, tree) in &self.flow.decision_trees {
            let mut reached = BTreeSet::new();
            let mut todo = vec![tree.start.clone()];
            while let Some(name) = todo.pop() {
                if !reached.insert(name.clone()) {
                    continue;
                }
                if let Some(decision) = tree.decisions.get(&name) {
                    for target in &decision.targets {
                        if let Destination::Decision(next) = &target.go {
                            todo.push(next.clone());
                        }
                    }
                }
            }
            for name in tree.decisions.keys() {
                if !reached.contains(name) {
                    self.warning(
                        format!("decision_trees.{tree_key}.decisions.{name}"),
                        format!("no target leads here from `{}`", tree.start),
                    );
                }
            }
        }
    }
}

fn kind_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Action => "action",
        PluginKind::Chatbot => "chatbot adapter",
        PluginKind::Translator => "translator",
    }
}

fn steps_use(steps: &[Step], plugin: &str) -> bool {
    steps.iter().any(|step| match step {
        Step::Action(a) => a.action == plugin,
        Step::Condition(c) => steps_use(&c.then, plugin) || steps_use(&c.otherwise, plugin),
        Step::Loop(l) => steps_use(&l.body, plugin),
    })
}

/// Whether the value at a JSON pointer is a template string (its type is
/// only known once rendered, so schema type errors there are not errors).
fn is_template_at(config: &Value, pointer: &str) -> bool {
    config
        .pointer(pointer)
        .and_then(Value::as_str)
        .is_some_and(templates::is_template)
}

/// `/headers/0/x` -> `.headers[0].x`
fn pointer_to_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|part| match part.parse::<usize>() {
            Ok(i) => format!("[{i}]"),
            Err(_) => format!(".{}", part.replace("~1", "/").replace("~0", "~")),
        })
        .collect()
}

fn first_line(text: &str) -> String {
    text.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11, item 6: warnings for what admins hit.
    #[test]
    fn warnings_for_long_titles_unlisted_languages_and_ignored_fields() {
        let flow = crate::flow::parse(
            r#"
default_language: en
languages: [en, tr]
connectors:
  dm: { title: DMs, account: ig, next: { decision_tree: menu } }
accounts:
  ig: { channel: instagram, ig_user_id: "1", access_token: t, app_secret: s, verify_token: v }
decision_trees:
  menu:
    start: hello
    decisions:
      hello:
        prompt: { text: Hello, variants: { de: Hallo } }
        targets:
          - { when: button, title: "Talk to one of our friendly agents", go: { terminate: bye } }
          - { when: pattern, pattern: '^\d+$', words: "order, parcel", go: { terminate: bye } }
          - { when: default, go: { terminate: bye } }
terminates:
  bye: { cause: done }
"#,
        )
        .unwrap();
        let (_, warnings) = compile(flow, &PluginCatalog::default()).unwrap();
        let at = |path: &str| {
            warnings
                .iter()
                .find(|w| w.path == path)
                .map(|w| w.message.clone())
        };
        let base = "decision_trees.menu.decisions.hello";
        assert!(
            at(&format!("{base}.targets[0].title"))
                .unwrap()
                .contains("at most 20"),
            "{warnings:?}"
        );
        assert!(
            at(&format!("{base}.targets[1].words"))
                .unwrap()
                .starts_with("ignored"),
            "{warnings:?}"
        );
        assert!(
            at(&format!("{base}.prompt.variants.de"))
                .unwrap()
                .contains("never used"),
            "{warnings:?}"
        );
    }
}
