//! Publishing a scenario's stream: the `publisher` crate, in this process or split across
//! worker processes.

pub use publisher::publish::*;
pub use publisher::{Shard, Workers, WorkersError, publish_split};

/// Who publishes a round's stream.
#[derive(Clone, Debug, Default)]
pub enum Publishers {
    /// This process.
    #[default]
    InProcess,
    /// `publisher` worker processes, the stream split by key between them.
    Split(Workers),
}
