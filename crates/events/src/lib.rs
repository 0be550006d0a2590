//! The Sluice event contract.
//!
//! Events travel as protobuf [`Envelope`]s (see `proto/events.proto`). Inside Rust they are held as
//! [`Event`], an envelope that has been checked against the contract: payload present, `source` and
//! `type` agreeing with it, timestamps present with microsecond precision, quantities consistent.
//! The canonical JSON form ([`Event::to_canonical_json`]) is what lands in S3 files and in the RAW
//! tables; [`Fingerprint`] identifies a payload for dedup and conflict detection.

mod canonical;
mod error;
mod event;
mod fingerprint;
pub mod json_text;
mod kind;
pub mod timestamp;
pub mod wire;

/// Types generated from `proto/events.proto`.
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/sluice.events.v1.rs"));
}

pub use error::ContractError;
pub use event::{Event, SCHEMA_VERSION};
pub use fingerprint::Fingerprint;
pub use kind::{EventType, Source};
pub use pb::envelope::Payload;
pub use pb::{
    CardCatalogCreated, ChangeSource, Envelope, EventBatch, ManufacturingBatch, OrderAmended,
    OrderCancelled, OrderCreated, OrderLine, RowChange,
};
