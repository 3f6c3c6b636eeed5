//! The guarantees the engine, the intake and the sender rely on, checked
//! against a store. Every store runs the same checks through
//! [`conformance_tests!`], given a way to open it on one place again: a
//! reopen stands for a restart, so what a check reads after it is what a
//! crash after a durable write would have left.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::json;

use super::{
    DeadLetter, Echo, EchoOutcome, InboundEvent, NewVersion, ProductionMoved, SeenKey, Settling,
    Storage, TurnCommit,
};
use crate::model::fact::Fact;
use crate::model::version::{Sandbox, VersionOrigin};
use crate::model::{
    Contact, ConversationState, Effects, HistoryEntry, OutboxMessage, OutgoingMessage, TicketDraft,
    Timer, TimerKind,
};

/// A store being opened.
pub type Opening = Pin<Box<dyn Future<Output = Storage> + Send>>;

/// Opens the store under test on the same place each time it is called
/// (a fresh place for each check).
pub trait Reopen: Fn() -> Opening + Send + Sync {}
impl<F: Fn() -> Opening + Send + Sync> Reopen for F {}

fn state(customer: &str) -> ConversationState {
    let contact = Contact {
        id: customer.into(),
        ..Contact::default()
    };
    ConversationState::new("acct", contact, 1, "en", 1_000)
}

fn message(state: &ConversationState, id: &str, text: &str) -> OutboxMessage {
    OutboxMessage {
        id: id.into(),
        conversation: state.key(),
        conversation_id: state.id(),
        account: state.account.clone(),
        recipient: state.customer.clone(),
        message: OutgoingMessage {
            id: id.into(),
            text: Some(text.into()),
            ..OutgoingMessage::default()
        },
        created_ms: 1_000,
        sender: "bot".into(),
        sent_parts: 0,
        window_from_ms: Some(1_000),
    }
}

fn timer(state: &ConversationState, id: &str, due_ms: u64) -> Timer {
    Timer {
        id: id.into(),
        conversation: state.key(),
        session: state.session,
        due_ms,
        kind: TimerKind::AutomessageNext {
            automessage: "later".into(),
        },
    }
}

fn line(text: &str) -> HistoryEntry {
    HistoryEntry {
        at_ms: 1_000,
        kind: "in".into(),
        text: text.into(),
        attachments: Vec::new(),
        language: None,
    }
}

/// An event whose dedupe key and record are `key`, for customer `key`.
fn event(key: &str) -> InboundEvent {
    InboundEvent {
        dedupe_key: key.into(),
        conversation: format!("acct\0{key}"),
        record: key.as_bytes().to_vec(),
    }
}

/// Accepts one event and returns its inbox sequence.
/// The records of the events waiting in the inbox, in order.
async fn waiting_records(storage: &Storage) -> Vec<Vec<u8>> {
    let waiting = storage.inbox(None, 1_000).await.unwrap();
    waiting.into_iter().map(|(_, record)| record).collect()
}

async fn accept_one(storage: &Storage, key: &str) -> u64 {
    let accepted = storage
        .accept_inbound(vec![event(key)], 1_000)
        .await
        .unwrap();
    assert_eq!(accepted, 1);
    let waiting = storage.inbox(None, 100).await.unwrap();
    let (seq, _) = waiting.iter().find(|(_, r)| r == key.as_bytes()).unwrap();
    *seq
}

