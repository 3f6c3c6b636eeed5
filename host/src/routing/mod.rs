//! Routing decisions that do not involve plugins: opening hours (and,
//! as they are built, queues and agents).

pub mod time;
