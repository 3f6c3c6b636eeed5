//! Lanes: each conversation's events one after another, conversations
//! independent of each other.
//!
//! A conversation with waiting events has a queue and one task that works
//! through it; the task ends when the queue is empty. Nothing waits for a
//! round: a slow turn holds up only its own conversation. Bounds keep the
//! work finite and fair: `workers` (turns running at once; a lane takes a
//! permit per turn, so busy lanes take turns fairly), `held` (events taken
//! out of storage and not yet finished; the dispatcher waits for room), and
//! a cap per lane: past it a conversation's further inbound events are kept
//! only as their inbox sequence (*spilled*) and read back from storage when
//! the lane reaches them, so one conversation flooded with events (or stuck
//! on a slow service) cannot take the whole `held` budget and stall the
//! dispatch of everyone else.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::InboxRecord;
use crate::engine::{Engine, EngineError};
use crate::model::{Timer, conversation_key};
use crate::storage::StorageError;

/// A failing turn is tried this many times before its event is set aside.
const ATTEMPTS: u32 = 5;
const RETRY_START: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(5);
/// Starts that may find one event's turn unfinished before the event is
/// set aside as a dead letter.
pub const MAX_RESTARTS: u32 = 3;

/// Something that moves a conversation.
pub enum LaneEvent {
    /// A customer event from the inbox, by its sequence.
    Inbound { seq: u64, record: InboxRecord },
    /// A due timer.
    Timer(Timer),
}

impl LaneEvent {
    /// When it happened, for ordering within a conversation.
    fn at_ms(&self) -> u64 {
        match self {
            LaneEvent::Inbound { record, .. } => record.message.timestamp_ms,
            LaneEvent::Timer(timer) => timer.due_ms,
        }
    }
}

struct Queued {
    event: LaneEvent,
    /// Returned when the event is finished: room for another.
    _held: OwnedSemaphorePermit,
}

/// One conversation's waiting events.
struct Lane {
    /// In memory, in the channel's time order.
    held: VecDeque<Queued>,
    /// Inbox sequences of inbound events past the lane's cap, in arrival
    /// order; they come after every held one.
    spilled: VecDeque<u64>,
}

/// What a lane runs next. Lives on the stack for one step of the loop,
/// so the size difference of its variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Next {
    Held(Queued),
    Spilled(u64),
}

pub struct Lanes {
    engine: Arc<Engine>,
    queues: std::sync::Mutex<HashMap<String, Lane>>,
    /// Events one lane may hold in memory.
    lane_cap: usize,
    workers: Arc<Semaphore>,
    worker_count: u32,
    held: Arc<Semaphore>,
    stopping: AtomicBool,
    /// Inbox events below this sequence were accepted by an earlier run;
    /// their turns may have been what ended it.
    recovered_below: AtomicU64,
    /// Called with a timer's id when its event is finished (so it may be
    /// dispatched again if it is still due).
    timer_done: Box<dyn Fn(&str) + Send + Sync>,
}

