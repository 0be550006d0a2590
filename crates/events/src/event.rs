use chrono::{DateTime, NaiveDate, Utc};
use prost::Message;
use uuid::Uuid;

use crate::timestamp;
use crate::{
    CardCatalogCreated, ContractError, Envelope, EventType, Fingerprint, ManufacturingBatch,
    OrderCancelled, OrderCreated, OrderLine, Payload, RowChange, Source,
};

/// The envelope version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// An envelope that satisfies the contract. The only ways to get one are [`Event::new`], which
/// derives `source` and `type` from the payload, and the checked conversions from protobuf bytes,
/// an [`Envelope`] or canonical JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    envelope: Envelope,
}

impl Event {
    /// Builds an event; timestamps are truncated to microseconds, the contract's precision.
    pub fn new(
        event_id: Uuid,
        occurred_at: DateTime<Utc>,
        produced_at: DateTime<Utc>,
        payload: Payload,
    ) -> Result<Self, ContractError> {
        let ty = EventType::of(&payload);
        let occurred_at = timestamp::truncate_to_micros(occurred_at);
        let produced_at = timestamp::truncate_to_micros(produced_at);
        // Id, version, source and type are right by construction; the rest is checked.
        check_times(occurred_at, produced_at)?;
        validate_payload(&payload, occurred_at)?;
        Ok(Self {
            envelope: Envelope {
                event_id: event_id.hyphenated().to_string(),
                source: ty.source().as_str().to_owned(),
                r#type: ty.as_str().to_owned(),
                occurred_at: Some(timestamp::to_proto(occurred_at)),
                produced_at: Some(timestamp::to_proto(produced_at)),
                schema_version: SCHEMA_VERSION,
                payload: Some(payload),
            },
        })
    }

    /// Decodes a protobuf body (as published to RabbitMQ and carried through SQS).
    pub fn decode(body: &[u8]) -> Result<Self, ContractError> {
        Self::try_from(Envelope::decode(body)?)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.envelope.encode_to_vec()
    }

    /// Appends the protobuf body to `buf`, so callers can reuse one buffer.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        self.envelope
            .encode(buf)
            .expect("a Vec<u8> grows as needed");
    }

    pub fn encode_length_delimited_into(&self, buf: &mut Vec<u8>) {
        self.envelope
            .encode_length_delimited(buf)
            .expect("a Vec<u8> grows as needed");
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    pub fn into_envelope(self) -> Envelope {
        self.envelope
    }

    pub fn event_id(&self) -> &str {
        &self.envelope.event_id
    }

    pub fn event_type(&self) -> EventType {
        EventType::of(self.payload())
    }

    pub fn source(&self) -> Source {
        self.event_type().source()
    }

    /// The RabbitMQ routing key: `<source>.<type>`, or `cdc.<schema>.<table>` for a row change
    /// (so a consumer can bind to one table's changes).
    pub fn routing_key(&self) -> String {
        match self.payload() {
            Payload::RowChange(change) => format!("{}.{}", Source::Cdc, change.table),
            _ => format!("{}.{}", self.source(), self.event_type()),
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        Self::checked_time(&self.envelope.occurred_at)
    }

    pub fn produced_at(&self) -> DateTime<Utc> {
        Self::checked_time(&self.envelope.produced_at)
    }

    pub fn schema_version(&self) -> u32 {
        self.envelope.schema_version
    }

    pub fn payload(&self) -> &Payload {
        self.envelope
            .payload
            .as_ref()
            .expect("validated on construction")
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.payload())
    }

    fn checked_time(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
        let t = t.as_ref().expect("validated on construction");
        timestamp::from_proto("timestamp", t).expect("validated on construction")
    }
}

impl TryFrom<Envelope> for Event {
    type Error = ContractError;

    fn try_from(envelope: Envelope) -> Result<Self, ContractError> {
        validate(&envelope)?;
        Ok(Self { envelope })
    }
}

impl From<Event> for Envelope {
    fn from(event: Event) -> Self {
        event.envelope
    }
}

