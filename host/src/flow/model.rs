//! The flow document: how an admin describes the routing of conversations.
//! Read from YAML (hand-written) or JSON (the API); every entity of the
//! product sketch is here. `validate.rs` checks it; `compiled.rs` is the
//! form the engine runs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole flow document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// The language (ISO 639-1) used when the customer's is unknown.
    #[serde(default = "default_language")]
    pub default_language: String,
    /// Languages the flow answers in; detection picks only among these.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Values templates can read as `vars.<name>` (or `config.<name>`):
    /// API base URLs, phone numbers, what differs between a sandbox and
    /// production.
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    #[serde(default)]
    pub accounts: BTreeMap<String, Account>,
    #[serde(default)]
    pub connectors: BTreeMap<String, Connector>,
    #[serde(default)]
    pub time_groups: BTreeMap<String, TimeGroup>,
    #[serde(default)]
    pub time_conditions: BTreeMap<String, TimeCondition>,
    #[serde(default)]
    pub automessages: BTreeMap<String, Automessage>,
    #[serde(default)]
    pub decision_trees: BTreeMap<String, DecisionTree>,
    #[serde(default)]
    pub chatbots: BTreeMap<String, Chatbot>,
    #[serde(default)]
    pub queues: BTreeMap<String, Queue>,
    #[serde(default)]
    pub terminates: BTreeMap<String, Terminate>,
}

fn default_language() -> String {
    "en".into()
}

/// Where a conversation goes next. `decision` is only valid inside a
/// decision tree (a decision of the same tree).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Destination {
    Decision(String),
    DecisionTree(String),
    Automessage(String),
    TimeCondition(String),
    Chatbot(String),
    Queue(String),
    Terminate(String),
}

impl Destination {
    /// The section of the document the destination names, and the name.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Destination::Decision(n) => ("decision", n),
            Destination::DecisionTree(n) => ("decision_tree", n),
            Destination::Automessage(n) => ("automessage", n),
            Destination::TimeCondition(n) => ("time_condition", n),
            Destination::Chatbot(n) => ("chatbot", n),
            Destination::Queue(n) => ("queue", n),
            Destination::Terminate(n) => ("terminate", n),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = self.parts();
        write!(f, "{kind} `{name}`")
    }
}

/// A text with per-language variants. Written as a plain string or as
/// `{text, variants}`; templates are allowed in both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Text {
    Plain(String),
    Localized {
        text: String,
        /// ISO 639-1 code -> text.
        #[serde(default)]
        variants: BTreeMap<String, String>,
    },
}

impl Text {
    /// The text for `language`: its variant, then its primary subtag's, then the default.
    pub fn for_language(&self, language: &str) -> &str {
        match self {
            Text::Plain(text) => text,
            Text::Localized { text, variants } => {
                let primary = language.split(['-', '_']).next().unwrap_or(language);
                variants
                    .get(language)
                    .or_else(|| variants.get(primary))
                    .unwrap_or(text)
            }
        }
    }

    /// Every text of every language, with its language (`None` for the default).
    pub fn all(&self) -> Vec<(Option<&str>, &str)> {
        match self {
            Text::Plain(text) => vec![(None, text)],
            Text::Localized { text, variants } => std::iter::once((None, text.as_str()))
                .chain(variants.iter().map(|(l, t)| (Some(l.as_str()), t.as_str())))
                .collect(),
        }
    }
}

/// A business account on a channel. Secrets may be written as
/// `env:VARIABLE` to be read from the environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "channel", rename_all = "snake_case", deny_unknown_fields)]
pub enum Account {
    Instagram {
        /// The Instagram professional account's id (the webhook's `recipient.id`).
        ig_user_id: String,
        /// The Send API token; `connected`: the token of this account as
        /// connected from the admin page (Meta's login), refreshed by flowhost.
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        app_secret: Option<String>,
        #[serde(default)]
        verify_token: Option<String>,
        #[serde(default)]
        api_base_url: Option<String>,
        #[serde(default)]
        api_version: Option<String>,
        /// Set when the app's webhook subscription includes
        /// `message_echoes`: a send whose outcome is unknown (flowhost
        /// stopped, or Meta did not answer in time) waits this many seconds
        /// for its echo; confirmed by the echo it counts as sent, otherwise
        /// it is sent again. Unset: such a send is recorded as uncertain and
        /// never sent again (never twice).
        #[serde(default)]
        settle_by_echo_seconds: Option<u64>,
    },
    Connexease {
        channel_id: String,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        account_id: Option<String>,
        #[serde(default)]
        webhook_secret: Option<String>,
        /// How `X-Connexease-Webhook-Sign` is checked (see `ConnexeaseSign`).
        #[serde(default)]
        webhook_sign: ConnexeaseSign,
        /// Connexease's API, e.g. `https://api.connexease.com`.
        #[serde(default)]
        api_base_url: Option<String>,
        /// A long-lived account token, sent as `Bearer`, instead of the
        /// username/password JWT login.
        #[serde(default)]
        api_token: Option<String>,
        /// Where replies are posted (not publicly documented; configurable).
        #[serde(default)]
        reply_path: Option<String>,
    },
}