/// A turn's changes are all there together: state, saved data, ticket,
/// outgoing message, timer, history, and its event gone from the inbox;
/// and still all there after a restart that follows a durable write.
pub async fn a_turn_is_written_whole(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let seq = accept_one(&storage, "m1").await;
    let state = state("whole");
    let turn = TurnCommit {
        state: Some(state.clone()),
        conversation_id: state.id(),
        effects: Effects {
            data_changes: BTreeMap::from([("order".into(), Some(json!("A-1")))]),
            tickets: vec![TicketDraft {
                id: "t1".into(),
                title: "Refund".into(),
                category: "order".into(),
                comment: String::new(),
            }],
            ..Effects::default()
        },
        outbox: vec![message(&state, "o1", "hello")],
        timers_add: vec![timer(&state, "tm1", 5_000)],
        inbox_remove: vec![seq],
        history: vec![line("hi")],
        history_from: 0,
        ..TurnCommit::default()
    };
    storage.commit_turn(turn, 2_000).await.unwrap();
    storage.flush().await.unwrap();
    drop(storage);

    let storage = reopen().await;
    assert_eq!(
        storage.conversation(&state.key()).await.unwrap(),
        Some(state.clone())
    );
    let data = storage.load_data(&state.id()).await.unwrap();
    assert_eq!(data.get("order"), Some(&json!("A-1")));
    let tickets = storage.tickets_of(&state.id()).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(
        (tickets[0].id.as_str(), tickets[0].created_at_ms),
        ("t1", 2_000)
    );
    let outbox = storage.outbox_of(&state.key(), 10).await.unwrap();
    assert_eq!(outbox, [message(&state, "o1", "hello")]);
    let due = storage.due_timers(5_000, 10).await.unwrap();
    assert_eq!(due, [timer(&state, "tm1", 5_000)]);
    assert_eq!(storage.history(&state.key()).await.unwrap(), [line("hi")]);
    assert!(storage.inbox(None, 10).await.unwrap().is_empty());
}

/// Turns committed at the same moment (a store may apply them together)
/// each land whole: their states, messages and events handled.
pub async fn concurrent_turns_each_land_whole(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let mut turns = Vec::new();
    for i in 0..32 {
        let seq = accept_one(&storage, &format!("m{i}")).await;
        let state = state(&format!("together{i}"));
        turns.push(TurnCommit {
            state: Some(state.clone()),
            conversation_id: state.id(),
            outbox: vec![message(&state, &format!("o{i}"), "hello")],
            inbox_remove: vec![seq],
            history: vec![line("hi")],
            ..TurnCommit::default()
        });
    }
    let states: Vec<_> = turns.iter().map(|t| t.state.clone().unwrap()).collect();
    let commits = turns.into_iter().map(|turn| {
        let storage = storage.clone();
        tokio::spawn(async move { storage.commit_turn(turn, 2_000).await })
    });
    for committed in futures::future::join_all(commits).await {
        committed.unwrap().unwrap();
    }
    storage.flush().await.unwrap();
    drop(storage);

    let storage = reopen().await;
    for (i, state) in states.iter().enumerate() {
        let stored = storage.conversation(&state.key()).await.unwrap();
        assert_eq!(stored.as_ref(), Some(state));
        let outbox = storage.outbox_of(&state.key(), 10).await.unwrap();
        assert_eq!(outbox, [message(state, &format!("o{i}"), "hello")]);
        assert_eq!(storage.history(&state.key()).await.unwrap(), [line("hi")]);
    }
    assert!(storage.inbox(None, 100).await.unwrap().is_empty());
}

