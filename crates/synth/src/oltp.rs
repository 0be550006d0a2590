//! The operational workload the cdc path captures: `shop.customers` and `shop.order_status`,
//! first the rows that exist before the cdc starts (its snapshot reads them), then transactions
//! at the scenario's rate: customers signing up, moving country, changing tier or email and
//! being erased; orders placed and moving through their statuses. The same seed gives the same
//! changes; the database gives them their times (`updated_at = now()`, the commit time).
//!
//! The customers are the ones the order events reference (the same seed's roster), so the
//! warehouse can join `DIM_CUSTOMER` to `FCT_ORDERS`, and order ids follow the events' too.

use std::collections::HashSet;
use std::time::Duration;

use fake::Fake;
use fake::faker::address::en::CountryCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::rate::RateProfile;
use crate::scenario::{Oltp, Scenario};
use crate::world;

/// Mixed into the seed so the workload's draws are its own: adding or changing `[oltp]` leaves
/// the event stream as it was.
const SEED_SALT: u64 = 0x0171_9cdc_5eed_0001;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Bronze,
    Silver,
    Gold,
    Platinum,
}

impl Tier {
    const ALL: [Tier; 4] = [Tier::Bronze, Tier::Silver, Tier::Gold, Tier::Platinum];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Bronze => "bronze",
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Platinum => "platinum",
        }
    }
}

/// A row of `shop.customers` (its `updated_at` is the database's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub email: String,
    pub country: String,
    pub tier: Tier,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled)
    }
}

/// One row change, as the workload makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOp {
    InsertCustomer(Customer),
    /// The whole row after the change.
    UpdateCustomer(Customer),
    DeleteCustomer {
        customer_id: String,
    },
    InsertOrderStatus {
        order_id: String,
        status: OrderStatus,
    },
    UpdateOrderStatus {
        order_id: String,
        status: OrderStatus,
    },
}

impl RowOp {
    /// The table and primary key the change touches.
    pub fn key(&self) -> (&'static str, &str) {
        match self {
            RowOp::InsertCustomer(c) | RowOp::UpdateCustomer(c) => {
                ("shop.customers", &c.customer_id)
            }
            RowOp::DeleteCustomer { customer_id } => ("shop.customers", customer_id),
            RowOp::InsertOrderStatus { order_id, .. }
            | RowOp::UpdateOrderStatus { order_id, .. } => ("shop.order_status", order_id),
        }
    }
}

/// Changes committed together, at `offset` after the stream start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub offset: Duration,
    pub ops: Vec<RowOp>,
}

/// What the workload has made so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadStats {
    pub initial_rows: u64,
    pub transactions: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
}

impl WorkloadStats {
    pub fn row_changes(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
}

pub struct Workload {
    oltp: Oltp,
    rng: ChaCha8Rng,
    profile: RateProfile,
    duration: f64,
    next_tx: u64,
    /// The shop's customers, first the roster the order events use.
    roster: Vec<world::Customer>,
    next_customer: usize,
    /// Customers that exist now.
    live: Vec<Customer>,
    next_order: u64,
    /// Orders whose status can still change.
    open: Vec<(String, OrderStatus)>,
    stats: WorkloadStats,
}

impl Workload {
    /// The scenario's workload (None without `[oltp]`), with `seed` overriding the scenario's.
    pub fn new(scenario: &Scenario, seed: Option<u64>) -> Option<Self> {
        let oltp = scenario.oltp?;
        let seed = seed.unwrap_or(scenario.seed);
        // The roster is what the seed's world draws first.
        let roster = world::customers(&mut ChaCha8Rng::seed_from_u64(seed));
        Some(Self {
            oltp,
            rng: ChaCha8Rng::seed_from_u64(seed ^ SEED_SALT),
            profile: scenario.profile(oltp.transactions),
            duration: scenario.duration.map_or(0.0, |d| d.as_secs_f64()),
            next_tx: 0,
            roster,
            next_customer: 0,
            live: Vec::new(),
            next_order: 0,
            open: Vec::new(),
            stats: WorkloadStats::default(),
        })
    }

    pub fn stats(&self) -> &WorkloadStats {
        &self.stats
    }

    /// The rows that exist before the cdc starts: `[oltp] customers` and `orders`, as inserts.
    pub fn initial(&mut self) -> Vec<RowOp> {
        let mut ops = Vec::new();
        for _ in 0..self.oltp.customers {
            ops.push(self.new_customer());
        }
        for _ in 0..self.oltp.orders {
            ops.push(self.new_order());
        }
        self.stats.initial_rows = ops.len() as u64;
        ops
    }

    /// The transactions, in commit order, at their offsets on the stream's clock.
    pub fn transactions(&mut self) -> impl Iterator<Item = Transaction> + '_ {
        std::iter::from_fn(move || self.next_transaction())
    }

