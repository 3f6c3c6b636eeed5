//! The data of one store: everything a single plugin call can reach.
//! A store (and so a `CallState`) lives for exactly one call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::v0_1_0::flowhost::plugin::types::HostError;
use super::capabilities::http::HttpGate;
use super::limits::{Limits, MemoryGuard};
use super::types::{ActionContext, Capability, Effects};

/// What a loaded plugin carries into every call.
pub(crate) struct PluginShared {
    pub name: String,
    /// Declared in `describe`; empty while `describe` itself runs.
    pub capabilities: Vec<Capability>,
    pub limits: Limits,
    pub http: HttpGate,
    /// Where `templates.render` runs; `None` inside the sandbox itself.
    pub templates: Option<Arc<super::TemplateSandbox>>,
}

/// The per-call inputs and the effects gathered so far.
pub(crate) struct CallScope {
    /// The conversation as the call sees it; its saved data has the call's
    /// own writes laid over it.
    pub context: ActionContext,
    pub effects: Effects,
    pub log_lines: u32,
    pub http_requests: u32,
    pub data_writes: u32,
    /// Bytes of the conversation's saved data as the call sees it; measured
    /// at the first write, then kept up to date.
    pub data_bytes: Option<usize>,
}

impl CallScope {
    /// A scope for one action call.
    pub fn new(context: ActionContext) -> Self {
        CallScope {
            context,
            ..CallScope::empty()
        }
    }

    /// A scope with nothing in it, for `describe`.
    pub fn empty() -> Self {
        CallScope {
            context: ActionContext::default(),
            effects: Effects::default(),
            log_lines: 0,
            http_requests: 0,
            data_writes: 0,
            data_bytes: None,
        }
    }
}

/// Time accounting: the guest's budget excludes time spent in host calls
/// and time spent waiting for the executor after a yield, so a busy server
/// does not make a well-behaved plugin time out. Everything else counts,
/// a guest blocked in a WASI sleep or poll included. The counters are
/// shared so a watchdog outside the store can read them while the call
/// runs (see [`CallClock::watch`]).
pub(crate) struct CallClock {
    pub times: Arc<CallTimes>,
    pub guest_budget: Duration,
    pub timed_out: bool,
}

/// The clock's counters, in nanoseconds since the call started.
pub(crate) struct CallTimes {
    started: Instant,
    in_host_ns: AtomicU64,
    /// When the host call under way began; `u64::MAX` when there is none.
    host_since_ns: AtomicU64,
    yielded_ns: AtomicU64,
}

impl CallTimes {
    fn new() -> Self {
        CallTimes {
            started: Instant::now(),
            in_host_ns: AtomicU64::new(0),
            host_since_ns: AtomicU64::new(u64::MAX),
            yielded_ns: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Time the guest has used: all of it but host calls and yields.
    pub fn guest_time(&self) -> Duration {
        let now = self.now_ns();
        let since = self.host_since_ns.load(Ordering::Relaxed);
        let current_host = if since == u64::MAX {
            0
        } else {
            now.saturating_sub(since)
        };
        Duration::from_nanos(
            now.saturating_sub(self.in_host_ns.load(Ordering::Relaxed))
                .saturating_sub(self.yielded_ns.load(Ordering::Relaxed))
                .saturating_sub(current_host),
        )
    }
}

impl CallClock {
    pub fn guest_time(&self) -> Duration {
        self.times.guest_time()
    }

    /// A yield to the executor that records how long it waited.
    pub fn timed_yield(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let times = self.times.clone();
        Box::pin(async move {
            let since = Instant::now();
            tokio::task::yield_now().await;
            times
                .yielded_ns
                .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        })
    }

    /// Runs `call` until it ends, the whole call passes `limit`, or the
    /// guest's own time passes its budget by [`WATCHDOG_GRACE`]. The epoch
    /// callback catches a guest that runs, at its budget; this catches one
    /// that waits on WASI (a sleep, a poll), which runs no wasm and so
    /// meets no epoch. The grace is there because, seen from outside, time
    /// the call waited for a busy executor looks like the guest's own: a
    /// loaded server must not time well-behaved guests out.
    pub async fn watch<F: Future>(
        times: Arc<CallTimes>,
        budget: Duration,
        limit: Duration,
        call: F,
    ) -> Result<F::Output, Stopped> {
        let bound = budget + WATCHDOG_GRACE.max(budget);
        let watchdog = async {
            loop {
                tokio::time::sleep(super::EPOCH_TICK).await;
                if times.guest_time() > bound {
                    return Stopped::Budget;
                }
            }
        };
        let bounded = async {
            tokio::select! {
                output = call => Ok(output),
                stopped = watchdog => Err(stopped),
            }
        };
        tokio::time::timeout(limit, bounded)
            .await
            .unwrap_or(Err(Stopped::CallTimeout))
    }
}

/// How far past its budget a guest that runs no wasm may get before the
/// watchdog stops it (at least the budget again).
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(1);

/// Why [`CallClock::watch`] stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The whole call took longer than its limit.
    CallTimeout,
    /// The guest's own time passed its budget.
    Budget,
}

pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryGuard,
    pub plugin: Arc<PluginShared>,
    pub scope: CallScope,
    pub clock: CallClock,
    pub stderr: MemoryOutputPipe,
}

impl CallState {
    pub fn new(plugin: Arc<PluginShared>, scope: CallScope) -> Self {
        let limits = &plugin.limits;
        let stdout = MemoryOutputPipe::new(limits.stdio_bytes);
        let stderr = MemoryOutputPipe::new(limits.stdio_bytes);
        // No env, no args, no preopened directories, no network: WASI gives
        // the guest clocks, randomness and a bounded stdout/stderr only.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryGuard::new(limits),
            clock: CallClock {
                times: Arc::new(CallTimes::new()),
                guest_budget: limits.guest_time(),
                timed_out: false,
            },
            plugin,
            scope,
            stderr,
        }
    }

    /// Refuses a capability the plugin did not declare.
    pub fn require(&self, capability: Capability) -> Result<(), HostError> {
        if self.plugin.capabilities.contains(&capability) {
            Ok(())
        } else {
            Err(HostError::Denied(format!(
                "plugin `{}` did not declare the `{capability}` capability",
                self.plugin.name
            )))
        }
    }

    /// Adds the time since `since` to the host's share of the call.
    pub fn charge_host_time(&mut self, since: Instant) {
        let times = &self.clock.times;
        times
            .in_host_ns
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        times.host_since_ns.store(u64::MAX, Ordering::Relaxed);
    }

    /// Marks the start of a host call that may wait (HTTP, templates):
    /// its time is the host's, not the guest's. End it with
    /// [`CallState::charge_host_time`].
    pub fn begin_host_time(&mut self) -> Instant {
        let times = &self.clock.times;
        times.host_since_ns.store(times.now_ns(), Ordering::Relaxed);
        Instant::now()
    }

    /// The tail of what the guest wrote to stderr, for panic reports.
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let start = text.len().saturating_sub(1024);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
