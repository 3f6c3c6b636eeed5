//! Queues of human agents: the router that offers waiting conversations to
//! agents ([`router`]) and the ring strategies it chooses with
//! ([`strategy`]).

pub mod router;
pub mod strategy;

pub use router::Router;
