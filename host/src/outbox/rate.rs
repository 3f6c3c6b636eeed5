//! Meta's send limits per account: 300 text and 10 audio or video sends
//! within any one second. A sliding window of the last sends' times, exact
//! (no send ever makes more than `limit` within a sliding second) and
//! bounded (`limit` entries per account and class). A token bucket such as
//! GCRA would let a full burst follow a second of steady sends, up to twice
//! the limit within one second.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(1);

/// What is being sent, for its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendClass {
    Text,
    AudioVideo,
}

#[derive(Default)]
pub struct RateLimits {
    /// (account, class) -> times of the sends within the last window.
    windows: Mutex<HashMap<(String, SendClass), VecDeque<Instant>>>,
    /// How many nodes send for the same accounts (0 counts as 1): each
    /// keeps to its share of the limit, so together they keep to it.
    nodes: AtomicUsize,
}

impl RateLimits {
    pub fn limit(class: SendClass) -> usize {
        match class {
            SendClass::Text => 300,
            SendClass::AudioVideo => 10,
        }
    }

    /// Sets how many nodes share the accounts' limits.
    pub fn set_nodes(&self, nodes: usize) {
        self.nodes.store(nodes, Ordering::Relaxed);
    }

    /// This node's share of `class`'s limit (at least one send a second).
    fn share(&self, class: SendClass) -> usize {
        let nodes = self.nodes.load(Ordering::Relaxed).max(1);
        (Self::limit(class) / nodes).max(1)
    }

    /// Waits until a send of `class` for `account` is within its limit and
    /// counts it. Returns how long it waited.
    pub async fn acquire(&self, account: &str, class: SendClass) -> Duration {
        let started = Instant::now();
        loop {
            match self.try_acquire(account, class, Instant::now()) {
                Ok(()) => return started.elapsed(),
                Err(free_at) => tokio::time::sleep_until(free_at).await,
            }
        }
    }

    /// Counts a send at `now` if the window has room; else says when it will.
    fn try_acquire(&self, account: &str, class: SendClass, now: Instant) -> Result<(), Instant> {
        let mut windows = self.windows.lock().expect("rate lock");
        let window = windows.entry((account.to_string(), class)).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() < self.share(class) {
            window.push_back(now);
            Ok(())
        } else {
            Err(window[0] + WINDOW)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes sending for one account keep to half the limit each.
    #[tokio::test(start_paused = true)]
    async fn a_node_of_two_keeps_to_half_the_limit() {
        let limits = RateLimits::default();
        limits.set_nodes(2);
        let started = Instant::now();
        for _ in 0..300 {
            limits.acquire("a", SendClass::Text).await;
        }
        assert_eq!(started.elapsed(), Duration::from_secs(1), "150 a second");
    }

    #[tokio::test(start_paused = true)]
    async fn no_sliding_second_holds_more_than_the_limit() {
        let limits = RateLimits::default();
        let mut times = Vec::new();
        // Three seconds' worth of text sends, asked for all at once.
        for _ in 0..900 {
            limits.acquire("a", SendClass::Text).await;
            times.push(Instant::now());
        }
        for (i, t) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < WINDOW)
                .count();
            assert!(within <= 300, "{within} sends within one second from #{i}");
        }
        // The limit was used, not undershot: 900 sends took two seconds.
        assert_eq!(times[899].duration_since(times[0]), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn accounts_and_classes_have_their_own_windows() {
        let limits = RateLimits::default();
        for _ in 0..10 {
            limits.acquire("a", SendClass::AudioVideo).await;
        }
        let start = Instant::now();
        limits.acquire("a", SendClass::Text).await;
        limits.acquire("b", SendClass::AudioVideo).await;
        assert_eq!(Instant::now(), start, "other windows are not held up");
        let waited = limits.acquire("a", SendClass::AudioVideo).await;
        assert_eq!(waited, WINDOW);
    }
}
