//! Channels: how conversations reach flowhost and how replies leave it.
//!
//! Groundwork for the Instagram channel (issue 4): webhook signatures and
//! the parsing of every documented messaging event. Intake (the durable
//! inbox and conversation lanes) and the sender are not built yet, so
//! nothing here is wired into the server.

pub mod instagram;