impl Lanes {
    pub fn new(
        engine: Arc<Engine>,
        workers: usize,
        held: usize,
        timer_done: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Arc<Self> {
        let workers = workers.max(1);
        Arc::new(Lanes {
            engine,
            queues: Default::default(),
            lane_cap: (held / 8).clamp(1, 64),
            workers: Arc::new(Semaphore::new(workers)),
            worker_count: workers as u32,
            held: Arc::new(Semaphore::new(held.max(1))),
            stopping: AtomicBool::new(false),
            recovered_below: AtomicU64::new(0),
            timer_done,
        })
    }

    /// Queues `event` for `conversation`, waiting while too many events are
    /// held; starts the conversation's lane if it has none.
    pub async fn submit(self: &Arc<Self>, conversation: String, event: LaneEvent) {
        if self.stopping.load(Ordering::SeqCst) {
            return; // it stays in storage for the next start
        }
        if let LaneEvent::Inbound { seq, .. } = &event
            && self.spill_if_full(&conversation, *seq)
        {
            return;
        }
        let held = self
            .held
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let queued = Queued { event, _held: held };
        let start = {
            let mut queues = self.queues.lock().expect("lanes lock");
            match queues.get_mut(&conversation) {
                Some(lane) if !lane.spilled.is_empty() => {
                    // Behind events already spilled: keep arrival order.
                    match queued.event {
                        LaneEvent::Inbound { seq, .. } => lane.spilled.push_back(seq),
                        LaneEvent::Timer { .. } => lane.held.push_back(queued),
                    }
                    false
                }
                Some(lane) => {
                    // In the channel's time order: Meta does not deliver in order.
                    let at = queued.event.at_ms();
                    let index = lane.held.partition_point(|q| q.event.at_ms() <= at);
                    lane.held.insert(index, queued);
                    false
                }
                None => {
                    let lane = Lane {
                        held: VecDeque::from([queued]),
                        spilled: VecDeque::new(),
                    };
                    queues.insert(conversation.clone(), lane);
                    true
                }
            }
        };
        if start {
            tokio::spawn(self.clone().run_lane(conversation));
        }
    }

    /// Keeps only the sequence of an inbound event for a lane at its cap
    /// (or already spilling, to keep arrival order).
    fn spill_if_full(&self, conversation: &str, seq: u64) -> bool {
        let mut queues = self.queues.lock().expect("lanes lock");
        match queues.get_mut(conversation) {
            Some(lane) if lane.held.len() >= self.lane_cap || !lane.spilled.is_empty() => {
                lane.spilled.push_back(seq);
                true
            }
            _ => false,
        }
    }

    /// Stops starting turns and waits for the ones running to finish.
    /// Events still queued stay in storage for the next start.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _all = self
            .workers
            .acquire_many(self.worker_count)
            .await
            .expect("the semaphore is never closed");
    }

    async fn run_lane(self: Arc<Self>, conversation: String) {
        loop {
            let next = {
                let mut queues = self.queues.lock().expect("lanes lock");
                let lane = queues
                    .get_mut(&conversation)
                    .expect("a running lane has a queue");
                let next = match lane.held.pop_front() {
                    Some(queued) => Some(Next::Held(queued)),
                    None => lane.spilled.pop_front().map(Next::Spilled),
                };
                match next {
                    Some(next) if !self.stopping.load(Ordering::SeqCst) => Some(next),
                    _ => {
                        queues.remove(&conversation);
                        None
                    }
                }
            };
            match next {
                None => return,
                Some(Next::Held(queued)) => {
                    self.run_event(&queued.event).await;
                    if let LaneEvent::Timer(timer) = &queued.event {
                        (self.timer_done)(&timer.id);
                    }
                }
                Some(Next::Spilled(seq)) => {
                    if let Some(event) = self.read_spilled(seq).await {
                        self.run_event(&event).await;
                    }
                }
            }
        }
    }

