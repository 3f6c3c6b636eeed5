//! Retry delays: exponential from [`START`] to [`CAP`] with ±50 % jitter,
//! and a bounded number of attempts.

use std::time::Duration;

const START: Duration = Duration::from_millis(200);
const CAP: Duration = Duration::from_secs(60);
/// Attempts before a message is given up (about 10 minutes of retrying).
pub const MAX_ATTEMPTS: u32 = 16;

/// The delay before retry number `attempt` (1 for the first retry).
pub fn delay(attempt: u32) -> Duration {
    let base = START
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(CAP);
    // Jitter from a random UUID's bits: 0.5x to 1.5x.
    let jitter = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_start_to_the_cap_with_jitter() {
        for (attempt, base) in [(1, 200), (2, 400), (3, 800), (12, 60_000), (40, 60_000)] {
            let d = delay(attempt).as_millis() as u64;
            assert!(
                d >= base / 2 && d <= base * 3 / 2,
                "attempt {attempt}: {d} ms"
            );
        }
    }

    #[test]
    fn retrying_is_bounded_in_attempts_and_total_time() {
        let worst: Duration = (1..MAX_ATTEMPTS)
            .map(|a| START.saturating_mul(1 << (a - 1).min(16)).min(CAP) * 3 / 2)
            .sum();
        assert!(worst < Duration::from_secs(20 * 60), "{worst:?}");
    }
}
