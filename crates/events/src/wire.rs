//! How events travel through queues that carry text (SQS): one envelope or a packed
//! [`EventBatch`](crate::pb::EventBatch) per message, base64-encoded, with the packing named in a
//! message attribute so a reader never guesses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message as _;

use crate::{ContractError, Event};

/// The message attribute that names a message's [`Packing`].
pub const PACKING_ATTRIBUTE: &str = "sluice-packing";

/// What one queue message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Packing {
    /// One protobuf `Envelope`: what production sends.
    Envelope,
    /// One protobuf `EventBatch` of several envelopes.
    Batch,
}

impl Packing {
    pub fn as_str(self) -> &'static str {
        match self {
            Packing::Envelope => "envelope",
            Packing::Batch => "batch",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "envelope" => Some(Packing::Envelope),
            "batch" => Some(Packing::Batch),
            _ => None,
        }
    }
}

/// Builds an `EventBatch` body from envelope bytes as received, without re-encoding them.
#[derive(Default, Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl BatchBuilder {
    pub fn push(&mut self, envelope_bytes: &[u8]) {
        use prost::encoding::{WireType, encode_key, encode_varint};
        encode_key(1, WireType::LengthDelimited, &mut self.buf);
        encode_varint(envelope_bytes.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(envelope_bytes);
        self.count += 1;
    }

    /// Bytes an envelope of `len` bytes adds to the batch (tag + length prefix + body).
    pub fn framed_len(len: usize) -> usize {
        1 + prost::encoding::encoded_len_varint(len as u64) + len
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Base64 text of a protobuf body, as SQS message bodies must be text.
pub fn to_text(body: &[u8]) -> String {
    STANDARD.encode(body)
}

/// Length of [`to_text`] of `len` bytes.
pub fn text_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// Decodes a queue message body written by [`to_text`] with the given packing.
pub fn decode_text(text: &str, packing: Packing) -> Result<Vec<Event>, ContractError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| ContractError::invalid("body", format!("not base64: {e}")))?;
    decode(&bytes, packing)
}

/// Decodes a protobuf body with the given packing; every event is checked against the contract.
pub fn decode(bytes: &[u8], packing: Packing) -> Result<Vec<Event>, ContractError> {
    match packing {
        Packing::Envelope => Ok(vec![Event::decode(bytes)?]),
        Packing::Batch => crate::pb::EventBatch::decode(bytes)?
            .events
            .into_iter()
            .map(Event::try_from)
            .collect(),
    }
}