    fn next_transaction(&mut self) -> Option<Transaction> {
        let t = self.profile.time_of(self.next_tx as f64 + 0.5);
        if t >= self.duration {
            return None;
        }
        self.next_tx += 1;
        let rows = self.rng.random_range(1..=self.oltp.rows_per_transaction);
        let mut touched: HashSet<(&'static str, String)> = HashSet::new();
        let mut ops = Vec::with_capacity(rows as usize);
        for _ in 0..rows {
            let op = self.next_op(&touched);
            let (table, key) = op.key();
            touched.insert((table, key.to_owned()));
            match op {
                RowOp::InsertCustomer(_) | RowOp::InsertOrderStatus { .. } => {
                    self.stats.inserts += 1
                }
                RowOp::UpdateCustomer(_) | RowOp::UpdateOrderStatus { .. } => {
                    self.stats.updates += 1
                }
                RowOp::DeleteCustomer { .. } => self.stats.deletes += 1,
            }
            ops.push(op);
        }
        self.stats.transactions += 1;
        Some(Transaction {
            offset: Duration::from_secs_f64(t),
            ops,
        })
    }

    /// One change by the mix; a change with nothing to act on (no customer left to erase, no
    /// open order, every candidate already changed in this transaction) becomes an insert.
    fn next_op(&mut self, touched: &HashSet<(&'static str, String)>) -> RowOp {
        let m = &self.oltp.mix;
        let weights = [
            m.new_customers.get(),
            m.customer_updates.get(),
            m.erasures.get(),
            m.new_orders.get(),
            m.status_changes.get(),
        ];
        let mut pick = self.rng.random_range(0.0..m.total());
        let mut kind = 0;
        while kind < weights.len() - 1 && pick >= weights[kind] {
            pick -= weights[kind];
            kind += 1;
        }
        let free_customer = |rng: &mut ChaCha8Rng, live: &[Customer]| {
            // A few tries for a customer this transaction has not touched yet.
            (0..4).find_map(|_| {
                let i = rng.random_range(0..live.len().max(1));
                live.get(i)
                    .filter(|c| !touched.contains(&("shop.customers", c.customer_id.clone())))
                    .map(|_| i)
            })
        };
        match kind {
            1 => match free_customer(&mut self.rng, &self.live) {
                Some(i) => self.update_customer(i),
                None => self.new_customer(),
            },
            2 => match free_customer(&mut self.rng, &self.live) {
                Some(i) => {
                    let gone = self.live.swap_remove(i);
                    RowOp::DeleteCustomer {
                        customer_id: gone.customer_id,
                    }
                }
                None => self.new_customer(),
            },
            3 => self.new_order(),
            4 => {
                let free = (0..4).find_map(|_| {
                    let i = self.rng.random_range(0..self.open.len().max(1));
                    self.open
                        .get(i)
                        .filter(|(id, _)| !touched.contains(&("shop.order_status", id.clone())))
                        .map(|_| i)
                });
                match free {
                    Some(i) => self.advance_order(i),
                    None => self.new_order(),
                }
            }
            _ => self.new_customer(),
        }
    }

    fn new_customer(&mut self) -> RowOp {
        let i = self.next_customer;
        self.next_customer += 1;
        let person = match self.roster.get(i) {
            Some(p) => p.clone(),
            None => world::customer(&mut self.rng, i),
        };
        let tier =
            [Tier::Bronze, Tier::Bronze, Tier::Silver, Tier::Gold][self.rng.random_range(0..4)];
        let customer = Customer {
            customer_id: person.id,
            name: format!("{} {}", person.first, person.last),
            email: email(&person.first, &person.last, 0),
            country: person.country,
            tier,
        };
        self.live.push(customer.clone());
        RowOp::InsertCustomer(customer)
    }

    fn update_customer(&mut self, i: usize) -> RowOp {
        let mut next = self.live[i].clone();
        match self.rng.random_range(0..3) {
            0 => loop {
                let country: String = CountryCode().fake_with_rng(&mut self.rng);
                if country != next.country {
                    next.country = country;
                    break;
                }
            },
            1 => {
                let at = Tier::ALL
                    .iter()
                    .position(|t| *t == next.tier)
                    .expect("a tier");
                let up = at + 1 < Tier::ALL.len() && (at == 0 || self.rng.random_bool(0.7));
                next.tier = Tier::ALL[if up { at + 1 } else { at - 1 }];
            }
            _ => {
                let (first, last) = next.name.split_once(' ').unwrap_or((&next.name, ""));
                next.email = email(first, last, self.rng.random_range(1..1000));
            }
        }
        self.live[i] = next.clone();
        RowOp::UpdateCustomer(next)
    }

    fn new_order(&mut self) -> RowOp {
        self.next_order += 1;
        // The event stream numbers its orders the same way.
        let order_id = format!("ord-{:09}", self.next_order);
        self.open.push((order_id.clone(), OrderStatus::Placed));
        RowOp::InsertOrderStatus {
            order_id,
            status: OrderStatus::Placed,
        }
    }

    fn advance_order(&mut self, i: usize) -> RowOp {
        let (order_id, status) = self.open[i].clone();
        let cancel = self.rng.random_bool(0.15);
        let next = match status {
            OrderStatus::Placed if cancel => OrderStatus::Cancelled,
            OrderStatus::Placed => OrderStatus::Paid,
            OrderStatus::Paid if cancel => OrderStatus::Cancelled,
            OrderStatus::Paid => OrderStatus::Shipped,
            OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Cancelled => {
                OrderStatus::Delivered
            }
        };
        if next.is_final() {
            self.open.swap_remove(i);
        } else {
            self.open[i].1 = next;
        }
        RowOp::UpdateOrderStatus {
            order_id,
            status: next,
        }
    }
}

fn email(first: &str, last: &str, n: u32) -> String {
    let clean = |s: &str| -> String {
        s.to_lowercase()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect()
    };
    let suffix = if n == 0 { String::new() } else { n.to_string() };
    format!("{}.{}{suffix}@example.com", clean(first), clean(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(toml_oltp: &str) -> Scenario {
        Scenario::parse(
            "t.toml",
            &format!(
                "name = \"t\"\nseed = 3\nduration = \"20s\"\n[rates]\ncards = 1\norders = 5\nmanufacturing = 1\n{toml_oltp}"
            ),
        )
        .unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_workload_and_rows_change_once_per_transaction() {
        let s = scenario("[oltp]\ntransactions = 10\nrows_per_transaction = 5\n");
        let run = |seed| {
            let mut w = Workload::new(&s, seed).unwrap();
            let initial = w.initial();
            let txs: Vec<_> = w.transactions().collect();
            (initial, txs, w.stats().clone())
        };
        let (initial, txs, stats) = run(None);
        assert_eq!(run(None).1, txs);
        assert_ne!(run(Some(4)).1, txs);
        assert_eq!(initial.len(), 300);
        assert_eq!(txs.len(), 200, "10 per second for 20 s");
        assert_eq!(stats.transactions, 200);
        for tx in &txs {
            let keys: HashSet<_> = tx.ops.iter().map(RowOp::key).collect();
            assert_eq!(
                keys.len(),
                tx.ops.len(),
                "a row is changed at most once per transaction"
            );
            assert!((1..=5).contains(&tx.ops.len()));
        }
        assert!(
            stats.inserts > 0 && stats.updates > 0 && stats.deletes > 0,
            "{stats:?}"
        );
        assert_eq!(
            stats.row_changes(),
            txs.iter().map(|t| t.ops.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn every_change_acts_on_a_row_that_exists_and_statuses_only_move_forward() {
        let s = scenario("[oltp]\ntransactions = 30\ncustomers = 20\norders = 10\n");
        let mut w = Workload::new(&s, None).unwrap();
        let mut customers: HashSet<String> = HashSet::new();
        let mut orders: std::collections::HashMap<String, OrderStatus> = Default::default();
        let rank = |s: OrderStatus| match s {
            OrderStatus::Placed => 0,
            OrderStatus::Paid => 1,
            OrderStatus::Shipped => 2,
            OrderStatus::Delivered | OrderStatus::Cancelled => 3,
        };
        let ops: Vec<RowOp> = w
            .initial()
            .into_iter()
            .chain(w.transactions().flat_map(|t| t.ops))
            .collect();
        for op in ops {
            match op {
                RowOp::InsertCustomer(c) => assert!(customers.insert(c.customer_id)),
                RowOp::UpdateCustomer(c) => assert!(customers.contains(&c.customer_id)),
                RowOp::DeleteCustomer { customer_id } => assert!(customers.remove(&customer_id)),
                RowOp::InsertOrderStatus { order_id, status } => {
                    assert!(orders.insert(order_id, status).is_none())
                }
                RowOp::UpdateOrderStatus { order_id, status } => {
                    let before = orders
                        .insert(order_id, status)
                        .expect("an order placed before");
                    assert!(rank(status) > rank(before), "{before:?} -> {status:?}");
                }
            }
        }
    }

    #[test]
    fn the_first_customers_are_the_ones_order_events_reference() {
        let s = scenario("[oltp]\ntransactions = 1\ncustomers = 5\norders = 0\n");
        let mut w = Workload::new(&s, None).unwrap();
        let ids: Vec<String> = w
            .initial()
            .into_iter()
            .map(|op| op.key().1.to_owned())
            .collect();
        let mut g = crate::Generator::new(&s, None);
        let referenced: HashSet<String> = g
            .first_events()
            .filter_map(|e| match e.payload() {
                events::Payload::OrderCreated(o) => Some(o.customer_id.clone()),
                _ => None,
            })
            .collect();
        let roster = world::customers(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(
            ids,
            roster[..5].iter().map(|c| c.id.clone()).collect::<Vec<_>>()
        );
        assert!(
            referenced
                .iter()
                .all(|id| roster.iter().any(|c| &c.id == id))
        );
    }
}
