//! Routing decisions that do not involve plugins: opening hours, and the
//! queues where conversations wait for human agents.

pub mod queues;
pub mod time;
