//! The load generator's publisher: a scenario's stream to RabbitMQ on its schedule, from this
//! process ([`publish`]) or split by key across worker processes ([`workers`]); the `publisher`
//! binary is one such worker, runnable anywhere that reaches the broker.

pub mod publish;
pub mod shard;
pub mod workers;

pub use publish::{
    BEHIND, DelayRecorder, Pacing, PublishConfig, PublishError, PublishProgress, PublishReport,
    SharedProgress, publish, publish_observed,
};
pub use shard::Shard;
pub use workers::{Workers, WorkersError, publish_split};
