//! What one plugin call may use, and the limiter that enforces memory.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Bounds on one plugin call. Every field has a default that suits the
/// built-in actions; a flow's server configuration can change them per
/// plugin (`plugins.<name>.limits`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Time the guest's own code may run in one call, in milliseconds. Time
    /// spent waiting in host calls (HTTP, templates) or for the executor
    /// after a yield does not count here.
    pub guest_time_ms: u64,
    /// Hard cap on a whole call, host calls included, in milliseconds.
    pub call_timeout_ms: u64,
    /// Budget of each outbound HTTP request, redirects included.
    pub http_timeout_ms: u64,
    /// Largest HTTP response body handed to the guest, in bytes.
    pub http_max_response_bytes: usize,
    /// HTTP requests per call.
    pub max_http_requests: u32,
    /// Linear memory of the component, all memories together, in bytes.
    pub memory_bytes: usize,
    /// Elements of all tables together.
    pub table_elements: usize,
    /// Core and component instances the component may create.
    pub instances: usize,
    /// Context plus configuration sent into the guest, in bytes.
    pub max_input_bytes: usize,
    /// Any one value coming out of the guest (a result, a saved value, a
    /// message, a template), in bytes.
    pub max_output_bytes: usize,
    /// Log lines per call; later ones are dropped and counted.
    pub max_log_lines: u32,
    /// Longest log line kept, in bytes; longer ones are cut.
    pub max_log_line_bytes: usize,
    /// Messages to the customer per call.
    pub max_messages: u32,
    /// Tickets per call.
    pub max_tickets: u32,
    /// Keys of saved data one conversation may hold.
    pub max_data_keys: usize,
    /// Bytes of saved data (keys plus JSON values) one conversation may
    /// hold; the whole of it travels into every call, so it stays well
    /// under `max_input_bytes`.
    pub max_data_bytes: usize,
    /// `conversation-data.set` and `remove` calls per plugin call.
    pub max_data_writes: u32,
    /// Bytes of the guest's stdout and stderr kept (the tail of a panic
    /// message is reported from stderr).
    pub stdio_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            guest_time_ms: 200,
            call_timeout_ms: 30_000,
            http_timeout_ms: 10_000,
            http_max_response_bytes: 2 * 1024 * 1024,
            max_http_requests: 10,
            memory_bytes: 64 * 1024 * 1024,
            table_elements: 20_000,
            instances: 32,
            max_input_bytes: 1024 * 1024,
            max_output_bytes: 1024 * 1024,
            max_log_lines: 100,
            max_log_line_bytes: 4 * 1024,
            max_messages: 10,
            max_tickets: 5,
            max_data_keys: 256,
            max_data_bytes: 256 * 1024,
            max_data_writes: 1_000,
            stdio_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    pub fn guest_time(&self) -> Duration {
        Duration::from_millis(self.guest_time_ms)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }
}

/// Memories one component may have (a Rust component has one).
pub const MAX_MEMORIES: usize = 4;

/// The store's resource limiter. `memory_bytes` and `table_elements` bound
/// all of a component's memories (and tables) together, not each one, so
/// a component with several memories gets no more than one would. It also
/// records whether memory was refused: running out of memory does not
/// surface as a `Trap`, so the limiter is the only reliable witness.
pub(crate) struct MemoryGuard {
    limits: StoreLimits,
    memory_bytes: usize,
    table_elements: usize,
    memory_total: usize,
    table_total: usize,
    pub memory_refused: bool,
}

impl MemoryGuard {
    pub fn new(limits: &Limits) -> Self {
        MemoryGuard {
            limits: StoreLimitsBuilder::new()
                .instances(limits.instances)
                .tables(limits.instances)
                .memories(MAX_MEMORIES)
                .build(),
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            memory_total: 0,
            table_total: 0,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_total - current.min(self.memory_total) + desired;
        if total > self.memory_bytes || maximum.is_some_and(|max| desired > max) {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_total = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_total - current.min(self.table_total) + desired;
        if total > self.table_elements || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.table_total = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8, item 14: two memories share one budget.
    #[test]
    fn memories_are_counted_together() {
        let mut guard = MemoryGuard::new(&Limits {
            memory_bytes: 64 << 20,
            ..Limits::default()
        });
        assert!(guard.memory_growing(0, 40 << 20, None).unwrap());
        assert!(!guard.memory_refused);
        // A second memory of 40 MiB would make 80: refused.
        assert!(!guard.memory_growing(0, 40 << 20, None).unwrap());
        assert!(guard.memory_refused);
        // The first one may still grow within what is left.
        assert!(guard.memory_growing(40 << 20, 60 << 20, None).unwrap());
        assert!(!guard.memory_growing(60 << 20, 65 << 20, None).unwrap());
        assert_eq!(guard.memories(), MAX_MEMORIES);
    }

    #[test]
    fn tables_are_counted_together() {
        let mut guard = MemoryGuard::new(&Limits {
            table_elements: 100,
            ..Limits::default()
        });
        assert!(guard.table_growing(0, 60, None).unwrap());
        assert!(!guard.table_growing(0, 60, None).unwrap());
        assert!(guard.table_growing(0, 40, None).unwrap());
    }
}