    /// A spilled event, read back from the inbox (`None` if it is gone or
    /// unreadable; an unreadable one was already set aside by the
    /// dispatcher, which read it first).
    async fn read_spilled(&self, seq: u64) -> Option<LaneEvent> {
        match self.engine.storage().inbox_record(seq).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .ok()
                .map(|record| LaneEvent::Inbound { seq, record }),
            Ok(None) => None,
            Err(e) => {
                // Left in the inbox: it runs again after a restart.
                tracing::error!(seq, "reading a spilled event: {e}");
                None
            }
        }
    }

    /// Marks the events an earlier run left in the inbox (see
    /// [`MAX_RESTARTS`]).
    pub fn set_recovered_below(&self, seq: u64) {
        self.recovered_below.store(seq, Ordering::SeqCst);
    }

    /// Runs one event's turn, retrying a failure with backoff; after the
    /// last attempt an inbound event is set aside as a dead letter. So is
    /// one whose turn an earlier run started [`MAX_RESTARTS`] times and
    /// never finished: a turn that kills the process must not kill every
    /// start after it.
    async fn run_event(&self, event: &LaneEvent) {
        if let LaneEvent::Inbound { seq, .. } = event
            && *seq < self.recovered_below.load(Ordering::SeqCst)
            && self.rerun_refused(*seq).await
        {
            return;
        }
        let mut delay = RETRY_START;
        for attempt in 1..=ATTEMPTS {
            let outcome = {
                let _turn = self
                    .workers
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                self.turn(event).await
            };
            match outcome {
                Ok(()) => return,
                Err(EngineError::Storage(
                    e @ (StorageError::NotOwner(_) | StorageError::AlreadyHandled),
                )) => {
                    // Another node's work now, or done already: not a failure.
                    tracing::debug!("a turn was dropped: {e}");
                    return;
                }
                Err(e) if attempt == ATTEMPTS => return self.give_up(event, e).await,
                Err(e) => {
                    tracing::warn!(attempt, "a turn failed; trying again in {delay:?}: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_CAP);
                }
            }
        }
    }

    async fn turn(&self, event: &LaneEvent) -> Result<(), EngineError> {
        match event {
            LaneEvent::Inbound { seq, record } => {
                let contact = record.contact.clone();
                let result = match (&record.handover, &record.bot) {
                    (_, Some(answer)) => {
                        let key = conversation_key(&record.account, &contact.id);
                        self.engine
                            .handle_bot_answer(&key, (**answer).clone(), *seq)
                            .await
                            .map(|_| ())
                    }
                    (Some(handover), None) => self
                        .engine
                        .handle_handover(
                            &record.account,
                            contact,
                            record.message.clone(),
                            handover.clone(),
                            *seq,
                        )
                        .await
                        .map(|_| ()),
                    (None, None) => self
                        .engine
                        .handle_inbound(&record.account, contact, record.message.clone(), *seq)
                        .await
                        .map(|_| ()),
                };
                match result {
                    Ok(_) => Ok(()),
                    Err(EngineError::NoConnector(account)) => {
                        tracing::warn!(
                            account,
                            "no connector takes this account's messages; event dropped"
                        );
                        Ok(self.engine.storage().remove_from_inbox(*seq).await?)
                    }
                    Err(e) => Err(e),
                }
            }
            LaneEvent::Timer(timer) => self.engine.handle_timer(timer.clone()).await.map(|_| ()),
        }
    }

    /// Counts a rerun of an event left by an earlier run; true when it has
    /// had its share and is set aside instead.
    async fn rerun_refused(&self, seq: u64) -> bool {
        let storage = self.engine.storage();
        let runs = match storage.count_restart(seq).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!(seq, "counting a rerun: {e}");
                return false;
            }
        };
        if runs <= MAX_RESTARTS {
            return false;
        }
        let reason = format!(
            "the server stopped {MAX_RESTARTS} times while this event's turn ran; set aside so it cannot stop the next start"
        );
        tracing::error!(seq, "{reason}");
        if let Err(e) = storage.dead_letter(seq, reason, self.engine.now_ms()).await {
            tracing::error!(seq, "setting an event aside failed: {e}");
        }
        true
    }

    async fn give_up(&self, event: &LaneEvent, error: EngineError) {
        match event {
            LaneEvent::Inbound { seq, .. } => {
                tracing::error!(
                    seq,
                    "an inbound event failed {ATTEMPTS} times; set aside as a dead letter: {error}"
                );
                let reason = format!("failed {ATTEMPTS} times: {error}");
                let now = self.engine.now_ms();
                if let Err(e) = self.engine.storage().dead_letter(*seq, reason, now).await {
                    tracing::error!(seq, "setting an event aside failed too: {e}");
                }
            }
            LaneEvent::Timer(timer) => {
                // It stays stored and is tried again when next due.
                let id = &timer.id;
                tracing::error!(id, "a timer's turn failed {ATTEMPTS} times: {error}");
            }
        }
    }
}
