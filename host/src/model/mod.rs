//! Records the layers share, with no I/O and no logic beyond their own
//! invariants (the engine, the router, storage and the server all use them).

pub mod agent;
pub mod connection;
pub mod version;