/// An event is accepted once however often it is delivered, until its
/// dedupe key expires; accepted events survive a restart, in order.
pub async fn events_are_deduplicated_and_kept_in_order(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let batch = |keys: &[&str]| -> Vec<InboundEvent> { keys.iter().map(|k| event(k)).collect() };
    assert_eq!(
        storage
            .accept_inbound(batch(&["a", "b"]), 1_000)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        storage
            .accept_inbound(batch(&["b", "c", "a"]), 2_000)
            .await
            .unwrap(),
        1
    );
    drop(storage);

    let storage = reopen().await;
    let records = waiting_records(&storage).await;
    assert_eq!(records, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // Keys seen before 1 500 expire; `a` and `b` are new again, `c` is not.
    assert_eq!(storage.expire_seen(1_500, 100).await.unwrap(), 2);
    assert_eq!(
        storage
            .accept_inbound(batch(&["a", "c"]), 3_000)
            .await
            .unwrap(),
        1
    );
}

/// Webhooks accepted at the same moment (a store may apply them together)
/// keep each event once, whichever webhook carried it, and each webhook
/// hears how many of its own were new.
pub async fn concurrent_accepts_keep_each_event_once(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let webhooks = 48;
    // Webhook `i` carries events `i` and `i + 1`, and one every webhook carries.
    let accepts = (0..webhooks).map(|i| {
        let storage = storage.clone();
        tokio::spawn(async move {
            let events = [format!("e{i}"), format!("e{}", i + 1), "shared".into()];
            let events = events.iter().map(|k| event(k)).collect();
            storage.accept_inbound(events, 1_000).await.unwrap()
        })
    });
    let new: usize = futures::future::join_all(accepts)
        .await
        .into_iter()
        .map(|accepted| accepted.unwrap())
        .sum();
    // e0 ..= e48 and `shared`.
    assert_eq!(new, webhooks + 2);
    drop(storage);

    let storage = reopen().await;
    let mut records = waiting_records(&storage).await;
    records.sort();
    let mut expected: Vec<Vec<u8>> = (0..=webhooks)
        .map(|i| format!("e{i}").into_bytes())
        .chain([b"shared".to_vec()])
        .collect();
    expected.sort();
    assert_eq!(records, expected);
}

/// The inbox pages by sequence; a removed event is gone; an event whose
/// turn keeps failing is set aside with its reason.
pub async fn the_inbox_pages_and_sets_events_aside(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let first = accept_one(&storage, "e1").await;
    let second = accept_one(&storage, "e2").await;
    let third = accept_one(&storage, "e3").await;
    assert!(first < second && second < third);
    let after_first = storage.inbox(Some(first), 1).await.unwrap();
    assert_eq!(after_first, [(second, b"e2".to_vec())]);
    assert_eq!(
        storage.inbox_record(third).await.unwrap(),
        Some(b"e3".to_vec())
    );
    storage.remove_from_inbox(first).await.unwrap();
    storage
        .dead_letter(second, "failed 3 times".into(), 9)
        .await
        .unwrap();
    drop(storage);

    let storage = reopen().await;
    let waiting = storage.inbox(None, 10).await.unwrap();
    assert_eq!(waiting, [(third, b"e3".to_vec())]);
    let dead = storage.dead_letters(10).await.unwrap();
    assert_eq!(
        dead,
        [DeadLetter {
            seq: second,
            record: "e2".into(),
            reason: "failed 3 times".into(),
            at_ms: 9,
        }]
    );
}

/// A start counts reruns of the events an earlier run left waiting.
pub async fn reruns_are_counted_across_restarts(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let seq = accept_one(&storage, "r1").await;
    drop(storage);

    let storage = reopen().await;
    let below = storage.begin_recovery().await.unwrap();
    assert!(seq < below, "the event came from the earlier run");
    assert_eq!(storage.count_restart(seq).await.unwrap(), 1);
    drop(storage);

    let storage = reopen().await;
    storage.begin_recovery().await.unwrap();
    assert_eq!(storage.count_restart(seq).await.unwrap(), 2);
}

/// Due timers come earliest first, up to the limit; a removed timer does
/// not fire; the next due time is known.
pub async fn timers_fall_due_in_order(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let state = state("timers");
    let late = timer(&state, "late", 9_000);
    let early = timer(&state, "early", 3_000);
    let middle = timer(&state, "middle", 6_000);
    let add = TurnCommit {
        timers_add: vec![late.clone(), early.clone(), middle.clone()],
        ..TurnCommit::default()
    };
    storage.commit_turn(add, 1_000).await.unwrap();
    assert_eq!(storage.next_timer_due().await.unwrap(), Some(3_000));
    assert_eq!(storage.due_timers(2_999, 10).await.unwrap(), []);
    assert_eq!(
        storage.due_timers(9_000, 2).await.unwrap(),
        [early.clone(), middle.clone()]
    );

    let remove = TurnCommit {
        timers_remove: vec![early.reference(), middle.reference()],
        ..TurnCommit::default()
    };
    storage.commit_turn(remove, 4_000).await.unwrap();
    storage.flush().await.unwrap();
    drop(storage);

    let storage = reopen().await;
    assert_eq!(storage.due_timers(u64::MAX, 10).await.unwrap(), [late]);
    assert_eq!(storage.next_timer_due().await.unwrap(), Some(9_000));
}

/// The outbox keeps each conversation's messages in order; a message sent
/// in parts resumes after the last part the channel took; a send under way
/// is still marked after a restart; a refused message leaves with its
/// reason.
pub async fn the_outbox_resumes_where_it_stopped(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let state = state("outbox");
    let (first, second) = (message(&state, "o1", "one"), message(&state, "o2", "two"));
    let turn = TurnCommit {
        outbox: vec![first.clone(), second.clone()],
        ..TurnCommit::default()
    };
    storage.commit_turn(turn, 1_000).await.unwrap();
    assert_eq!(storage.outbox_conversations().await.unwrap(), [state.key()]);
    storage.mark_in_flight("o1", 1_100).await.unwrap();
    storage
        .record_sent(first.clone(), "mid.1".into(), 2)
        .await
        .unwrap();
    storage.mark_in_flight("o1", 1_200).await.unwrap();
    drop(storage);

    let storage = reopen().await;
    assert_eq!(storage.in_flight().await.unwrap(), ["o1"]);
    let waiting = storage.outbox_of(&state.key(), 10).await.unwrap();
    assert_eq!(waiting.len(), 2);
    assert_eq!((waiting[0].id.as_str(), waiting[0].sent_parts), ("o1", 1));
    assert_eq!(storage.sent_as("mid.1").await.unwrap(), Some("o1".into()));
    storage
        .record_sent(waiting[0].clone(), "mid.2".into(), 2)
        .await
        .unwrap();
    assert!(storage.in_flight().await.unwrap().is_empty());
    storage
        .record_failed(second.clone(), "blocked".into(), 1_300)
        .await
        .unwrap();
    storage.flush().await.unwrap();
    drop(storage);

    let storage = reopen().await;
    assert!(
        storage
            .outbox_of(&state.key(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(storage.outbox_conversations().await.unwrap().is_empty());
    let failed = storage.failed_messages().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].message.id.as_str(), failed[0].reason.as_str()),
        ("o2", "blocked")
    );
}

/// Each turn adds only its own history lines, and a customer's history
/// runs across sessions, oldest first.
pub async fn history_runs_across_sessions(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let mut state = state("history");
    for (turn, text) in ["one", "two", "three"].into_iter().enumerate() {
        let commit = TurnCommit {
            state: Some(state.clone()),
            history: vec![line(text)],
            history_from: turn as u64,
            ..TurnCommit::default()
        };
        storage.commit_turn(commit, 1_000).await.unwrap();
        state = state.next_session(state.contact.clone(), 1_000);
    }
    let texts: Vec<String> = storage
        .history(&state.key())
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

/// A send in doubt is held until its echo settles it, or given up; an
/// echo that comes first is kept for the send it may confirm.
pub async fn echoes_settle_sends_in_doubt(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let state = state("doubt");
    let queued = ["one", "two", "three"].iter().enumerate();
    let turn = TurnCommit {
        outbox: queued
            .map(|(i, text)| message(&state, &format!("m{}", i + 1), text))
            .collect(),
        ..TurnCommit::default()
    };
    storage.commit_turn(turn, 1_000).await.unwrap();
    let doubt = |id: &str, text: &str| Settling {
        message_id: id.into(),
        conversation: state.key(),
        account: "acct".into(),
        recipient: "doubt".into(),
        text: text.into(),
        part: 0,
        parts: 1,
        deadline_ms: 10_000,
    };
    let echo = |text: &str| Echo {
        account: "acct".into(),
        recipient: "doubt".into(),
        text: text.into(),
        at_ms: 5_000,
    };
    assert!(!storage.begin_settling(doubt("m1", "one")).await.unwrap());
    assert!(!storage.begin_settling(doubt("m2", "two")).await.unwrap());
    drop(storage);

    let storage = reopen().await;
    assert!(storage.any_settling());
    let outcome = storage.note_echo(echo("two"), "mid.2").await.unwrap();
    assert_eq!(outcome, EchoOutcome::Settled("m2".into()));
    assert_eq!(storage.sent_as("mid.2").await.unwrap(), Some("m2".into()));
    let again = storage.note_echo(echo("two"), "mid.2").await.unwrap();
    assert_eq!(again, EchoOutcome::Known);
    storage.end_settling("m1").await.unwrap();
    assert!(storage.settling().await.unwrap().is_empty());

    // An echo before its send is in doubt is kept, and claimed by it.
    let early = storage.note_echo(echo("three"), "mid.3").await.unwrap();
    assert_eq!(early, EchoOutcome::Kept);
    assert!(storage.begin_settling(doubt("m3", "three")).await.unwrap());
    assert_eq!(storage.sent_as("mid.3").await.unwrap(), Some("m3".into()));
    let left: Vec<String> = storage
        .outbox_of(&state.key(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        left,
        ["m1"],
        "settled sends leave the outbox; m1 is sent again"
    );
}

/// Of two publishes made on the same production version, exactly one wins,
/// and the other is told which version production moved to.
pub async fn only_one_publish_on_a_base_wins(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let version = |expected: u64| NewVersion {
        document: json!({"queues": {}}),
        applied_by: "admin".into(),
        applied_at_ms: 1,
        comment: format!("on top of {expected}"),
        origin: VersionOrigin::Sandbox,
        expected_production: expected,
        rebase_sandbox: true,
        plugins: BTreeMap::new(),
    };
    assert_eq!(storage.production().await.unwrap(), None);
    let sandbox = Sandbox {
        document: json!({}),
        based_on: 0,
        updated_at_ms: 0,
        test_contacts: Vec::new(),
        plugins: BTreeMap::new(),
    };
    storage.put_sandbox(sandbox).await.unwrap();
    let first = storage.publish(version(0)).await.unwrap().unwrap();
    assert_eq!(first.number, 1);
    assert_eq!(storage.sandbox().await.unwrap().unwrap().based_on, 1);
    let (a, b) = tokio::join!(storage.publish(version(1)), storage.publish(version(1)));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    let moved = ProductionMoved {
        expected: 1,
        current: 2,
    };
    assert!(outcomes.contains(&Err(moved)));
    drop(storage);

    let storage = reopen().await;
    assert_eq!(storage.production().await.unwrap().unwrap().number, 2);
    let numbers: Vec<u64> = storage
        .flow_versions(10)
        .await
        .unwrap()
        .iter()
        .map(|v| v.number)
        .collect();
    assert_eq!(numbers, [2, 1]);
}

/// Facts come back by period, in time order; pruning removes exactly the
/// turns' facts older than the cut.
pub async fn facts_are_read_by_period_and_pruned_by_age(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let started = |connector: &str| Fact::Started {
        connector: connector.into(),
    };
    for at in 0..300 {
        let turn = TurnCommit {
            conversation_id: format!("acct:c:{at}"),
            facts: vec![started("ig"), started("wa")],
            ..TurnCommit::default()
        };
        storage.commit_turn(turn, 1_000 + at).await.unwrap();
    }
    let facts = |from_ms: u64, to_ms: u64| {
        let storage = storage.clone();
        async move {
            let mut found = Vec::new();
            storage
                .each_fact(from_ms, to_ms, |r| found.push(r.at_ms))
                .await
                .unwrap();
            found
        }
    };
    let all = facts(0, u64::MAX).await;
    assert_eq!(all.len(), 600);
    assert!(all.is_sorted());
    let some = facts(1_100, 1_200).await;
    assert_eq!((some.len(), some[0], some[199]), (200, 1_100, 1_199));
    assert_eq!(storage.prune_facts(1_250).await.unwrap(), 250);
    let left = facts(0, u64::MAX).await;
    assert_eq!((left.len(), left[0]), (100, 1_250));
}

/// Keys that come from outside may hold any bytes, a zero byte included
/// (sled takes them; PostgreSQL's text cannot): a dedupe key, a session
/// id, a saved-data name and a channel's message id all keep theirs.
pub async fn keys_with_a_zero_byte_are_kept(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let hostile = |key: &str| InboundEvent {
        dedupe_key: key.into(),
        conversation: "acct\0zero".into(),
        record: key.as_bytes().to_vec(),
    };
    let events = vec![hostile("m\0a"), hostile("m\0b"), hostile("m\0a")];
    assert_eq!(storage.accept_inbound(events, 1_000).await.unwrap(), 2);

    let state = state("zero");
    let session = "acct:ze\0ro:1".to_string();
    let turn = TurnCommit {
        state: Some(state.clone()),
        conversation_id: session.clone(),
        effects: Effects {
            data_changes: BTreeMap::from([("na\0me".into(), Some(json!(1)))]),
            tickets: vec![TicketDraft {
                id: "t0".into(),
                title: "zero".into(),
                category: "order".into(),
                comment: String::new(),
            }],
            ..Effects::default()
        },
        outbox: vec![message(&state, "z1", "hi")],
        ..TurnCommit::default()
    };
    storage.commit_turn(turn, 2_000).await.unwrap();
    let data = storage.load_data(&session).await.unwrap();
    assert_eq!(data.get("na\0me"), Some(&json!(1)));
    assert_eq!(storage.tickets_of(&session).await.unwrap().len(), 1);
    let sent = message(&state, "z1", "hi");
    storage.mark_in_flight("z1", 2_100).await.unwrap();
    storage.record_sent(sent, "mid\0z".into(), 1).await.unwrap();
    assert_eq!(storage.sent_as("mid\0z").await.unwrap(), Some("z1".into()));
    let echo = Echo {
        account: "acct".into(),
        recipient: "zero".into(),
        text: "hi".into(),
        at_ms: 2_200,
    };
    let known = storage.note_echo(echo, "mid\0z").await.unwrap();
    assert_eq!(known, EchoOutcome::Known);
}

/// Dedupe keys move between stores with their times: the keys page in
/// key order, remembered keys make redeliveries duplicates, keep their
/// own time when already known, expire by the time they came with, and
/// outlive a restart.
pub async fn dedupe_keys_move_with_their_times(reopen: &dyn Reopen) {
    let storage = reopen().await;
    let event = |key: &str| InboundEvent {
        dedupe_key: key.into(),
        conversation: "acct:moved".into(),
        record: key.as_bytes().to_vec(),
    };
    storage
        .accept_inbound(vec![event("m-local")], 5_000)
        .await
        .unwrap();
    let moved = |key: &str, at_ms| SeenKey {
        key: key.into(),
        at_ms,
    };
    let keys = vec![
        moved("m-b", 1_000),
        moved("m-a\0x", 2_000),
        moved("m-local", 9_000),
        moved("m-c", 4_000),
    ];
    storage.remember_seen(keys).await.unwrap();
    drop(storage);
    let storage = reopen().await;

    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = storage.seen_after(after.as_deref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        walked.extend(page);
    }
    let expected = [
        moved("m-a\0x", 2_000),
        moved("m-b", 1_000),
        moved("m-c", 4_000),
        moved("m-local", 5_000),
    ];
    assert_eq!(walked, expected);

    let redelivered = vec![event("m-a\0x"), event("m-b"), event("m-new")];
    assert_eq!(storage.accept_inbound(redelivered, 6_000).await.unwrap(), 1);
    // `m-b` and `m-a\0x` came with times before 3 000; the rest stay.
    assert_eq!(storage.expire_seen(3_000, 100).await.unwrap(), 2);
    assert_eq!(
        storage
            .accept_inbound(vec![event("m-b"), event("m-c")], 7_000)
            .await
            .unwrap(),
        1
    );
}

/// Runs every check above against a store, one test each. `$place` names
/// an `async fn() -> Box<dyn Reopen>` that makes a fresh place for the
/// store and returns how to open it there.
#[macro_export]
macro_rules! conformance_tests {
    ($place:path) => {
        $crate::conformance_tests!(@each $place,
            a_turn_is_written_whole,
            concurrent_turns_each_land_whole,
            events_are_deduplicated_and_kept_in_order,
            concurrent_accepts_keep_each_event_once,
            the_inbox_pages_and_sets_events_aside,
            reruns_are_counted_across_restarts,
            timers_fall_due_in_order,
            the_outbox_resumes_where_it_stopped,
            history_runs_across_sessions,
            echoes_settle_sends_in_doubt,
            only_one_publish_on_a_base_wins,
            facts_are_read_by_period_and_pruned_by_age,
            keys_with_a_zero_byte_are_kept,
            dedupe_keys_move_with_their_times,
        );
    };
    (@each $place:path, $($check:ident,)*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let reopen = $place().await;
                $crate::storage::conformance::$check(&*reopen).await;
            }
        )*
    };
}