fn validate(e: &Envelope) -> Result<(), ContractError> {
    Uuid::try_parse(&e.event_id).map_err(|err| {
        ContractError::invalid("event_id", format!("{:?} is not a UUID: {err}", e.event_id))
    })?;
    if e.schema_version != SCHEMA_VERSION {
        return Err(ContractError::UnsupportedSchemaVersion(e.schema_version));
    }
    let payload = e
        .payload
        .as_ref()
        .ok_or(ContractError::Missing("payload"))?;
    let ty = EventType::of(payload);
    let source: Source = e.source.parse()?;
    if source != ty.source() {
        return Err(ContractError::Mismatch {
            field: "source",
            envelope: e.source.clone(),
            payload: ty.as_str(),
        });
    }
    let declared: EventType = e.r#type.parse()?;
    if declared != ty {
        return Err(ContractError::Mismatch {
            field: "type",
            envelope: e.r#type.clone(),
            payload: ty.as_str(),
        });
    }
    let occurred = required_time("occurred_at", &e.occurred_at)?;
    let produced = required_time("produced_at", &e.produced_at)?;
    check_times(occurred, produced)?;
    validate_payload(payload, occurred)
}

fn check_times(occurred: DateTime<Utc>, produced: DateTime<Utc>) -> Result<(), ContractError> {
    if occurred > produced {
        return Err(ContractError::invalid(
            "occurred_at",
            format!(
                "{} is after produced_at {}",
                timestamp::format(occurred),
                timestamp::format(produced)
            ),
        ));
    }
    Ok(())
}

fn validate_payload(payload: &Payload, occurred_at: DateTime<Utc>) -> Result<(), ContractError> {
    match payload {
        Payload::CardCatalogCreated(card) => validate_card(card),
        Payload::OrderCreated(order) => validate_order(order),
        Payload::OrderAmended(amended) => {
            non_empty("order_id", &amended.order_id)?;
            non_empty("reason", &amended.reason)?;
            validate_lines(&amended.lines)
        }
        Payload::OrderCancelled(cancelled) => validate_cancellation(cancelled),
        Payload::ManufacturingBatch(batch) => validate_batch(batch),
        Payload::RowChange(change) => validate_row_change(change, occurred_at),
    }
}

fn required_time(
    field: &'static str,
    t: &Option<prost_types::Timestamp>,
) -> Result<DateTime<Utc>, ContractError> {
    let t = t.as_ref().ok_or(ContractError::Missing(field))?;
    timestamp::from_proto(field, t)
}

fn non_empty(field: &'static str, value: &str) -> Result<(), ContractError> {
    if value.is_empty() {
        return Err(ContractError::Missing(field));
    }
    Ok(())
}

fn validate_card(card: &CardCatalogCreated) -> Result<(), ContractError> {
    non_empty("card_id", &card.card_id)?;
    non_empty("sku", &card.sku)?;
    non_empty("name", &card.name)?;
    non_empty("rarity", &card.rarity)?;
    non_empty("currency", &card.currency)?;
    NaiveDate::parse_from_str(&card.release_date, "%Y-%m-%d").map_err(|err| {
        ContractError::invalid(
            "release_date",
            format!("{:?} is not YYYY-MM-DD: {err}", card.release_date),
        )
    })?;
    if card.list_price_cents < 0 {
        return Err(ContractError::invalid("list_price_cents", "negative price"));
    }
    Ok(())
}

fn validate_order(order: &OrderCreated) -> Result<(), ContractError> {
    non_empty("order_id", &order.order_id)?;
    non_empty("customer_id", &order.customer_id)?;
    required_time("ordered_at", &order.ordered_at)?;
    validate_lines(&order.lines)
}

fn validate_cancellation(cancelled: &OrderCancelled) -> Result<(), ContractError> {
    non_empty("order_id", &cancelled.order_id)?;
    non_empty("reason", &cancelled.reason)
}

fn validate_lines(lines: &[OrderLine]) -> Result<(), ContractError> {
    if lines.is_empty() {
        return Err(ContractError::invalid(
            "lines",
            "an order needs at least one line",
        ));
    }
    for line in lines {
        non_empty("lines.card_id", &line.card_id)?;
        if line.quantity == 0 {
            return Err(ContractError::invalid(
                "lines.quantity",
                "must be at least 1",
            ));
        }
        if line.unit_price_cents < 0 {
            return Err(ContractError::invalid(
                "lines.unit_price_cents",
                "negative price",
            ));
        }
    }
    Ok(())
}

