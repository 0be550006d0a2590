use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{ContractError, EventType, Payload};

/// SHA-256 of a payload's canonical JSON. Two deliveries of one `event_id` must carry the same
/// fingerprint; a different one is a conflict, not a duplicate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(payload: &Payload) -> Self {
        let mut hasher = Sha256::new();
        let writer = HashWriter(&mut hasher);
        crate::canonical::write_payload(writer, payload).expect("writing to a hasher cannot fail");
        Self(hasher.finalize().into())
    }

    /// Fingerprints a payload given as JSON in any key order (e.g. read back from a warehouse).
    pub fn of_json(ty: EventType, payload: &serde_json::Value) -> Result<Self, ContractError> {
        Ok(Self::of(&crate::canonical::payload_from_json(
            ty,
            payload.clone(),
        )?))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
