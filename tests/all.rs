//! The end-to-end suite as one test binary: each file beside this one is a
//! module of it. Every test binary links the whole host and wasmtime, so
//! one binary instead of eight saves the links and lets the files' tests
//! run side by side rather than binary after binary.
//!
//! Two files stay binaries of their own, because they measure the process:
//! `hostile_plugins.rs` asserts on this process's resident memory, and
//! `observability.rs` on the metrics recorder, which is one per process.

mod agents;
mod builtin_actions;
mod chatbots;
mod connexease;
mod flows;
mod instagram_intake;
mod publishing;
mod stress;
