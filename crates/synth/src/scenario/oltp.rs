//! `[oltp]`: the PostgreSQL workload the cdc captures.

use serde::{Deserialize, Serialize};

use crate::units::Rate;

/// `[oltp]`: rows of `shop.customers` and `shop.order_status` before the cdc starts (its
/// snapshot reads them), then transactions at `transactions` per second for the stream's
/// duration, each changing 1 to `rows_per_transaction` rows, each row at most once.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Oltp {
    #[serde(default = "default_oltp_customers")]
    pub customers: u64,
    #[serde(default = "default_oltp_orders")]
    pub orders: u64,
    /// Transactions per second, shaped like the stream (`[shape]`).
    pub transactions: Rate,
    #[serde(default = "default_rows_per_transaction")]
    pub rows_per_transaction: u32,
    #[serde(default)]
    pub mix: OltpMix,
}

/// How often each kind of row change is picked (relative weights).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OltpMix {
    /// A customer signs up (INSERT).
    #[serde(default = "weight_1")]
    pub new_customers: Weight,
    /// A customer moves country, changes tier or email (UPDATE).
    #[serde(default = "weight_4")]
    pub customer_updates: Weight,
    /// A customer is erased (DELETE).
    #[serde(default = "weight_half")]
    pub erasures: Weight,
    /// An order is placed (INSERT of its status).
    #[serde(default = "weight_3")]
    pub new_orders: Weight,
    /// An order moves on: placed -> paid -> shipped -> delivered, or cancelled (UPDATE).
    #[serde(default = "weight_5")]
    pub status_changes: Weight,
}

impl Default for OltpMix {
    fn default() -> Self {
        Self {
            new_customers: weight_1(),
            customer_updates: weight_4(),
            erasures: weight_half(),
            new_orders: weight_3(),
            status_changes: weight_5(),
        }
    }
}

impl OltpMix {
    pub fn total(&self) -> f64 {
        [
            self.new_customers,
            self.customer_updates,
            self.erasures,
            self.new_orders,
            self.status_changes,
        ]
        .iter()
        .map(|w| w.get())
        .sum()
    }
}

/// A relative weight: finite and at least 0.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, PartialOrd)]
#[serde(try_from = "f64")]
pub struct Weight(pub(crate) f64);

impl Weight {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Weight {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        if value.is_finite() && value >= 0.0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "a weight must be a number of at least 0, got {value}"
            ))
        }
    }
}

fn default_oltp_customers() -> u64 {
    200
}

fn default_oltp_orders() -> u64 {
    100
}

fn default_rows_per_transaction() -> u32 {
    4
}

fn weight_1() -> Weight {
    Weight(1.0)
}

fn weight_3() -> Weight {
    Weight(3.0)
}

fn weight_4() -> Weight {
    Weight(4.0)
}

fn weight_5() -> Weight {
    Weight(5.0)
}

fn weight_half() -> Weight {
    Weight(0.5)
}
