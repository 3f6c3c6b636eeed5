//! flowhost routes Instagram Direct Message conversations for contact
//! centers. Every business step of a conversation runs as a sandboxed
//! WebAssembly component (see [`plugin`]).

pub mod actions;
pub mod analytics;
pub mod app;
pub mod builtin;
pub mod channels;
pub mod cli;
pub mod config;
pub mod connections;
pub mod engine;
pub mod flow;
pub mod intake;
pub mod logs;
pub mod model;
pub mod outbox;
pub mod plugin;
pub mod publishing;
pub mod registry;
pub mod routing;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod templates;