/// How a Connexease account's webhook signature is checked. Public
/// integrations send base64(HMAC-SHA256(webhook secret, channel uuid));
/// some send the secret itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnexeaseSign {
    #[default]
    HmacOfChannel,
    RawSecret,
}

/// `access_token: connected`: the account's token comes from its
/// connection through Meta's login (see `connections`).
pub const CONNECTED_TOKEN: &str = "connected";

/// A secret as written in the flow: `env:NAME` reads the environment
/// variable NAME (unset: `None`), anything else is the secret itself.
pub fn resolve_secret(value: &Option<String>) -> Option<String> {
    let value = value.as_deref()?;
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).ok().filter(|v| !v.is_empty()),
        None => Some(value.to_string()),
    }
}

/// Which attachments a connector lets through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentPolicy {
    #[default]
    None,
    FromCustomer,
    Both,
}

/// Where the conversations of one account start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// The account (key of `accounts`) whose conversations this connector takes.
    pub account: String,
    pub next: Destination,
    #[serde(default)]
    pub attachments: AttachmentPolicy,
    /// A conversation silent this long (seconds since the customer's last
    /// message) starts a new session with its next message. Default: one
    /// day, the length of Instagram's messaging window.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_seconds: u64,
    /// The "default department": where a conversation goes when the flow
    /// cannot go on (a chatbot hands off to a queue that does not exist, an
    /// action names a target that does not exist) or an agent transfers it
    /// back to the connector.
    #[serde(default)]
    pub default_queue: Option<String>,
}

fn default_session_timeout() -> u64 {
    86_400
}

/// Opening hours: weekly hours, dated exceptions and holidays, in a time zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeGroup {
    #[serde(default)]
    pub title: String,
    /// An IANA time zone such as `Europe/Istanbul`.
    pub time_zone: String,
    /// Day (`monday` ... `sunday`) -> ranges `"09:00-18:00"`. A day not
    /// listed is closed. `"00:00-24:00"` is the whole day.
    #[serde(default)]
    pub weekly: BTreeMap<String, Vec<String>>,
    /// Dates whose hours differ from the week's.
    #[serde(default)]
    pub exceptions: Vec<DateException>,
    /// Dates closed all day.
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateException {
    /// `YYYY-MM-DD` in the group's time zone.
    pub date: String,
    /// Ranges open that day; empty means closed.
    #[serde(default)]
    pub hours: Vec<String>,
    #[serde(default)]
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    /// `YYYY-MM-DD` in the group's time zone.
    pub date: String,
    #[serde(default)]
    pub name: String,
}

/// "If open go to X, if closed go to Y", decided at the moment of routing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeCondition {
    #[serde(default)]
    pub title: String,
    pub time_group: String,
    pub open: Destination,
    pub closed: Destination,
}

/// Delayed messages, each timed from the moment the conversation arrived here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Automessage {
    #[serde(default)]
    pub title: String,
    pub messages: Vec<DelayedMessage>,
    /// Where the conversation goes after the last message.
    pub next: Destination,
    /// Seconds after the last message before going `next`.
    #[serde(default)]
    pub then_after_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayedMessage {
    /// Seconds from the routing moment (not from the previous message).
    #[serde(default)]
    pub delay_seconds: u64,
    pub text: Text,
}

/// Named decisions, entered at `start`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionTree {
    #[serde(default)]
    pub title: String,
    #[serde(default = "default_start")]
    pub start: String,
    pub decisions: BTreeMap<String, Decision>,
}

fn default_start() -> String {
    "welcome".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// A message sent after the actions; button targets become its quick
    /// replies. Without it, buttons go on the last message an action sent.
    #[serde(default)]
    pub prompt: Option<Text>,
    #[serde(default)]
    pub actions: Vec<Step>,
    #[serde(default)]
    pub targets: Vec<Target>,
}

