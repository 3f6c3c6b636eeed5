//! Whether each account's sends are getting through, for `/readyz`: an
//! account whose last [`FAILING_AFTER`] attempts all failed makes the server
//! not ready (with the reason), until one succeeds.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failed attempts in a row that make an account failing.
pub const FAILING_AFTER: u32 = 5;

#[derive(Default)]
pub struct SendHealth {
    failing: Mutex<HashMap<String, Failures>>,
}

struct Failures {
    in_a_row: u32,
    last_reason: String,
}

impl SendHealth {
    /// A send to `account` got through.
    pub fn sent(&self, account: &str) {
        self.failing.lock().expect("health lock").remove(account);
    }

    /// A send attempt to `account` failed (it may be retried).
    pub fn failed(&self, account: &str, reason: &str) {
        let mut failing = self.failing.lock().expect("health lock");
        let failures = failing.entry(account.to_string()).or_insert(Failures {
            in_a_row: 0,
            last_reason: String::new(),
        });
        failures.in_a_row = failures.in_a_row.saturating_add(1);
        failures.last_reason = reason.to_string();
    }

    /// One line per failing account, saying why.
    pub fn problems(&self) -> Vec<String> {
        let failing = self.failing.lock().expect("health lock");
        let mut problems: Vec<String> = failing
            .iter()
            .filter(|(_, f)| f.in_a_row >= FAILING_AFTER)
            .map(|(account, f)| {
                format!(
                    "account `{account}`: the last {} send attempts failed, the latest with: {}",
                    f.in_a_row, f.last_reason
                )
            })
            .collect();
        problems.sort();
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_fails_after_enough_failures_in_a_row_and_recovers_with_one_send() {
        let health = SendHealth::default();
        for _ in 0..FAILING_AFTER - 1 {
            health.failed("shop", "connection refused");
        }
        assert!(health.problems().is_empty());
        health.failed("shop", "HTTP 500");
        assert_eq!(
            health.problems(),
            [format!(
                "account `shop`: the last {FAILING_AFTER} send attempts failed, the latest with: HTTP 500"
            )]
        );
        health.sent("shop");
        assert!(health.problems().is_empty());
    }
}
