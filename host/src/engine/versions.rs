//! Which flow a turn runs on. A session runs from start to end on the
//! version that was in production when it started; an apply changes only
//! what new sessions get. The engine keeps production compiled, and the
//! older versions that conversations still run on (compiled again from
//! storage when a conversation needs one no longer in memory, after a
//! restart for example).
//!
//! Test contacts are the exception: their new sessions run on the sandbox
//! (while it validates), so admins try a draft on live traffic before they
//! apply it; such a session records [`SANDBOX_VERSION`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde_json::Value;

use super::Engine;
use crate::flow::{CompiledFlow, PluginCatalog};
use crate::model::{ConversationState, Position};
use crate::publishing::uploads::Uploads;
use crate::registry::PluginSet;

/// Older versions kept compiled; a conversation on one evicted is compiled
/// again on its next turn.
const OLDER_VERSIONS_KEPT: usize = 16;

/// The version number a session on the sandbox records.
pub const SANDBOX_VERSION: u64 = u64::MAX;

/// A compiled flow, the version it is and the plugins it runs with.
pub struct LiveFlow {
    /// 0 for a flow the engine was given without a stored version.
    pub version: u64,
    pub compiled: Arc<CompiledFlow>,
    pub plugins: PluginSet,
    /// The flow's `vars` as JSON, made once rather than every turn.
    pub vars: Value,
}

impl LiveFlow {
    pub fn new(version: u64, compiled: Arc<CompiledFlow>, plugins: PluginSet) -> Arc<Self> {
        let vars = serde_json::to_value(&compiled.flow.vars).unwrap_or(Value::Null);
        Arc::new(LiveFlow {
            version,
            compiled,
            plugins,
            vars,
        })
    }
}

/// Production, swapped whole by an apply, and the older versions in use.
pub(super) struct Flows {
    production: ArcSwap<LiveFlow>,
    older: Mutex<BTreeMap<u64, Arc<LiveFlow>>>,
    /// The sandbox, compiled, and the customers who get it.
    sandbox: ArcSwapOption<SandboxFlow>,
}

struct SandboxFlow {
    flow: Arc<LiveFlow>,
    test_contacts: std::collections::HashSet<String>,
}

impl Flows {
    pub(super) fn new(production: Arc<LiveFlow>) -> Self {
        Flows {
            production: ArcSwap::new(production),
            older: Mutex::default(),
            sandbox: ArcSwapOption::empty(),
        }
    }

    pub(super) fn production(&self) -> Arc<LiveFlow> {
        self.production.load_full()
    }

    /// Makes `next` production; the one it replaces stays at hand for the
    /// sessions still running on it.
    fn switch(&self, next: Arc<LiveFlow>) {
        let previous = self.production.swap(next);
        self.keep(previous);
    }

    fn keep(&self, flow: Arc<LiveFlow>) {
        let mut older = self.older.lock().expect("flows lock");
        older.insert(flow.version, flow);
        while older.len() > OLDER_VERSIONS_KEPT {
            older.pop_first();
        }
    }

    fn older(&self, version: u64) -> Option<Arc<LiveFlow>> {
        self.older
            .lock()
            .expect("flows lock")
            .get(&version)
            .cloned()
    }
}

impl Engine {
    /// Marks the flow the engine was built with as stored version `number`,
    /// running with `plugins` (its pinned uploads among them).
    pub fn with_flow_version(self, number: u64, plugins: PluginSet) -> Self {
        let production = self.flows.production();
        self.flows
            .production
            .store(LiveFlow::new(number, production.compiled.clone(), plugins));
        self
    }

    /// Where versions' uploaded plugins are found, for the older versions
    /// compiled again from storage.
    pub fn with_uploads(mut self, uploads: Arc<Uploads>) -> Self {
        self.uploads = Some(uploads);
        self
    }

    /// The production flow, compiled.
    pub fn flow(&self) -> Arc<CompiledFlow> {
        self.flows.production().compiled.clone()
    }

    /// The production version's number (0: not a stored version).
    pub fn flow_version(&self) -> u64 {
        self.flows.production().version
    }

    /// Puts version `number` in production: new sessions start on it at
    /// once; sessions under way finish on theirs.
    pub fn switch_to(&self, number: u64, compiled: Arc<CompiledFlow>, plugins: PluginSet) {
        self.flows.switch(LiveFlow::new(number, compiled, plugins));
        tracing::info!(version = number, "flow version in production");
    }

    /// Test contacts' new sessions run on `sandbox` (`None`: nobody's).
    pub fn set_sandbox(&self, sandbox: Option<(Arc<CompiledFlow>, PluginSet, Vec<String>)>) {
        self.flows
            .sandbox
            .store(sandbox.map(|(compiled, plugins, contacts)| {
                Arc::new(SandboxFlow {
                    flow: LiveFlow::new(SANDBOX_VERSION, compiled, plugins),
                    test_contacts: contacts.into_iter().collect(),
                })
            }));
    }

    /// The flow a turn on `state` runs on: for a session that has not
    /// begun, the sandbox for a test contact and production for everyone
    /// else; else the version the session began on.
    pub(super) async fn flow_for(&self, state: &ConversationState) -> Arc<LiveFlow> {
        let production = self.flows.production();
        let sandbox = self.flows.sandbox.load();
        let wanted = state.flow_version;
        if let Some(sandbox) = sandbox.as_ref() {
            let starts = state.position == Position::Start;
            if (starts && sandbox.test_contacts.contains(&state.customer))
                || (!starts && wanted == SANDBOX_VERSION)
            {
                return sandbox.flow.clone();
            }
        }
        if state.position == Position::Start
            || wanted == production.version
            || wanted == 0
            || wanted == SANDBOX_VERSION
        {
            return production;
        }
        if let Some(flow) = self.flows.older(wanted) {
            return flow;
        }
        match self.compile_version(wanted).await {
            Ok(flow) => {
                self.flows.keep(flow.clone());
                flow
            }
            Err(why) => {
                tracing::warn!(
                    conversation = %state.id(),
                    "flow version {wanted} cannot run ({why}); the session goes on with version {}",
                    production.version
                );
                production
            }
        }
    }

    async fn compile_version(&self, number: u64) -> Result<Arc<LiveFlow>, String> {
        let version = self
            .storage
            .flow_version(number)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no such version in storage")?;
        let flow = serde_json::from_value(version.document).map_err(|e| e.to_string())?;
        let plugins = match &self.uploads {
            Some(uploads) => uploads.set(&version.plugins).await?,
            None if version.plugins.is_empty() => PluginSet::base(self.registry.clone()),
            None => return Err("it pins uploaded plugins this engine cannot load".into()),
        };
        let catalog = PluginCatalog::from_set(&plugins);
        let (compiled, _) = crate::flow::compile(flow, &catalog).map_err(|r| r.to_string())?;
        Ok(LiveFlow::new(number, Arc::new(compiled), plugins))
    }
}