/// One step of a decision: an action (a plugin call), a condition or a loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Step {
    Action(ActionStep),
    Condition(ConditionStep),
    Loop(LoopStep),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionStep {
    /// The plugin's name: `request`, `send-message`, `save-data`,
    /// `create-ticket`, or a partner's.
    pub action: String,
    /// The plugin's configuration; strings are minijinja templates.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// A target of this decision to follow when the action fails; without
    /// it the failure is kept as `error` and the steps go on.
    #[serde(default)]
    pub on_error: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionStep {
    /// A minijinja expression over the context, e.g. `data.vip and order.ok`.
    #[serde(rename = "if")]
    pub condition: String,
    #[serde(default)]
    pub then: Vec<Step>,
    #[serde(default, rename = "else")]
    pub otherwise: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoopStep {
    /// A minijinja expression giving an array, e.g. `order.body.items`.
    #[serde(rename = "loop")]
    pub over: String,
    /// The name each item is visible under.
    #[serde(default = "default_item", rename = "as")]
    pub item: String,
    #[serde(default, rename = "do")]
    pub body: Vec<Step>,
    /// Ends the loop early when true (evaluated before each item), then
    /// follows `target` if given.
    #[serde(default)]
    pub until: Option<String>,
    /// A target of this decision followed when `until` ends the loop.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u32,
}

fn default_item() -> String {
    "item".into()
}

fn default_max_iterations() -> u32 {
    100
}

/// How a target is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// At once, without waiting for the customer.
    Immediately,
    /// By a generated quick reply (or typing its title).
    Button,
    /// By text matching a regular expression.
    Pattern,
    /// By text containing one of a comma-separated list of words, ignoring
    /// case and accents and tolerating a small typo.
    Similar,
    /// Only when nothing else matched.
    Default,
    /// Only when named: by an action's `on_error`, a loop's `target`, or a
    /// plugin's next target.
    Jump,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Names the target for `on_error`, loops and plugins' `next-target`,
    /// and is a button's payload. Defaults to `target-<index>`.
    #[serde(default)]
    pub id: Option<String>,
    pub when: Answer,
    /// The button's title (`button`).
    #[serde(default)]
    pub title: Option<Text>,
    /// A regular expression (`pattern`).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Comma-separated words or phrases (`similar`), with variants per language.
    #[serde(default)]
    pub words: Option<Text>,
    /// Also the default answer when nothing matches.
    #[serde(default)]
    pub default: bool,
    /// Where the target leads.
    pub go: Destination,
}

/// A third-party chatbot, reached through an adapter plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Chatbot {
    pub title: String,
    /// The adapter plugin (a `chatbot` world component).
    #[serde(default = "default_adapter")]
    pub adapter: String,
    /// The bot's URL.
    pub url: String,
    /// Where the conversation goes when the bot is unavailable.
    pub fallback: Destination,
    #[serde(default)]
    pub send_start_message: bool,
    #[serde(default)]
    pub send_attachments: bool,
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
    /// Extra adapter configuration.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// How long the bot has to answer one message, in seconds; after it the
    /// conversation takes the fallback.
    #[serde(default = "default_bot_timeout")]
    pub timeout_seconds: u64,
    /// Names the bot may hand off to (such as `10001`) and the queue each
    /// means; a queue's own key is always accepted too.
    #[serde(default)]
    pub queue_aliases: BTreeMap<String, String>,
}

impl Chatbot {
    /// The configuration the adapter gets: `url`, `send_attachments`, and
    /// the node's `config` on top.
    pub fn adapter_config(&self) -> Value {
        let mut config =
            serde_json::json!({"url": self.url, "send_attachments": self.send_attachments});
        if let (Some(target), Some(extra)) = (config.as_object_mut(), self.config.as_object()) {
            target.extend(extra.clone());
        }
        config
    }

    /// The queue a hand-off names: a queue's key, or one of the aliases.
    pub fn handoff_queue<'a>(
        &'a self,
        named: &'a str,
        queues: &BTreeMap<String, Queue>,
    ) -> Option<&'a str> {
        if queues.contains_key(named) {
            return Some(named);
        }
        self.queue_aliases.get(named).map(String::as_str)
    }
}

fn default_adapter() -> String {
    "webhook-bot".into()
}

