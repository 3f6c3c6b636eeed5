//! The wasmtime engines: their configuration (pooling allocator, epochs,
//! how a memory starts) and the ticker thread that advances their epochs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of time budgets and of a
/// spinning guest's yields to other conversations.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Pool slots reset at a time by default (see [`build_engine`]).
pub const DEFAULT_DECOMMIT_BATCH: usize = 16;

/// Components at least this large get their memory's initial contents
/// mapped copy-on-write; smaller ones get it copied (see [`InitialMemory`]).
pub const LARGE_COMPONENT_BYTES: usize = 1 << 20;

/// How an instance's linear memory gets its initial contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialMemory {
    /// Copied in at each instantiation. For a small module (a Rust plugin,
    /// the built-ins, the template sandbox) that is a few KiB, and the pages
    /// it writes are fresh ones, so they need no TLB flush later.
    Copied,
    /// Mapped copy-on-write from an image made once. For a large module (a
    /// Python or JavaScript plugin, whose interpreter snapshot is megabytes)
    /// copying would cost milliseconds a call. But the first write to each
    /// mapped page is a fault whose TLB flush interrupts the other cores.
    CopyOnWrite,
}

impl InitialMemory {
    /// The way for a component of `len` bytes.
    pub fn for_component(len: usize) -> Self {
        if len >= LARGE_COMPONENT_BYTES {
            InitialMemory::CopyOnWrite
        } else {
            InitialMemory::Copied
        }
    }
}

/// Builds an engine whose pool holds `slots` concurrent instances with at
/// most `max_memory_bytes` of linear memory each.
///
/// A finished call's slot is reset (its dirty pages given back with
/// `madvise`) in batches of `decommit_batch` regions. Each `madvise` makes
/// the kernel interrupt the other cores to flush their TLBs, so a batch
/// costs one interrupt instead of one per slot: under load, batches of 16
/// cut the server's CPU per message by about 13 % (BENCHMARKS.md). A slot
/// waiting in a batch is not reused until the batch is reset, and keeps the
/// pages its call dirtied resident until then: at most `cores x
/// (decommit_batch - 1)` regions, each within its plugin's memory limit.
/// Slots in a batch count against the pool, so the pool's bound on memory
/// (`slots x max_memory_bytes`) is unchanged.
pub(crate) fn build_engine(
    slots: u32,
    max_memory_bytes: usize,
    decommit_batch: usize,
    initial_memory: InitialMemory,
) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    // A Rust wasip2 component instantiates a handful of core modules (the
    // program plus adapter shims) with one memory and a few tables.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .total_stacks(slots)
        .max_memory_size(max_memory_bytes)
        // Measured on these machines: keeping 64 KiB resident makes a fresh
        // instance cheapest (1 MiB is slower again).
        .linear_memory_keep_resident(64 * 1024)
        .table_keep_resident(64 * 1024)
        // Fiber stacks too: zeroing a little beats faulting pages back in.
        .async_stack_keep_resident(64 * 1024)
        .decommit_batch_size(decommit_batch.max(1));

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(initial_memory == InitialMemory::CopyOnWrite)
        .max_wasm_stack(512 * 1024)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// A thread outside the tokio runtime that advances the engines' epochs,
/// so a guest that never calls the host is still interrupted and yields.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engines: Vec<Engine>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("flowhost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
