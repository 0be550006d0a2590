use std::fmt;
use std::str::FromStr;

use crate::{ContractError, Payload};

/// Where an event comes from; one RabbitMQ queue and one S3 partition per source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Cards,
    Orders,
    Manufacturing,
    /// Row changes the cdc component captured from PostgreSQL.
    Cdc,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Cards,
        Source::Orders,
        Source::Manufacturing,
        Source::Cdc,
    ];
    /// The business sources the generator produces (and `Source as usize` indexes).
    pub const GENERATED: [Source; 3] = [Source::Cards, Source::Orders, Source::Manufacturing];

    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Cards => "cards",
            Source::Orders => "orders",
            Source::Manufacturing => "manufacturing",
            Source::Cdc => "cdc",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = ContractError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| ContractError::UnknownSource(s.to_owned()))
    }
}

/// The kind of business fact an event records. Each type belongs to exactly one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    CardCatalogCreated,
    OrderCreated,
    OrderAmended,
    OrderCancelled,
    ManufacturingBatch,
    RowChange,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::CardCatalogCreated,
        EventType::OrderCreated,
        EventType::OrderAmended,
        EventType::OrderCancelled,
        EventType::ManufacturingBatch,
        EventType::RowChange,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::CardCatalogCreated => "card_catalog_created",
            EventType::OrderCreated => "order_created",
            EventType::OrderAmended => "order_amended",
            EventType::OrderCancelled => "order_cancelled",
            EventType::ManufacturingBatch => "manufacturing_batch",
            EventType::RowChange => "row_change",
        }
    }

    pub const fn source(self) -> Source {
        match self {
            EventType::CardCatalogCreated => Source::Cards,
            EventType::OrderCreated | EventType::OrderAmended | EventType::OrderCancelled => {
                Source::Orders
            }
            EventType::ManufacturingBatch => Source::Manufacturing,
            EventType::RowChange => Source::Cdc,
        }
    }

    pub fn of(payload: &Payload) -> Self {
        match payload {
            Payload::CardCatalogCreated(_) => EventType::CardCatalogCreated,
            Payload::OrderCreated(_) => EventType::OrderCreated,
            Payload::OrderAmended(_) => EventType::OrderAmended,
            Payload::OrderCancelled(_) => EventType::OrderCancelled,
            Payload::ManufacturingBatch(_) => EventType::ManufacturingBatch,
            Payload::RowChange(_) => EventType::RowChange,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ContractError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|ty| ty.as_str() == s)
            .ok_or_else(|| ContractError::UnknownType(s.to_owned()))
    }
}