/// Ten seconds: long enough for a bot behind an NLU service, short enough
/// that a customer is not left waiting in silence.
fn default_bot_timeout() -> u64 {
    10
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub name: String,
    #[serde(default)]
    pub title: String,
    /// A template over the context.
    pub value: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RingStrategy {
    #[default]
    RoundRobin,
    Random,
    LongestIdle,
    LeastBusy,
    RingAll,
    /// The agent who last served this customer, if eligible; else the
    /// queue's `sticky_fallback`.
    Sticky,
}

/// A queue of human agents and its text routing settings. Times are in
/// seconds; a timeout of 0 is off. The README's queue table gives each
/// setting's meaning for Instagram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Queue {
    pub name: String,
    /// Higher is served first.
    pub priority: u8,
    pub ring_strategy: RingStrategy,
    /// The strategy `sticky` falls back to.
    pub sticky_fallback: RingStrategy,
    /// How long an offer rings before it goes to the next agent.
    pub agent_ring_time: u64,
    /// Offers an agent may let lapse in a row before being set `away`
    /// (0: never).
    pub away_after_missed_offers: u32,
    /// How often the router looks at this queue.
    pub period_to_check: u64,
    /// An agent who accepted must answer within this, or the conversation
    /// goes back to the queue for someone else.
    pub agent_timeout: u64,
    /// With an agent: a customer's message must be answered within this, or
    /// the conversation goes back to the queue.
    pub agent_message_timeout: u64,
    /// With an agent: the customer silent this long after the agent's last
    /// message gets `idle_session_message`, once.
    pub idle_session_timeout: u64,
    pub idle_session_message: Option<Text>,
    /// With an agent: the customer silent this long after the agent's last
    /// message ends the session (cause `contact-timeout`, answered).
    pub contact_message_timeout: u64,
    /// Waiting without an agent this long sends the conversation to
    /// `when_timeout`.
    pub message_timeout: u64,
    pub when_timeout: Option<Destination>,
    /// The longest a session stays with people (waiting and with agents),
    /// from first entering a queue; then `session_timeout_message` and the
    /// session ends (cause `session-timeout`).
    pub session_timeout: u64,
    pub session_timeout_message: Option<Text>,
    pub max_concurrent_chats: u32,
    /// Conversations an agent may take by hand beyond `max_concurrent_chats`.
    pub extra_chats: u32,
    pub leave_when_empty: bool,
    /// Where a waiting conversation goes when `leave_when_empty` is on and
    /// no agent of the queue is online.
    pub when_empty: Option<Destination>,
    /// An agent who closes a conversation is given the longest-waiting one
    /// of this queue at once, without an offer.
    pub close_auto_assign: bool,
    /// Sent when a conversation enters the queue.
    pub welcome_message: Option<Text>,
    /// Tells a waiting customer their place and estimated wait
    /// (`queue.position`, `queue.estimated_wait_minutes`).
    pub position_message: Option<Text>,
    /// Repeats `position_message` this often while waiting (0: on entering
    /// only).
    pub position_interval: u64,
    /// The estimated wait told to customers is never more than this.
    pub hold_estimation_upper_limit: u64,
    /// How long a closed conversation stays in its agent's console.
    pub closed_conversation_display_time: u64,
    /// Shown in the console beside this queue's conversations.
    pub logo_url: Option<String>,
    /// Shown in the console: the number or words agents offer for a call.
    pub call_me_text: Option<String>,
    /// Notes for the agents of this queue, shown in the console.
    pub notes: String,
    /// Who may take over or transfer conversations they do not answer.
    pub agent_management_access: ManagementAccess,
    /// A translator plugin: agents read customers in their own language and
    /// their replies go out in the customer's.
    pub translation_provider: Option<String>,
    /// The translator's configuration (its schema says what it takes).
    pub translation_config: serde_json::Value,
    /// How agents are named to customers: a template over `agent.name`
    /// and `agent.id`, put before each agent message (`Ana: ...`); none:
    /// messages go out as written.
    pub user_name: Option<String>,
}

/// Who, besides the agent answering it, may act on a conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManagementAccess {
    /// Supervisors serving the queue.
    #[default]
    Supervisors,
    /// Any agent serving the queue.
    Agents,
    /// Nobody: only the agent answering it.
    Nobody,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            name: String::new(),
            priority: 0,
            ring_strategy: RingStrategy::RoundRobin,
            sticky_fallback: RingStrategy::RoundRobin,
            agent_ring_time: 30,
            away_after_missed_offers: 3,
            period_to_check: 1,
            agent_timeout: 300,
            agent_message_timeout: 600,
            idle_session_timeout: 1800,
            idle_session_message: None,
            contact_message_timeout: 3600,
            message_timeout: 0,
            when_timeout: None,
            session_timeout: 86_400,
            session_timeout_message: None,
            max_concurrent_chats: 3,
            extra_chats: 0,
            leave_when_empty: false,
            when_empty: None,
            close_auto_assign: false,
            welcome_message: None,
            position_message: None,
            position_interval: 0,
            hold_estimation_upper_limit: 600,
            closed_conversation_display_time: 300,
            logo_url: None,
            call_me_text: None,
            notes: String::new(),
            agent_management_access: ManagementAccess::Supervisors,
            translation_provider: None,
            translation_config: serde_json::Value::Null,
            user_name: None,
        }
    }
}

/// How a conversation ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Terminate {
    #[serde(default)]
    pub title: String,
    /// The internal disconnection cause recorded.
    pub cause: String,
    /// The queue the conversation is counted in.
    #[serde(default)]
    pub queue: Option<String>,
    /// A last message to the customer.
    #[serde(default)]
    pub auto_response: Option<Text>,
    /// Whether the conversation counts as answered.
    #[serde(default)]
    pub answered: bool,
}
