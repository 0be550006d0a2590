//! Canonical JSON: one object per event, keys in a fixed order (envelope: `event_id`, `source`,
//! `type`, `occurred_at`, `produced_at`, `schema_version`, `payload`; payload: the proto field
//! order), timestamps as RFC 3339 UTC with microseconds, money as integer cents, no whitespace.

use serde::{Deserialize, Serialize};

use crate::{ContractError, Envelope, Event, EventType, Payload, SCHEMA_VERSION, timestamp};

#[derive(Serialize)]
struct Canonical<'a> {
    event_id: &'a str,
    source: &'static str,
    #[serde(rename = "type")]
    event_type: &'static str,
    occurred_at: String,
    produced_at: String,
    schema_version: u32,
    payload: PayloadRef<'a>,
}

struct PayloadRef<'a>(&'a Payload);

impl Serialize for PayloadRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Payload::CardCatalogCreated(p) => p.serialize(s),
            Payload::OrderCreated(p) => p.serialize(s),
            Payload::ManufacturingBatch(p) => p.serialize(s),
            Payload::OrderAmended(p) => p.serialize(s),
            Payload::OrderCancelled(p) => p.serialize(s),
            Payload::RowChange(p) => p.serialize(s),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanonicalOwned {
    event_id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: String,
    occurred_at: String,
    produced_at: String,
    schema_version: u32,
    payload: serde_json::Value,
}

pub(crate) fn write_payload(w: impl std::io::Write, payload: &Payload) -> serde_json::Result<()> {
    serde_json::to_writer(w, &PayloadRef(payload))
}

pub(crate) fn payload_from_json(
    ty: EventType,
    value: serde_json::Value,
) -> Result<Payload, ContractError> {
    Ok(match ty {
        EventType::CardCatalogCreated => {
            Payload::CardCatalogCreated(serde_json::from_value(value)?)
        }
        EventType::OrderCreated => Payload::OrderCreated(serde_json::from_value(value)?),
        EventType::ManufacturingBatch => {
            Payload::ManufacturingBatch(serde_json::from_value(value)?)
        }
        EventType::OrderAmended => Payload::OrderAmended(serde_json::from_value(value)?),
        EventType::OrderCancelled => Payload::OrderCancelled(serde_json::from_value(value)?),
        EventType::RowChange => Payload::RowChange(serde_json::from_value(value)?),
    })
}

impl Event {
    /// One line of canonical JSON, without the trailing newline.
    pub fn to_canonical_json(&self) -> String {
        let mut out = Vec::with_capacity(512);
        self.write_canonical_json(&mut out);
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Appends the canonical JSON (no newline) to `out`.
    pub fn write_canonical_json(&self, out: &mut Vec<u8>) {
        let canonical = Canonical {
            event_id: self.event_id(),
            source: self.source().as_str(),
            event_type: self.event_type().as_str(),
            occurred_at: timestamp::format(self.occurred_at()),
            produced_at: timestamp::format(self.produced_at()),
            schema_version: self.schema_version(),
            payload: PayloadRef(self.payload()),
        };
        serde_json::to_writer(out, &canonical).expect("a validated event always serializes");
    }

    /// Appends the canonical JSON of the payload alone (a typed file's `payload` column).
    pub fn write_payload_json(&self, out: &mut Vec<u8>) {
        write_payload(out, self.payload()).expect("a validated payload always serializes");
    }

    /// Rebuilds an event from typed envelope columns and its payload JSON (the inverse of a
    /// typed file's row).
    pub fn from_parts(
        event_id: &str,
        event_type: &str,
        occurred_at: chrono::DateTime<chrono::Utc>,
        produced_at: chrono::DateTime<chrono::Utc>,
        schema_version: u32,
        payload_json: &str,
    ) -> Result<Self, ContractError> {
        if schema_version != SCHEMA_VERSION {
            return Err(ContractError::UnsupportedSchemaVersion(schema_version));
        }
        let ty: EventType = event_type.parse()?;
        let payload = payload_from_json(ty, serde_json::from_str(payload_json)?)?;
        Event::try_from(Envelope {
            event_id: event_id.to_owned(),
            source: ty.source().as_str().to_owned(),
            r#type: event_type.to_owned(),
            occurred_at: Some(timestamp::to_proto(occurred_at)),
            produced_at: Some(timestamp::to_proto(produced_at)),
            schema_version,
            payload: Some(payload),
        })
    }

    /// Parses one canonical JSON object. Keys may come in any order; unknown keys are rejected.
    pub fn from_canonical_json(json: &str) -> Result<Self, ContractError> {
        let raw: CanonicalOwned = serde_json::from_str(json)?;
        Self::from_canonical(raw)
    }

    /// Like [`Event::from_canonical_json`], from an already parsed value (a VARIANT column, say).
    pub fn from_canonical_value(value: serde_json::Value) -> Result<Self, ContractError> {
        Self::from_canonical(serde_json::from_value(value)?)
    }

    fn from_canonical(raw: CanonicalOwned) -> Result<Self, ContractError> {
        if raw.schema_version != SCHEMA_VERSION {
            return Err(ContractError::UnsupportedSchemaVersion(raw.schema_version));
        }
        let ty: EventType = raw.event_type.parse()?;
        let payload = payload_from_json(ty, raw.payload)?;
        let occurred_at = timestamp::parse("occurred_at", &raw.occurred_at)?;
        let produced_at = timestamp::parse("produced_at", &raw.produced_at)?;
        Event::try_from(Envelope {
            event_id: raw.event_id,
            source: raw.source,
            r#type: raw.event_type,
            occurred_at: Some(timestamp::to_proto(occurred_at)),
            produced_at: Some(timestamp::to_proto(produced_at)),
            schema_version: raw.schema_version,
            payload: Some(payload),
        })
    }
}
