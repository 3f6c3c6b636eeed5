//! The plugin runtime: loads WebAssembly components that implement the
//! `flowhost:plugin` contract and calls them in a sandbox.
//!
//! This module is the only place that knows wasmtime. Each call gets a fresh
//! store and instance from a pre-linked [`InstancePre`] (thrown away after
//! the call, whatever happened), a pooled memory slot, a time budget enforced
//! by epochs, a memory cap, and capabilities checked against what the plugin
//! declared. Failures come back as [`CallError`]s the flow can route on.
//!
//! There are two engines, alike but for how an instance's memory gets its
//! initial contents ([`engine::InitialMemory`]): small components (the
//! built-ins, Rust plugins, the template sandbox) have it copied in, large
//! ones (Python and JavaScript plugins) have it mapped copy-on-write.
//!
//! [`InstancePre`]: wasmtime::component::InstancePre

mod bindings;
mod cache;
pub mod capabilities;
mod convert;
mod engine;
mod error;
mod limits;
mod precheck;
pub use precheck::MAX_COMPONENT_BYTES;
mod state;
mod template_sandbox;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use bindings::v0_1_0 as current;
use capabilities::Refused;
use capabilities::http::HttpGate;
use state::{CallClock, CallScope, CallState, PluginShared, Stopped};

pub use bindings::SUPPORTED_CONTRACTS;
pub use capabilities::http::HttpPolicy;
pub use engine::EPOCH_TICK;
pub use error::{CallError, LoadError};
pub use limits::Limits;
pub use template_sandbox::{TemplateError, TemplateSandbox};
pub use types::*;

/// Bounds on what `describe` may return.
const MAX_DESCRIBE_VERSION: usize = 64;
const MAX_DESCRIBE_TEXT: usize = 4 * 1024;
const MAX_DESCRIBE_SCHEMA: usize = 64 * 1024;
const MAX_DESCRIBE_CAPABILITIES: usize = 32;

/// Longest reason text kept from a guest's error.
const MAX_REASON_BYTES: usize = 4 * 1024;

/// Settings of the runtime as a whole.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Plugin calls running at once; later calls wait for a slot. This sizes
    /// the pooling allocator.
    pub max_concurrent_calls: u32,
    /// The most linear memory any plugin may be given (the pool's slot size).
    pub max_memory_bytes: usize,
    /// Finished calls' pool slots are reset this many at a time (wasmtime's
    /// `decommit_batch_size`); 1 resets each at once. See
    /// [`engine::build_engine`] for what a batch saves and keeps resident.
    pub decommit_batch: usize,
    /// Where compiled components are kept across restarts; `None` compiles
    /// on every start.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_concurrent_calls: 64,
            max_memory_bytes: 128 * 1024 * 1024,
            decommit_batch: engine::DEFAULT_DECOMMIT_BATCH,
            cache_dir: None,
        }
    }
}

/// Per-plugin settings: limits and HTTP policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    pub limits: Limits,
    pub http: HttpPolicy,
}

/// A loaded plugin, ready to be called any number of times concurrently.
pub struct Plugin {
    info: PluginInfo,
    shared: Arc<PluginShared>,
    pre: Pre,
    /// Whether the compiled code came from the on-disk cache.
    cache_hit: bool,
}

#[derive(Clone)]
enum Pre {
    Action(current::ActionPre<CallState>),
    Chatbot(current::chatbot::ChatbotPre<CallState>),
    Translator(bindings::v0_2_0::TranslatorPre<CallState>),
}

impl Pre {
    /// The engine it was linked on, which its stores must use.
    fn engine(&self) -> &Engine {
        match self {
            Pre::Action(pre) => pre.engine(),
            Pre::Chatbot(pre) => pre.engine(),
            Pre::Translator(pre) => pre.engine(),
        }
    }
}

impl Plugin {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub fn loaded_from_cache(&self) -> bool {
        self.cache_hit
    }

