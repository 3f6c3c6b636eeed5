//! A webhook body (and a signature header made from its first bytes)
//! through everything that runs before and after the signature check.
//! Nothing may panic; what the cheap pre-check accepts, the full parser
//! accepts too; every event has a dedupe key.
#![no_main]

use flowhost::channels::instagram::{events, signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let header = std::str::from_utf8(&body[..body.len().min(80)]).ok();
    if let Ok(digest) = signature::parse_header(header) {
        let _ = signature::matches(b"app-secret", body, &digest);
    }
    let claimed = events::claimed_accounts(body);
    match events::parse(body) {
        Ok(events) => {
            assert!(claimed.is_ok(), "parse took what the pre-check refused");
            for event in &events {
                let _ = event.dedupe_key();
                let _ = event.refusal();
                let _ = event.customer();
            }
        }
        Err(_) => {
            if let Ok(ids) = &claimed {
                assert!(ids.len() <= events::MAX_ENTRIES);
            }
        }
    }
});
