//! Whether a data directory's records are zstd-compressed.
//!
//! Compression divides what flowhost keeps on disk by about three and what
//! it writes by more than two (its records are JSON) for a few percent more
//! CPU per message (BENCHMARKS.md, "bytes written"). sled fixes the choice
//! when it creates a database and refuses to open it with the other one, so
//! the setting applies to new data directories only: an existing one keeps
//! the choice it was created with, and `flowhost storage export` / `import`
//! moves a deployment from one to the other.

use std::path::Path;

/// One of zstd's fast levels, which leave literals without Huffman coding:
/// sled compresses on the storage thread, which every write passes
/// through. Under load, level 1 kept a quarter less on disk than this one
/// but cost about 5 % of the throughput; -3 costs 1 to 3 % (BENCHMARKS.md).
pub const LEVEL: i32 = -3;

/// How many times smaller flowhost's pages are compressed than decoded, at
/// least (the data directory after the same load was 3.5 times smaller
/// compressed: BENCHMARKS.md, "bytes written").
const RATIO: u64 = 3;

/// sled's cache budget for a page cache of `cache_bytes`: sled counts a
/// cached page at its size in the log, so with compression the decoded
/// pages it keeps would take about [`RATIO`] times the budget in memory.
pub fn cache_budget(cache_bytes: u64, compressed: bool) -> u64 {
    if compressed {
        cache_bytes / RATIO
    } else {
        cache_bytes
    }
}

/// Whether the database in `dir` is (or, new, will be) compressed:
/// as recorded in sled's `conf` file when there is one, else `for_new`.
pub fn compressed(dir: &Path, for_new: bool) -> bool {
    match std::fs::read(dir.join("conf")) {
        // The file is sled's text settings followed by a binary checksum.
        Ok(conf) => String::from_utf8_lossy(&conf)
            .lines()
            .any(|line| line.trim() == "use_compression: true"),
        Err(_) => for_new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InboundEvent;
    use crate::storage::sled::{SledOptions, SledStore, when_unlocked};

    fn options(compress_new: bool) -> SledOptions {
        SledOptions {
            cache_bytes: 1 << 20,
            compress_new,
        }
    }

    #[test]
    fn a_new_directory_takes_the_setting_and_keeps_it() {
        for compress in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            SledStore::open(dir.path(), &options(compress)).unwrap();
            assert_eq!(compressed(dir.path(), !compress), compress);
        }
    }

    #[test]
    fn an_existing_directory_opens_with_the_choice_it_was_created_with() {
        for created in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = SledStore::open(dir.path(), &options(created)).unwrap();
                store.mark_in_flight("m-1", 7).unwrap();
                store.db().flush().unwrap();
            }
            // Reopened asking for the other choice: sled would refuse it,
            // so the directory's own is kept, and its records read back.
            let store = when_unlocked(|| SledStore::open(dir.path(), &options(!created)));
            assert_eq!(store.in_flight().unwrap(), vec!["m-1".to_string()]);
            assert_eq!(compressed(dir.path(), !created), created);
        }
    }

    /// A record past sled's inline size goes to a blob file, compressed
    /// too, and reads back whole after a restart.
    #[test]
    fn a_large_record_reads_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let record: Vec<u8> = (0..300_000u32)
            .map(|i| b"abcdefgh"[(i % 8) as usize])
            .collect();
        {
            let store = SledStore::open(dir.path(), &options(true)).unwrap();
            let event = InboundEvent {
                dedupe_key: "mid.large".into(),
                conversation: "acc0:customer".into(),
                record: record.clone(),
            };
            store.accept_together(&[(vec![event], 1_000)]).unwrap();
            store.db().flush().unwrap();
        }
        let store = when_unlocked(|| SledStore::open(dir.path(), &options(true)));
        let waiting = store.inbox(None, 10).unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].1, record);
    }

    /// The same events, as the webhooks' JSON, take less room (about half
    /// here) compressed: the patched sled still compresses what it writes.
    #[test]
    fn compressed_records_take_less_room() {
        let size = |compress: bool| {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path(), &options(compress)).unwrap();
            let events: Vec<_> = (0..10_000)
                .map(|i| InboundEvent {
                    dedupe_key: format!("mid.{i:08}"),
                    conversation: format!("acc{}:customer-{i}", i % 40),
                    record: format!(
                        r#"{{"account":"acc{}","contact":{{"id":"customer-{i}"}},"message":{{"id":"mid.{i:08}","text":"order {i}","timestamp_ms":{}}}}}"#,
                        i % 40,
                        1_700_000_000_000u64 + i
                    )
                    .into_bytes(),
                })
                .collect();
            store.accept_together(&[(events, 1_000)]).unwrap();
            store.db().flush().unwrap();
            store.db().size_on_disk().unwrap()
        };
        let (compressed, plain) = (size(true), size(false));
        assert!(
            compressed * 3 < plain * 2,
            "compressed {compressed} bytes, not compressed {plain}"
        );
    }
}