    /// The same compiled plugin under another HTTP policy, without
    /// compiling it again (`plugin test` lets a chatbot adapter reach its
    /// stand-in bot once it knows the plugin is an adapter).
    pub fn with_http_policy(&self, policy: &HttpPolicy) -> Result<Plugin, LoadError> {
        let http = HttpGate::new(&self.info.name, policy).map_err(|pattern| {
            LoadError::BadAllowedHost {
                plugin: self.info.name.clone(),
                pattern,
            }
        })?;
        let shared = Arc::new(PluginShared {
            name: self.shared.name.clone(),
            capabilities: self.shared.capabilities.clone(),
            limits: self.shared.limits.clone(),
            http,
            templates: self.shared.templates.clone(),
        });
        Ok(Plugin {
            info: self.info.clone(),
            shared,
            pre: self.pre.clone(),
            cache_hit: self.cache_hit,
        })
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Compiles, links and calls plugins.
pub struct PluginRuntime {
    /// For components smaller than [`engine::LARGE_COMPONENT_BYTES`].
    small: Wasm,
    /// For larger ones (see [`engine::InitialMemory`]).
    large: Wasm,
    /// Calls under way at once, on either engine.
    slots: Arc<Semaphore>,
    max_memory_bytes: usize,
    templates: Arc<TemplateSandbox>,
    _ticker: engine::EpochTicker,
}

/// One engine, with its linker and its compiled-code cache.
struct Wasm {
    engine: Engine,
    linker: Linker<CallState>,
    cache: cache::ArtifactCache,
}

impl Wasm {
    /// An engine whose pool holds `slots` instances at once.
    fn new(
        config: &RuntimeConfig,
        slots: u32,
        initial_memory: engine::InitialMemory,
    ) -> anyhow::Result<Self> {
        let engine = engine::build_engine(
            slots,
            config.max_memory_bytes,
            config.decommit_batch,
            initial_memory,
        )
        .map_err(|e| anyhow::anyhow!("configuring wasmtime: {e:#}"))?;
        let linker = build_linker(&engine)
            .map_err(|e| anyhow::anyhow!("linking host capabilities: {e:#}"))?;
        let cache = cache::ArtifactCache::new(&engine, config.cache_dir.clone());
        Ok(Wasm {
            engine,
            linker,
            cache,
        })
    }
}

impl PluginRuntime {
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        // Each engine's pool can hold every call at once (the slots
        // semaphore bounds the calls on both together) and the template
        // sandbox's. The sandbox runs on the small one, but the large one
        // needs the room: its budgets (core instances, memories, tables)
        // are per slot and shared, a Python component instantiates 14 core
        // modules, and 24 Python calls at once did not fit in 64 slots'
        // worth (`a_python_adapter_answers_at_once_and_later`).
        let calls = config.max_concurrent_calls.max(1);
        let pool = calls + template_sandbox::SANDBOX_SLOTS;
        let small = Wasm::new(config, pool, engine::InitialMemory::Copied)?;
        let large = Wasm::new(config, pool, engine::InitialMemory::CopyOnWrite)?;
        let templates = Arc::new(TemplateSandbox::new(
            &small.engine,
            &small.linker,
            &small.cache,
        )?);
        let ticker = engine::EpochTicker::start(vec![small.engine.clone(), large.engine.clone()])?;
        Ok(PluginRuntime {
            small,
            large,
            templates,
            _ticker: ticker,
            slots: Arc::new(Semaphore::new(calls as usize)),
            max_memory_bytes: config.max_memory_bytes,
        })
    }

    /// The engine a component of `len` bytes runs on.
    fn wasm_for(&self, len: usize) -> &Wasm {
        match engine::InitialMemory::for_component(len) {
            engine::InitialMemory::Copied => &self.small,
            engine::InitialMemory::CopyOnWrite => &self.large,
        }
    }

    /// The sandbox every template renders in.
    pub fn templates(&self) -> &Arc<TemplateSandbox> {
        &self.templates
    }

    /// Loads a component: compiles it (or takes it from the cache), checks
    /// the contract version it was built for, links it, and asks it to
    /// describe itself. `label` names it in errors until it has said its name.
    pub async fn load(
        &self,
        label: &str,
        bytes: &[u8],
        settings: &PluginSettings,
    ) -> Result<Plugin, LoadError> {
        let invalid = |reason: String| LoadError::InvalidComponent {
            plugin: label.to_string(),
            reason,
        };
        precheck::precheck(label, bytes)?;
        let wasm = self.wasm_for(bytes.len());
        let (component, cache_hit) = wasm.cache.load(&wasm.engine, bytes).map_err(invalid)?;
        let (kind, contract) = self.contract_of(label, &component)?;
        let instance_pre =
            wasm.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Link {
                    plugin: label.to_string(),
                    reason: format!("{e:#}"),
                })?;
        let pre = match kind {
            PluginKind::Action => Pre::Action(
                current::ActionPre::new(instance_pre).map_err(|e| invalid(format!("{e:#}")))?,
            ),
            PluginKind::Chatbot => Pre::Chatbot(
                current::chatbot::ChatbotPre::new(instance_pre)
                    .map_err(|e| invalid(format!("{e:#}")))?,
            ),
            PluginKind::Translator => Pre::Translator(
                bindings::v0_2_0::TranslatorPre::new(instance_pre)
                    .map_err(|e| invalid(format!("{e:#}")))?,
            ),
        };

        let mut limits = settings.limits.clone();
        if limits.memory_bytes > self.max_memory_bytes {
            tracing::warn!(
                plugin = label,
                "memory limit lowered to the runtime's maximum of {} bytes",
                self.max_memory_bytes
            );
            limits.memory_bytes = self.max_memory_bytes;
        }
        let http =
            HttpGate::new(label, &settings.http).map_err(|pattern| LoadError::BadAllowedHost {
                plugin: label.to_string(),
                pattern,
            })?;
        // `describe` runs with no capabilities: it must only describe.
        let probe = Arc::new(PluginShared {
            name: label.to_string(),
            capabilities: Vec::new(),
            limits,
            http,
            templates: None,
        });
        let described =
            self.describe(&pre, probe.clone())
                .await
                .map_err(|source| LoadError::Describe {
                    plugin: label.to_string(),
                    source: Box::new(source),
                })?;
        let info = check_description(label, described, kind, contract)?;

        let PluginShared { limits, .. } =
            Arc::into_inner(probe).expect("the describe call has ended");
        let http = HttpGate::new(&info.name, &settings.http).map_err(|pattern| {
            LoadError::BadAllowedHost {
                plugin: label.to_string(),
                pattern,
            }
        })?;
        let shared = Arc::new(PluginShared {
            name: info.name.clone(),
            capabilities: info.capabilities.clone(),
            limits,
            http,
            templates: Some(self.templates.clone()),
        });
        Ok(Plugin {
            info,
            shared,
            pre,
            cache_hit,
        })
    }

