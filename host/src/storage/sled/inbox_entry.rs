//! How an inbox entry is stored: the event's record, after the dedupe key
//! it was accepted under and when. An accept is not a transaction (each
//! sled transaction writes the log buffer out twice): it writes the entry
//! first and remembers the key after, so a crash can keep an entry whose key
//! was never remembered. The next open remembers it from the entry
//! (`SledStore::open`), before any redelivery can come in.
//!
//! Layout: `0xFF`, accepted at (ms, u64 big-endian), the key's length (u32
//! big-endian), the key, the record. Entries written before this layout are
//! the bare record: records are JSON (UTF-8), which never starts with
//! `0xFF`.

const TAG: u8 = 0xFF;
const HEADER: usize = 1 + 8 + 4;

/// An inbox entry, read.
#[derive(Debug, PartialEq)]
pub(super) struct InboxEntry<'a> {
    /// When and under which dedupe key it was accepted (`None` for an
    /// entry written before the key was kept with it).
    pub accepted: Option<(u64, &'a [u8])>,
    pub record: &'a [u8],
}

pub(super) fn encode(accepted_ms: u64, key: &str, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER + key.len() + record.len());
    value.push(TAG);
    value.extend_from_slice(&accepted_ms.to_be_bytes());
    let length = u32::try_from(key.len()).expect("a dedupe key is far below 4 GiB");
    value.extend_from_slice(&length.to_be_bytes());
    value.extend_from_slice(key.as_bytes());
    value.extend_from_slice(record);
    value
}

pub(super) fn decode(value: &[u8]) -> InboxEntry<'_> {
    let bare = InboxEntry {
        accepted: None,
        record: value,
    };
    if value.first() != Some(&TAG) || value.len() < HEADER {
        return bare;
    }
    let at = u64::from_be_bytes(value[1..9].try_into().expect("8 bytes"));
    let length = u32::from_be_bytes(value[9..13].try_into().expect("4 bytes")) as usize;
    match value[HEADER..].split_at_checked(length) {
        Some((key, record)) => InboxEntry {
            accepted: Some((at, key)),
            record,
        },
        None => bare,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_its_key_time_and_record() {
        let value = encode(1_234, "mid.1", br#"{"text":"hi"}"#);
        assert_eq!(
            decode(&value),
            InboxEntry {
                accepted: Some((1_234, b"mid.1".as_slice())),
                record: br#"{"text":"hi"}"#,
            }
        );
        let empty = encode(0, "", b"");
        assert_eq!(decode(&empty).accepted, Some((0, b"".as_slice())));
    }

    #[test]
    fn an_entry_from_before_is_its_record() {
        let record = br#"{"text":"hi"}"#;
        assert_eq!(decode(record).accepted, None);
        assert_eq!(decode(record).record, record);
        // A value too short for its header is taken whole, never cut.
        assert_eq!(decode(&[TAG, 1, 2]).record, [TAG, 1, 2]);
    }
}
