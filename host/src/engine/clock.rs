//! Time as the engine sees it: the system clock, or a clock that can be
//! moved forward (the terminal simulator's "skip", and tests).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The real time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The real time plus an offset: it may start at another moment (`chat
/// --at`, to try the night's branch by day) and only moves forward.
#[derive(Default)]
pub struct SkippableClock {
    offset_ms: AtomicI64,
}

impl SkippableClock {
    /// A clock that reads `start_ms` now and runs on from there.
    pub fn starting_at(start_ms: u64) -> Self {
        let offset = start_ms as i64 - SystemClock.now_ms() as i64;
        SkippableClock {
            offset_ms: AtomicI64::new(offset),
        }
    }

    /// Moves the clock forward to `target_ms` if that is in its future.
    pub fn skip_to(&self, target_ms: u64) {
        let now = self.now_ms();
        if target_ms > now {
            self.offset_ms
                .fetch_add((target_ms - now) as i64, Ordering::Relaxed);
        }
    }
}

impl Clock for SkippableClock {
    fn now_ms(&self) -> u64 {
        let now = SystemClock.now_ms() as i64 + self.offset_ms.load(Ordering::Relaxed);
        now.max(0) as u64
    }
}

/// A clock that stands still until moved (tests).
pub struct FixedClock(pub AtomicU64);

impl FixedClock {
    pub fn at(ms: u64) -> Self {
        FixedClock(AtomicU64::new(ms))
    }

    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