    /// Runs an action plugin once. `config` has already been rendered.
    /// Effects (saved data, messages, tickets) are returned, not applied.
    pub async fn run_action(
        &self,
        plugin: &Plugin,
        context: ActionContext,
        config: &Value,
    ) -> Result<ActionOutput, CallError> {
        observed(plugin, self.call_action(plugin, context, config)).await
    }

    async fn call_action(
        &self,
        plugin: &Plugin,
        context: ActionContext,
        config: &Value,
    ) -> Result<ActionOutput, CallError> {
        let Pre::Action(pre) = &plugin.pre else {
            return Err(CallError::WrongKind {
                plugin: plugin.info.name.clone(),
                expected: "action",
            });
        };
        let limits = &plugin.shared.limits;
        let config = config.to_string();
        let (wit_context, context_size) = convert::context_to_wit(&context);
        check_input(limits, context_size + config.len())?;

        let (_slot, mut store) = self
            .begin(&plugin.pre, plugin.shared.clone(), CallScope::new(context))
            .await?;
        let (times, budget) = watched(&store);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .flowhost_plugin_action_plugin()
                .call_run(&mut store, &wit_context, &config)
                .await
        };
        let limit = limits.call_timeout();
        let outcome = settle(
            CallClock::watch(times, budget, limit, call).await,
            limit,
            &store,
        )?
        .map_err(|error| cap_reason(error.into()))?;
        let mut output = convert::outcome_from_wit(outcome, limits.max_output_bytes)?;
        output.effects = store.into_data().scope.effects;
        Ok(output)
    }

    /// Forwards one customer message (or the start message) to a chatbot
    /// adapter and returns what the bot answered at once. The whole call,
    /// the bot's HTTP exchange included, gets at most `budget`.
    pub async fn run_chatbot(
        &self,
        plugin: &Plugin,
        context: ActionContext,
        config: &Value,
        session: &ChatbotSession,
        inbound: &ChatbotInbound,
        budget: std::time::Duration,
    ) -> Result<BotTurn, CallError> {
        let call = self.call_chatbot(plugin, context, config, session, inbound, budget);
        observed(plugin, call).await
    }

    async fn call_chatbot(
        &self,
        plugin: &Plugin,
        context: ActionContext,
        config: &Value,
        session: &ChatbotSession,
        inbound: &ChatbotInbound,
        budget: std::time::Duration,
    ) -> Result<BotTurn, CallError> {
        let Pre::Chatbot(pre) = &plugin.pre else {
            return Err(CallError::WrongKind {
                plugin: plugin.info.name.clone(),
                expected: "chatbot",
            });
        };
        let limits = &plugin.shared.limits;
        let config = config.to_string();
        let (wit_context, context_size) = convert::context_to_wit(&context);
        check_input(
            limits,
            context_size + config.len() + inbound.text.as_deref().map_or(0, str::len),
        )?;
        let (wit_session, wit_inbound) = (session.into(), inbound.into());

        let (_slot, mut store) = self
            .begin(&plugin.pre, plugin.shared.clone(), CallScope::new(context))
            .await?;
        let (times, guest_budget) = watched(&store);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .flowhost_plugin_chatbot_adapter()
                .call_deliver(
                    &mut store,
                    &wit_context,
                    &config,
                    &wit_session,
                    &wit_inbound,
                )
                .await
        };
        let limit = limits.call_timeout().min(budget);
        let turn = settle(
            CallClock::watch(times, guest_budget, limit, call).await,
            limit,
            &store,
        )?
        .map_err(|error| cap_reason(error.into()))?;
        bounded_turn(BotTurn::from(turn), limits)
    }

    /// Reads a body a bot posted to its callback URL with the adapter's
    /// `parse-callback`. The adapter sees no conversation (an empty
    /// context): whoever posted the body is not trusted yet.
    pub async fn parse_chatbot_callback(
        &self,
        plugin: &Plugin,
        config: &Value,
        body: &[u8],
    ) -> Result<BotCallback, CallError> {
        observed(plugin, self.call_parse_callback(plugin, config, body)).await
    }

    async fn call_parse_callback(
        &self,
        plugin: &Plugin,
        config: &Value,
        body: &[u8],
    ) -> Result<BotCallback, CallError> {
        let Pre::Chatbot(pre) = &plugin.pre else {
            return Err(CallError::WrongKind {
                plugin: plugin.info.name.clone(),
                expected: "chatbot",
            });
        };
        let limits = &plugin.shared.limits;
        let config = config.to_string();
        check_input(limits, config.len() + body.len())?;
        let (_slot, mut store) = self
            .begin(&plugin.pre, plugin.shared.clone(), CallScope::empty())
            .await?;
        let (times, guest_budget) = watched(&store);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .flowhost_plugin_chatbot_adapter()
                .call_parse_callback(&mut store, &config, body)
                .await
        };
        let limit = limits.call_timeout();
        let callback = settle(
            CallClock::watch(times, guest_budget, limit, call).await,
            limit,
            &store,
        )?
        .map_err(|error| cap_reason(error.into()))?;
        Ok(BotCallback {
            conversation: callback.conversation,
            hash: callback.hash,
            turn: bounded_turn(BotTurn::from(callback.turn), limits)?,
        })
    }

    /// Translates `text` into `target` with a translator plugin.
    pub async fn run_translator(
        &self,
        plugin: &Plugin,
        config: &Value,
        text: &str,
        source: Option<&str>,
        target: &str,
    ) -> Result<Translation, CallError> {
        let call = self.call_translator(plugin, config, text, source, target);
        observed(plugin, call).await
    }

    async fn call_translator(
        &self,
        plugin: &Plugin,
        config: &Value,
        text: &str,
        source: Option<&str>,
        target: &str,
    ) -> Result<Translation, CallError> {
        let Pre::Translator(pre) = &plugin.pre else {
            return Err(CallError::WrongKind {
                plugin: plugin.info.name.clone(),
                expected: "translator",
            });
        };
        let limits = &plugin.shared.limits;
        let config = config.to_string();
        check_input(limits, config.len() + text.len())?;
        let (_slot, mut store) = self
            .begin(&plugin.pre, plugin.shared.clone(), CallScope::empty())
            .await?;
        let (times, budget) = watched(&store);
        let source = source.map(String::from);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .flowhost_plugin0_2_0_translator_plugin()
                .call_translate(&mut store, &config, text, source.as_deref(), target)
                .await
        };
        let limit = limits.call_timeout();
        let translation = settle(
            CallClock::watch(times, budget, limit, call).await,
            limit,
            &store,
        )?
        .map_err(|error| cap_reason(error.into()))?;
        if translation.text.len() > limits.max_output_bytes {
            return Err(CallError::OutputTooLarge {
                size: translation.text.len(),
                limit: limits.max_output_bytes,
            });
        }
        Ok(Translation {
            text: translation.text,
            source_language: translation.source_language,
        })
    }

    async fn describe(
        &self,
        pre: &Pre,
        shared: Arc<PluginShared>,
    ) -> Result<current::flowhost::plugin::types::PluginInfo, CallError> {
        let limit = shared.limits.call_timeout();
        let (_slot, mut store) = self.begin(pre, shared, CallScope::empty()).await?;
        let (times, budget) = watched(&store);
        let call = async {
            match pre {
                Pre::Action(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance
                        .flowhost_plugin_action_plugin()
                        .call_describe(&mut store)
                        .await
                }
                Pre::Chatbot(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance
                        .flowhost_plugin_chatbot_adapter()
                        .call_describe(&mut store)
                        .await
                }
                Pre::Translator(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance
                        .flowhost_plugin0_2_0_translator_plugin()
                        .call_describe(&mut store)
                        .await
                }
            }
        };
        settle(
            CallClock::watch(times, budget, limit, call).await,
            limit,
            &store,
        )
    }

    /// Waits for a pool slot and makes the call's store, on the engine
    /// `pre` was linked on.
    async fn begin(
        &self,
        pre: &Pre,
        shared: Arc<PluginShared>,
        scope: CallScope,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, Store<CallState>), CallError> {
        let slot = self.slots.acquire().await.map_err(|e| CallError::Host {
            reason: e.to_string(),
        })?;
        Ok((slot, new_store(pre.engine(), shared, scope)))
    }

    /// The world and contract version a component was built for, from the
    /// names of its exports (`flowhost:plugin/action-plugin@0.1.0`).
    fn contract_of(
        &self,
        label: &str,
        component: &Component,
    ) -> Result<(PluginKind, String), LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(component.engine())
            .map(|(name, _)| name.to_string())
            .collect();
        for name in &exports {
            let Some((interface, version)) = name
                .strip_prefix("flowhost:plugin/")
                .and_then(|rest| rest.split_once('@'))
            else {
                continue;
            };
            let kind = match interface {
                "action-plugin" => PluginKind::Action,
                "chatbot-adapter" => PluginKind::Chatbot,
                "translator-plugin" => PluginKind::Translator,
                _ => continue,
            };
            if !SUPPORTED_CONTRACTS.contains(&version) {
                return Err(LoadError::UnsupportedContract {
                    plugin: label.to_string(),
                    found: version.to_string(),
                    supported: SUPPORTED_CONTRACTS.iter().map(|v| v.to_string()).collect(),
                });
            }
            return Ok((kind, version.to_string()));
        }
        Err(LoadError::NotAPlugin {
            plugin: label.to_string(),
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        })
    }
}