fn validate_batch(batch: &ManufacturingBatch) -> Result<(), ContractError> {
    non_empty("batch_id", &batch.batch_id)?;
    non_empty("card_id", &batch.card_id)?;
    let started = required_time("started_at", &batch.started_at)?;
    let completed = required_time("completed_at", &batch.completed_at)?;
    if started > completed {
        return Err(ContractError::invalid("started_at", "after completed_at"));
    }
    if batch.quantity_produced > batch.quantity_planned {
        return Err(ContractError::invalid(
            "quantity_produced",
            format!(
                "{} exceeds quantity_planned {}",
                batch.quantity_produced, batch.quantity_planned
            ),
        ));
    }
    if batch.quantity_defective > batch.quantity_produced {
        return Err(ContractError::invalid(
            "quantity_defective",
            format!(
                "{} exceeds quantity_produced {}",
                batch.quantity_defective, batch.quantity_produced
            ),
        ));
    }
    Ok(())
}

/// The JSON object in a row change's `field`, which must be canonical text (see
/// [`crate::json_text`]); `None` for the empty string.
fn row_image(
    field: &'static str,
    text: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ContractError> {
    if text.is_empty() {
        return Ok(None);
    }
    let canonical =
        crate::json_text::canonical(text).map_err(|e| ContractError::invalid(field, e))?;
    if canonical != text {
        return Err(ContractError::invalid(
            field,
            "not canonical JSON (keys sorted, no whitespace)",
        ));
    }
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        _ => unreachable!("canonical() accepted it as an object"),
    }
}

fn validate_row_change(
    change: &RowChange,
    occurred_at: DateTime<Utc>,
) -> Result<(), ContractError> {
    let (schema, table) = change.table.split_once('.').unwrap_or(("", ""));
    if schema.is_empty() || table.is_empty() {
        return Err(ContractError::invalid(
            "table",
            format!(
                "{:?} is not schema-qualified (e.g. \"shop.customers\")",
                change.table
            ),
        ));
    }
    let key = row_image("key", &change.key)?
        .filter(|k| !k.is_empty())
        .ok_or(ContractError::Missing("key"))?;
    let before = row_image("before", &change.before)?;
    let after = row_image("after", &change.after)?;
    let (needs_before, needs_after) = match change.op.as_str() {
        "c" | "r" => (Some(false), true),
        "u" => (None, true),
        "d" => (Some(true), false),
        other => {
            return Err(ContractError::invalid(
                "op",
                format!("{other:?} is not one of c, u, d, r"),
            ));
        }
    };
    if needs_after != after.is_some() {
        return Err(ContractError::invalid(
            "after",
            format!(
                "op {:?} {} a row after",
                change.op,
                if needs_after { "needs" } else { "has no" }
            ),
        ));
    }
    if let Some(needed) = needs_before
        && needed != before.is_some()
    {
        return Err(ContractError::invalid(
            "before",
            format!(
                "op {:?} {} a row before",
                change.op,
                if needed { "needs" } else { "has no" }
            ),
        ));
    }
    // The key is the row's own: the image that identifies the row carries the same values.
    let image = after.as_ref().or(before.as_ref()).expect("checked above");
    for (column, value) in &key {
        if image.get(column) != Some(value) {
            return Err(ContractError::invalid(
                "key",
                format!("column {column:?} is {value} in the key but not in the row"),
            ));
        }
    }
    let source = change
        .source
        .as_ref()
        .ok_or(ContractError::Missing("source"))?;
    non_empty("source.slot", &source.slot)?;
    let commit_time = required_time("source.commit_time", &source.commit_time)?;
    if commit_time != occurred_at {
        return Err(ContractError::invalid(
            "occurred_at",
            "a row change occurs at its commit time (source.commit_time)",
        ));
    }
    if source.commit_lsn == 0 {
        return Err(ContractError::Missing("source.commit_lsn"));
    }
    if change.op == "r" {
        if (
            source.change_lsn,
            source.tx_id,
            source.tx_order,
            source.tx_size,
        ) != (0, 0, 0, 0)
        {
            return Err(ContractError::invalid(
                "source",
                "a snapshot read has no change_lsn, tx_id, tx_order or tx_size",
            ));
        }
    } else {
        if !(0 < source.change_lsn && source.change_lsn < source.commit_lsn) {
            return Err(ContractError::invalid(
                "source.change_lsn",
                format!(
                    "{} must lie before the commit record at {}",
                    source.change_lsn, source.commit_lsn
                ),
            ));
        }
        if !(1..=source.tx_size).contains(&source.tx_order) {
            return Err(ContractError::invalid(
                "source.tx_order",
                format!("{} is not within 1..={}", source.tx_order, source.tx_size),
            ));
        }
    }
    Ok(())
}
