//! The traffic sections: `[rates]`, `[faults]` (dirty input), `[revisions]`, `[history]` and
//! `[supply]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::{Rate, Ratio, Span};

/// Events per second of each source at shape factor 1.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub cards: Rate,
    pub orders: Rate,
    pub manufacturing: Rate,
}

impl Rates {
    pub fn total(&self) -> f64 {
        self.cards.get() + self.orders.get() + self.manufacturing.get()
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Share of stream events delivered a second time, identical (same id, same payload).
    #[serde(default)]
    pub duplicate_ratio: Ratio,
    /// Share of stream events whose event time lies before their emission (late arrivals).
    #[serde(default)]
    pub out_of_order_ratio: Ratio,
    /// Upper bound of the lateness of an out-of-order event.
    #[serde(default)]
    pub max_lateness: Span,
    /// Extra bodies, per stream event, that are not valid protobuf (they must dead-letter).
    #[serde(default)]
    pub poison_ratio: Ratio,
}

/// Shares of each source's slots (history and stream) that revise a recent key instead of
/// announcing a new one. With `faults.out_of_order_ratio`, a revision can be late too, and then
/// arrive after a revision that supersedes it.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Revisions {
    /// Card slots that re-announce a card with a new list price or name.
    #[serde(default)]
    pub card_updates: Ratio,
    /// Order slots that amend an open order: one line's quantity changes.
    #[serde(default)]
    pub order_amendments: Ratio,
    /// Order slots that cancel an open order.
    #[serde(default)]
    pub order_cancellations: Ratio,
    /// Manufacturing slots that correct a batch's produced and defective counts.
    #[serde(default)]
    pub batch_corrections: Ratio,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Events dated before the stream start, for the PostgreSQL backfill.
    #[serde(default)]
    pub events: u64,
    /// How far back the history reaches.
    #[serde(default = "default_history_span")]
    pub span: Span,
}

impl Default for History {
    fn default() -> Self {
        Self {
            events: 0,
            span: default_history_span(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Supply {
    /// Cumulative units ordered per card never exceed its cumulative good units produced.
    #[serde(default)]
    pub constrained: bool,
}

fn default_history_span() -> Span {
    Span(Duration::from_secs(30 * 86_400))
}