/// A store for one call: memory limiter, and an epoch deadline that
/// yields to other tasks every tick and interrupts the guest once its
/// own running time exceeds the budget.
fn new_store(engine: &Engine, shared: Arc<PluginShared>, scope: CallScope) -> Store<CallState> {
    let mut store = Store::new(engine, CallState::new(shared, scope));
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut context| {
        let clock = &mut context.data_mut().clock;
        if clock.guest_time() > clock.guest_budget {
            clock.timed_out = true;
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::YieldCustom(1, clock.timed_yield()))
        }
    });
    store
}

fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    use current::flowhost::plugin as caps;
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    caps::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    caps::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    caps::conversation_data::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    caps::messaging::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    caps::tickets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    caps::templates::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    caps::http::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Refuses input larger than the plugin accepts, before the guest runs.
fn check_input(limits: &Limits, size: usize) -> Result<(), CallError> {
    if size > limits.max_input_bytes {
        return Err(CallError::InputTooLarge {
            size,
            limit: limits.max_input_bytes,
        });
    }
    Ok(())
}

/// What a call's watchdog needs from its store.
fn watched(store: &Store<CallState>) -> (Arc<state::CallTimes>, std::time::Duration) {
    let clock = &store.data().clock;
    (clock.times.clone(), clock.guest_budget)
}

/// The value of a finished call, or why it did not finish.
/// Runs a plugin call, counting it by plugin and outcome and timing it.
async fn observed<T>(
    plugin: &Plugin,
    call: impl std::future::Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    use crate::telemetry::{PLUGIN_CALL_SECONDS, PLUGIN_CALLS};
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let span = tracing::info_span!("plugin_call", plugin = %plugin.info.name);
    let result = call.instrument(span).await;
    let name = plugin.info.name.clone();
    let outcome = result.as_ref().map_or_else(CallError::code, |_| "ok");
    metrics::counter!(PLUGIN_CALLS, "plugin" => name.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!(PLUGIN_CALL_SECONDS, "plugin" => name).record(started.elapsed());
    result
}

/// A bot's answer no larger than the adapter's `max_output_bytes`.
fn bounded_turn(turn: BotTurn, limits: &Limits) -> Result<BotTurn, CallError> {
    let size = serde_json::to_string(&turn).map_or(usize::MAX, |s| s.len());
    if size > limits.max_output_bytes {
        return Err(CallError::OutputTooLarge {
            size,
            limit: limits.max_output_bytes,
        });
    }
    Ok(turn)
}

fn settle<R>(
    finished: Result<wasmtime::Result<R>, Stopped>,
    limit: std::time::Duration,
    store: &Store<CallState>,
) -> Result<R, CallError> {
    match finished {
        Err(Stopped::CallTimeout) => Err(CallError::CallTimeout { limit }),
        Err(Stopped::Budget) => Err(CallError::Timeout {
            budget: store.data().clock.guest_budget,
        }),
        Ok(Err(trap)) => Err(classify_trap(trap, store.data())),
        Ok(Ok(value)) => Ok(value),
    }
}

/// Turns a failed call into the error the flow sees. The store's own
/// records come first: a refused memory grow or a spent budget explains the
/// trap that follows it better than the trap itself.
fn classify_trap(error: wasmtime::Error, state: &CallState) -> CallError {
    if state.clock.timed_out || matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return CallError::Timeout {
            budget: state.clock.guest_budget,
        };
    }
    if state.limiter.memory_refused {
        return CallError::OutOfMemory {
            limit: state.plugin.limits.memory_bytes,
        };
    }
    if let Some(refused) = error.downcast_ref::<Refused>() {
        return CallError::Capability {
            reason: refused.0.clone(),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => CallError::StackOverflow,
        Some(Trap::UnreachableCodeReached) if state.stderr_tail().contains("panicked") => {
            let message = state.stderr_tail();
            let message = message
                .split_once("panicked at ")
                .map(|(_, m)| m.to_string())
                .unwrap_or(message);
            CallError::Panic { message }
        }
        Some(Trap::MemoryOutOfBounds) => CallError::Trap {
            message: format!(
                "{}: the guest read or wrote outside its memory, which is also how a guest whose own stack overflows fails",
                Trap::MemoryOutOfBounds
            ),
        },
        Some(trap) => CallError::Trap {
            message: trap.to_string(),
        },
        None => {
            let mut message = format!("{error:#}");
            capabilities::truncate(&mut message, MAX_REASON_BYTES);
            CallError::Trap { message }
        }
    }
}

/// Keeps a guest-supplied reason to a sane length.
fn cap_reason(mut error: CallError) -> CallError {
    if let CallError::InvalidConfig { reason }
    | CallError::Capability { reason }
    | CallError::Http { reason }
    | CallError::Failed { reason }
    | CallError::BotUnavailable { reason }
    | CallError::BotProtocol { reason } = &mut error
    {
        capabilities::truncate(reason, MAX_REASON_BYTES);
        *reason = capabilities::escape_controls(reason).into_owned();
    }
    error
}

/// Checks what `describe` returned and turns it into the host's type.
fn check_description(
    label: &str,
    info: current::flowhost::plugin::types::PluginInfo,
    kind: PluginKind,
    contract: String,
) -> Result<PluginInfo, LoadError> {
    let bad = |reason: String| LoadError::BadDescription {
        plugin: label.to_string(),
        reason,
    };
    let name_ok = !info.name.is_empty()
        && info.name.len() <= 64
        && info
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(bad(format!(
            "name {:?}: use 1 to 64 characters of a-z, 0-9 and -",
            info.name
        )));
    }
    for (field, text, max) in [
        ("version", &info.version, MAX_DESCRIBE_VERSION),
        ("description", &info.description, MAX_DESCRIBE_TEXT),
        ("config schema", &info.config_schema, MAX_DESCRIBE_SCHEMA),
    ] {
        if text.len() > max {
            return Err(bad(format!(
                "a {field} of {} bytes; at most {max}",
                text.len()
            )));
        }
    }
    if info.capabilities.len() > MAX_DESCRIBE_CAPABILITIES {
        return Err(bad(format!(
            "{} capabilities; at most {MAX_DESCRIBE_CAPABILITIES}",
            info.capabilities.len()
        )));
    }
    let config_schema: Value = serde_json::from_str(&info.config_schema)
        .map_err(|e| bad(format!("a config schema that is not JSON: {e}")))?;
    if !(config_schema.is_object() || config_schema.is_boolean()) {
        return Err(bad(
            "a config schema that is neither an object nor a boolean".into(),
        ));
    }
    // A schema that does not compile would silently check nothing.
    jsonschema::validator_for(&config_schema)
        .map_err(|e| bad(format!("a config schema that does not compile: {e}")))?;
    let mut capabilities: Vec<Capability> = info
        .capabilities
        .into_iter()
        .map(Capability::from)
        .collect();
    capabilities.sort();
    capabilities.dedup();
    Ok(PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        config_schema,
        capabilities,
        kind,
        contract,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use current::flowhost::plugin::types::PluginInfo as WitInfo;

    fn info(description: String, config_schema: &str) -> WitInfo {
        WitInfo {
            name: "p".into(),
            version: "1.0.0".into(),
            description,
            config_schema: config_schema.into(),
            capabilities: Vec::new(),
        }
    }

    /// Issue 8, item 21: what `describe` returns is bounded, and a schema
    /// that does not compile is refused.
    #[test]
    fn descriptions_are_bounded_and_schemas_must_compile() {
        let check = |i| check_description("p", i, PluginKind::Action, "0.1.0".into());
        assert!(check(info("ok".into(), "{}")).is_ok());
        let long = check(info("x".repeat(MAX_DESCRIBE_TEXT + 1), "{}")).unwrap_err();
        assert!(long.to_string().contains("a description of"), "{long}");
        let bad = check(info("ok".into(), r#"{"type": 12}"#)).unwrap_err();
        assert!(bad.to_string().contains("does not compile"), "{bad}");
    }
}
