//! The business state behind the generated events: the card catalog, stock per card (for the
//! supply-constrained mode), customers and factories. It guarantees the referential rules:
//! orders and batches only reference announced cards, produced <= planned, defective <= produced,
//! and (when constrained) units ordered never exceed good units produced, per card.

use std::collections::VecDeque;

use chrono::{DateTime, Days, Utc};
use fake::Fake;
use fake::faker::address::en::CountryCode;
use fake::faker::name::en::{FirstName, LastName};
use rand::Rng;
use rand::seq::IndexedRandom;

use events::{
    CardCatalogCreated, ManufacturingBatch, OrderAmended, OrderCancelled, OrderCreated, OrderLine,
    Payload, Source, timestamp,
};

pub(crate) const CUSTOMERS: usize = 1_000;
const FACTORIES: usize = 6;
const CARDS_PER_SET: u32 = 40;
const TITLES: &[&str] = &[
    "Warden",
    "Oracle",
    "Tide Caller",
    "Archivist",
    "Drake",
    "Herald",
    "Sentinel",
    "Alchemist",
    "Wanderer",
    "Stormbinder",
    "Lantern Keeper",
    "Duelist",
    "Shade",
    "Forgemaster",
    "Seer",
];
const SET_WORDS: &[&str] = &[
    "Chronicles",
    "Uprising",
    "Echoes",
    "Dominion",
    "Legends",
    "Horizons",
    "Eclipse",
];
/// (rarity, weight, price range in cents)
const RARITIES: &[(&str, u32, (i64, i64))] = &[
    ("common", 60, (10, 50)),
    ("uncommon", 25, (25, 150)),
    ("rare", 12, (100, 2_000)),
    ("mythic", 3, (1_000, 20_000)),
];
const CHANNELS: &[(&str, u32)] = &[
    ("web", 45),
    ("mobile", 30),
    ("marketplace", 15),
    ("retail", 10),
];
const LINE_COUNTS: &[(usize, u32)] = &[(1, 50), (2, 25), (3, 15), (4, 10)];
const QUANTITIES: &[(u32, u32)] = &[(1, 60), (2, 20), (3, 8), (4, 12)];

/// How many recent orders and batches stay open to revision (older ones are forgotten, so a
/// long load test keeps constant memory).
const REVISABLE: usize = 4_096;

/// The event-time order of "latest wins" without the event id: event time, then produce time.
/// A revision that would tie an earlier event on both is not made (see [`World::revision_time`]).
type Recency = (DateTime<Utc>, DateTime<Utc>);

struct Card {
    id: String,
    /// The catalog entry that holds now (the latest by event time).
    current: CardCatalogCreated,
    first_at: DateTime<Utc>,
    latest: Recency,
    /// Good units produced minus units ordered (only tracked when supply is constrained).
    stock: u64,
    /// Position in `World::in_stock`, if there.
    in_stock_at: Option<usize>,
}

struct Order {
    id: String,
    /// The lines that hold now: the order's own, or the latest amendment's.
    lines: Vec<OrderLine>,
    first_at: DateTime<Utc>,
    latest: Recency,
    cancelled: bool,
}

struct Batch {
    current: ManufacturingBatch,
    card_index: usize,
    first_at: DateTime<Utc>,
    latest: Recency,
}

/// A customer of the shop: orders reference it, and the OLTP workload's `shop.customers` holds
/// the same ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Customer {
    pub id: String,
    pub first: String,
    pub last: String,
    pub country: String,
}

/// The shop's customers for a seed, as the world of that seed has them: drawn first from the
/// seeded stream, so the OLTP workload can rebuild the list without the rest of the world.
pub(crate) fn customers<R: Rng + ?Sized>(rng: &mut R) -> Vec<Customer> {
    (0..CUSTOMERS).map(|i| customer(rng, i)).collect()
}

/// The `i`-th customer, drawn from `rng`.
pub(crate) fn customer<R: Rng + ?Sized>(rng: &mut R, i: usize) -> Customer {
    let first: String = FirstName().fake_with_rng(rng);
    let last: String = LastName().fake_with_rng(rng);
    let slug: String = format!("{first}-{last}")
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Customer {
        id: format!("{slug}-{i:04}"),
        first,
        last,
        country: CountryCode().fake_with_rng(rng),
    }
}

struct CardSet {
    name: String,
    code: String,
    size: u32,
}

/// Shares of each source's slots that revise an existing key instead of making a new one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RevisionRates {
    pub card_updates: f64,
    pub order_amendments: f64,
    pub order_cancellations: f64,
    pub batch_corrections: f64,
    /// Share of applied stream revisions preceded (in event time) by a held-back one.
    pub out_of_order: f64,
}

/// One slot's payload and the event time it takes.
pub(crate) struct Made {
    pub payload: Payload,
    pub occurred_at: DateTime<Utc>,
    pub revision: Option<Revision>,
    /// An earlier revision of the same key (payload and event time), held back to be emitted
    /// after this one, so it arrives superseded.
    pub held_back: Option<(Payload, DateTime<Utc>)>,
}

/// A payload that revises a key announced earlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Revision {
    /// An event of the same key with a later event time was emitted before this one: it
    /// arrives already superseded, and "latest wins" must keep the earlier arrival.
    pub superseded: bool,
}

pub(crate) struct World {
    constrained: bool,
    rates: RevisionRates,
    cards: Vec<Card>,
    in_stock: Vec<usize>,
    customers: Vec<Customer>,
    factories: Vec<String>,
    set: CardSet,
    sets_made: usize,
    orders_made: u64,
    batches_made: u64,
    orders: VecDeque<Order>,
    batches: VecDeque<Batch>,
}

fn weighted<'a, T, R: Rng + ?Sized>(
    rng: &mut R,
    items: &'a [T],
    weight: impl Fn(&T) -> u32,
) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut pick = rng.random_range(0..total);
    for item in items {
        let w = weight(item);
        if pick < w {
            return item;
        }
        pick -= w;
    }
    unreachable!("pick < total")
}

/// Newer cards sell and get produced more often than old ones.
fn skewed_index<R: Rng + ?Sized>(rng: &mut R, len: usize) -> usize {
    let u: f64 = rng.random();
    len - 1 - ((u * u * len as f64) as usize).min(len - 1)
}

impl World {
    pub(crate) fn new<R: Rng + ?Sized>(
        rng: &mut R,
        constrained: bool,
        rates: RevisionRates,
    ) -> Self {
        let customers = customers(rng);
        let factories = (0..FACTORIES)
            .map(|_| format!("{} Works", LastName().fake_with_rng::<String, _>(rng)))
            .collect();
        let mut world = Self {
            constrained,
            rates,
            cards: Vec::new(),
            in_stock: Vec::new(),
            customers,
            factories,
            set: CardSet {
                name: String::new(),
                code: String::new(),
                size: CARDS_PER_SET,
            },
            sets_made: 0,
            orders_made: 0,
            batches_made: 0,
            orders: VecDeque::new(),
            batches: VecDeque::new(),
        };
        world.next_set(rng);
        world
    }

    /// The payload for a slot of `source`'s schedule at `occurred_at` (emitted at
    /// `produced_at`): a new key, or with the scenario's shares a revision of a recent one. When
    /// the catalog is empty, or (constrained) nothing is in stock, another kind of event takes
    /// the slot so the rules hold.
    /// With `hold_back` (stream slots), an applied revision may come with an earlier one to
    /// emit later ([`Made::held_back`]).
    pub(crate) fn next_payload<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        source: Source,
        occurred_at: DateTime<Utc>,
        produced_at: DateTime<Utc>,
        hold_back: bool,
    ) -> Made {
        let at = (occurred_at, produced_at);
        let source = match source {
            _ if self.cards.is_empty() => Source::Cards,
            Source::Orders if self.constrained && self.in_stock.is_empty() => Source::Manufacturing,
            other => other,
        };
        let share = match source {
            Source::Cards => self.rates.card_updates,
            Source::Orders => self.rates.order_amendments + self.rates.order_cancellations,
            Source::Manufacturing | Source::Cdc => self.rates.batch_corrections,
        };
        // No draw without revisions: scenarios without them keep the stream they always had.
        let roll: f64 = if share > 0.0 { rng.random() } else { 1.0 };
        let revised = match source {
            Source::Cards if roll < self.rates.card_updates => self.revise_card(rng, at, hold_back),
            Source::Orders if roll < self.rates.order_amendments => {
                self.amend_order(rng, at, hold_back)
            }
            Source::Orders
                if roll < self.rates.order_amendments + self.rates.order_cancellations =>
            {
                self.cancel_order(rng, at)
            }
            Source::Manufacturing if roll < self.rates.batch_corrections => {
                self.correct_batch(rng, at, hold_back)
            }
            _ => None,
        };
        if let Some(made) = revised {
            return made;
        }
        let payload = match source {
            Source::Cards => Payload::CardCatalogCreated(self.card(rng, at)),
            Source::Orders => Payload::OrderCreated(self.order(rng, at)),
            Source::Manufacturing | Source::Cdc => Payload::ManufacturingBatch(self.batch(rng, at)),
        };
        Made {
            payload,
            occurred_at,
            revision: None,
            held_back: None,
        }
    }

    /// The event time of a revision of a key first seen at `first_at` and latest at `latest`:
    /// never before the key's first event (a late revision is clamped just after it), and
    /// `None` when it would tie the latest event exactly or cannot fit before `produced_at`.
    /// Also says whether the revision arrives superseded.
    fn revision_time(
        (occurred_at, produced_at): Recency,
        first_at: DateTime<Utc>,
        latest: Recency,
    ) -> Option<(DateTime<Utc>, Revision)> {
        let occurred_at = occurred_at.max(first_at + chrono::Duration::microseconds(1));
        if occurred_at > produced_at || (occurred_at, produced_at) == latest {
            return None;
        }
        let superseded = (occurred_at, produced_at) < latest;
        Some((occurred_at, Revision { superseded }))
    }

    /// For a revision at `occurred_at` that becomes current over `previous`, whether to hold
    /// back an earlier one (with the out-of-order share) and its event time: strictly between
    /// the two, so it arrives after the revision that supersedes it.
    fn held_back_time<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        hold_back: bool,
        previous: Recency,
        occurred_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !hold_back || !rng.random_bool(self.rates.out_of_order) {
            return None;
        }
        let gap = (occurred_at - previous.0).num_microseconds()?;
        (gap >= 2).then(|| previous.0 + chrono::Duration::microseconds(rng.random_range(1..gap)))
    }

    /// A card's entry with a new list price or name.
    fn card_tweak<R: Rng + ?Sized>(rng: &mut R, card: &CardCatalogCreated) -> CardCatalogCreated {
        let mut next = card.clone();
        if rng.random_bool(0.5) {
            let factor = [0.8, 0.9, 1.1, 1.25][rng.random_range(0..4)];
            let old = next.list_price_cents;
            let new = (old as f64 * factor).round() as i64;
            next.list_price_cents = if new == old { old + 1 } else { new };
        } else {
            let title = TITLES.choose(rng).expect("non-empty");
            let (first, _) = next.name.split_once(", ").unwrap_or((&next.name, ""));
            next.name = format!("{first}, {title} Reborn");
        }
        next
    }

    fn revise_card<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        at: Recency,
        hold_back: bool,
    ) -> Option<Made> {
        if self.cards.is_empty() {
            return None;
        }
        let index = skewed_index(rng, self.cards.len());
        let card = &self.cards[index];
        let (occurred_at, revision) = Self::revision_time(at, card.first_at, card.latest)?;
        let previous = card.current.clone();
        let next = Self::card_tweak(rng, &previous);
        let mut held_back = None;
        if !revision.superseded {
            held_back = self
                .held_back_time(rng, hold_back, self.cards[index].latest, occurred_at)
                .map(|t| {
                    (
                        Payload::CardCatalogCreated(Self::card_tweak(rng, &previous)),
                        t,
                    )
                });
            let card = &mut self.cards[index];
            card.current = next.clone();
            card.latest = (occurred_at, at.1);
        }
        Some(Made {
            payload: Payload::CardCatalogCreated(next),
            occurred_at,
            revision: Some(revision),
            held_back,
        })
    }

    /// A recent order still open (not cancelled), by its position in `orders`.
    fn open_order<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        if self.orders.is_empty() {
            return None;
        }
        let index = skewed_index(rng, self.orders.len());
        (!self.orders[index].cancelled).then_some(index)
    }

    /// `lines` with one line's quantity changed to another within 1..=`most(old)`.
    fn lines_tweak<R: Rng + ?Sized>(
        rng: &mut R,
        lines: &[OrderLine],
        most: impl Fn(&OrderLine) -> u32,
    ) -> Option<(Vec<OrderLine>, usize, u32)> {
        let line = rng.random_range(0..lines.len());
        let old = lines[line].quantity;
        let choices: Vec<u32> = (1..=most(&lines[line])).filter(|q| *q != old).collect();
        let quantity = *choices.choose(rng)?;
        let mut next = lines.to_vec();
        next[line].quantity = quantity;
        Some((next, line, old))
    }

    fn amend_order<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        at: Recency,
        hold_back: bool,
    ) -> Option<Made> {
        let index = self.open_order(rng)?;
        let order = &self.orders[index];
        let (occurred_at, revision) = Self::revision_time(at, order.first_at, order.latest)?;
        // An applied amendment may take more units only from stock.
        let applied_in_stock = self.constrained && !revision.superseded;
        let most = |l: &OrderLine| {
            let stock = if applied_in_stock {
                self.cards[self.card_index(&l.card_id)].stock.min(3) as u32
            } else {
                3
            };
            l.quantity + stock
        };
        let (lines, line, old) = Self::lines_tweak(rng, &order.lines, most)?;
        let quantity = lines[line].quantity;
        let reason = |rng: &mut R, up: bool| {
            if up || rng.random_bool(0.5) {
                "customer_request"
            } else {
                "stock_adjustment"
            }
        };
        let amendment = |lines: Vec<OrderLine>, reason: &str| {
            Payload::OrderAmended(OrderAmended {
                order_id: order.id.clone(),
                lines,
                reason: reason.to_owned(),
            })
        };
        let payload = amendment(lines.clone(), reason(rng, quantity > old));
        let mut held_back = None;
        if !revision.superseded {
            if let Some(t) = self.held_back_time(rng, hold_back, order.latest, occurred_at)
                && let Some((earlier, _, _)) =
                    Self::lines_tweak(rng, &order.lines, |l| l.quantity + 3)
            {
                held_back = Some((amendment(earlier, reason(rng, false)), t));
            }
            if self.constrained {
                let card_index = self.card_index(&lines[line].card_id);
                let stock = self.cards[card_index].stock + u64::from(old) - u64::from(quantity);
                self.set_stock(card_index, stock);
            }
            let order = &mut self.orders[index];
            order.lines = lines;
            order.latest = (occurred_at, at.1);
        }
        Some(Made {
            payload,
            occurred_at,
            revision: Some(revision),
            held_back,
        })
    }

    /// Cancellation is terminal whatever its event time: the order's units go back to stock.
    fn cancel_order<R: Rng + ?Sized>(&mut self, rng: &mut R, at: Recency) -> Option<Made> {
        let index = self.open_order(rng)?;
        let order = &self.orders[index];
        let (occurred_at, revision) = Self::revision_time(at, order.first_at, order.latest)?;
        let reason = ["customer_request", "payment_failed", "out_of_stock"][rng.random_range(0..3)];
        let order_id = order.id.clone();
        if self.constrained {
            for line in order.lines.clone() {
                let card_index = self.card_index(&line.card_id);
                let stock = self.cards[card_index].stock + u64::from(line.quantity);
                self.set_stock(card_index, stock);
            }
        }
        let order = &mut self.orders[index];
        order.cancelled = true;
        if !revision.superseded {
            order.latest = (occurred_at, at.1);
        }
        Some(Made {
            payload: Payload::OrderCancelled(OrderCancelled {
                order_id,
                reason: reason.to_owned(),
            }),
            occurred_at,
            revision: Some(revision),
            held_back: None,
        })
    }

    /// A batch's produced and defective counts restated.
    fn batch_tweak<R: Rng + ?Sized>(rng: &mut R, batch: &ManufacturingBatch) -> ManufacturingBatch {
        let mut next = batch.clone();
        let planned = next.quantity_planned;
        next.quantity_produced = planned - rng.random_range(0..=planned / 10);
        next.quantity_defective = rng.random_range(0..=next.quantity_produced / 25);
        next
    }

    fn correct_batch<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        at: Recency,
        hold_back: bool,
    ) -> Option<Made> {
        if self.batches.is_empty() {
            return None;
        }
        let index = skewed_index(rng, self.batches.len());
        let batch = &self.batches[index];
        let (occurred_at, revision) = Self::revision_time(at, batch.first_at, batch.latest)?;
        let card_index = batch.card_index;
        let previous = batch.current.clone();
        let mut next = Self::batch_tweak(rng, &previous);
        let mut held_back = None;
        if !revision.superseded {
            held_back = self
                .held_back_time(rng, hold_back, batch.latest, occurred_at)
                .map(|t| {
                    (
                        Payload::ManufacturingBatch(Self::batch_tweak(rng, &previous)),
                        t,
                    )
                });
            if self.constrained {
                // Units already ordered stay covered: the corrected batch yields at least what
                // the card's orders took from it.
                let good = previous.quantity_produced - previous.quantity_defective;
                let floor = u64::from(good).saturating_sub(self.cards[card_index].stock) as u32;
                if next.quantity_produced - next.quantity_defective < floor {
                    next.quantity_defective = 0;
                    next.quantity_produced = next.quantity_produced.max(floor);
                }
                let new_good = next.quantity_produced - next.quantity_defective;
                let stock = self.cards[card_index].stock + u64::from(new_good) - u64::from(good);
                self.set_stock(card_index, stock);
            }
            let batch = &mut self.batches[index];
            batch.current = next.clone();
            batch.latest = (occurred_at, at.1);
        }
        Some(Made {
            payload: Payload::ManufacturingBatch(next),
            occurred_at,
            revision: Some(revision),
            held_back,
        })
    }

    fn card_index(&self, card_id: &str) -> usize {
        // Card ids are `card-NNNNNN`, numbered from 1 in catalog order.
        card_id
            .strip_prefix("card-")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .filter(|i| *i < self.cards.len())
            .expect("orders and batches reference cards of this world")
    }

    /// Sets a card's stock (constrained mode), keeping `in_stock` to the cards that have some.
    fn set_stock(&mut self, card_index: usize, stock: u64) {
        self.cards[card_index].stock = stock;
        let listed = self.cards[card_index].in_stock_at.is_some();
        if stock > 0 && !listed {
            self.cards[card_index].in_stock_at = Some(self.in_stock.len());
            self.in_stock.push(card_index);
        } else if stock == 0 && listed {
            self.remove_from_stock(card_index);
        }
    }

    fn next_set<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let place: String = LastName().fake_with_rng(rng);
        let word = SET_WORDS[self.sets_made % SET_WORDS.len()];
        let letters: String = place
            .chars()
            .filter(char::is_ascii_alphabetic)
            .take(3)
            .collect();
        self.sets_made += 1;
        self.set = CardSet {
            name: format!("{word} of {place}"),
            code: format!("{}{}", letters.to_uppercase(), self.sets_made),
            size: 0,
        };
    }

    fn card<R: Rng + ?Sized>(&mut self, rng: &mut R, at: Recency) -> CardCatalogCreated {
        let latest = at;
        let at = at.0;
        if self.set.size >= CARDS_PER_SET {
            self.next_set(rng);
        }
        self.set.size += 1;
        let (rarity, _, (low, high)) = *weighted(rng, RARITIES, |r| r.1);
        let list_price_cents = rng.random_range(low..=high);
        let first: String = FirstName().fake_with_rng(rng);
        let place: String = LastName().fake_with_rng(rng);
        let title = TITLES.choose(rng).expect("non-empty");
        let id = format!("card-{:06}", self.cards.len() + 1);
        let release = at.date_naive() + Days::new(rng.random_range(0..=45));
        let card = CardCatalogCreated {
            card_id: id.clone(),
            sku: format!(
                "{}-{:03}{}",
                self.set.code,
                self.set.size,
                &rarity[..1].to_uppercase()
            ),
            name: format!("{first}, {title} of {place}"),
            set_name: self.set.name.clone(),
            rarity: rarity.to_owned(),
            release_date: release.format("%Y-%m-%d").to_string(),
            list_price_cents,
            currency: "USD".to_owned(),
        };
        self.cards.push(Card {
            id,
            current: card.clone(),
            first_at: at,
            latest,
            stock: 0,
            in_stock_at: None,
        });
        card
    }

    fn order<R: Rng + ?Sized>(&mut self, rng: &mut R, at: Recency) -> OrderCreated {
        let latest = at;
        let at = at.0;
        self.orders_made += 1;
        let customer_index = rng.random_range(0..self.customers.len());
        let (channel, _) = weighted(rng, CHANNELS, |c| c.1);
        let wanted_lines = weighted(rng, LINE_COUNTS, |l| l.1).0;
        let mut lines: Vec<OrderLine> = Vec::with_capacity(wanted_lines);
        let mut picked: [usize; 4] = [usize::MAX; 4];
        for slot in 0..wanted_lines {
            let pool = if self.constrained {
                self.in_stock.len()
            } else {
                self.cards.len()
            };
            if pool == 0 {
                break;
            }
            let pick = skewed_index(rng, pool);
            let card_index = if self.constrained {
                self.in_stock[pick]
            } else {
                pick
            };
            if picked.contains(&card_index) {
                continue;
            }
            picked[slot] = card_index;
            let mut quantity = weighted(rng, QUANTITIES, |q| q.1).0;
            let discounted = rng.random_bool(0.2);
            let card = &mut self.cards[card_index];
            if self.constrained {
                quantity = quantity.min(card.stock as u32);
                card.stock -= u64::from(quantity);
            }
            let list = card.current.list_price_cents;
            lines.push(OrderLine {
                card_id: card.id.clone(),
                quantity,
                unit_price_cents: if discounted { list * 9 / 10 } else { list },
            });
            if self.constrained && self.cards[card_index].stock == 0 {
                self.remove_from_stock(card_index);
            }
        }
        debug_assert!(!lines.is_empty(), "the first pick always finds a card");
        let customer = &self.customers[customer_index];
        let order = OrderCreated {
            order_id: format!("ord-{:09}", self.orders_made),
            customer_id: customer.id.clone(),
            channel: (*channel).to_owned(),
            ship_country: customer.country.clone(),
            ordered_at: Some(timestamp::to_proto(at)),
            lines,
        };
        if self.orders.len() == REVISABLE {
            self.orders.pop_front();
        }
        self.orders.push_back(Order {
            id: order.order_id.clone(),
            lines: order.lines.clone(),
            first_at: at,
            latest,
            cancelled: false,
        });
        order
    }

    fn batch<R: Rng + ?Sized>(&mut self, rng: &mut R, at: Recency) -> ManufacturingBatch {
        let latest = at;
        let at = at.0;
        self.batches_made += 1;
        let card_index = skewed_index(rng, self.cards.len());
        let planned: u32 = 500 * rng.random_range(1..=10);
        let produced = planned - rng.random_range(0..=planned / 10);
        let defective = rng.random_range(0..=produced / 25);
        let hours = rng.random_range(2 * 60..=36 * 60);
        if self.constrained {
            let stock = self.cards[card_index].stock + u64::from(produced - defective);
            self.set_stock(card_index, stock);
        }
        let batch = ManufacturingBatch {
            batch_id: format!("mfg-{:07}", self.batches_made),
            card_id: self.cards[card_index].id.clone(),
            factory: self.factories[rng.random_range(0..self.factories.len())].clone(),
            started_at: Some(timestamp::to_proto(at - chrono::Duration::minutes(hours))),
            completed_at: Some(timestamp::to_proto(at)),
            quantity_planned: planned,
            quantity_produced: produced,
            quantity_defective: defective,
        };
        if self.batches.len() == REVISABLE {
            self.batches.pop_front();
        }
        self.batches.push_back(Batch {
            current: batch.clone(),
            card_index,
            first_at: at,
            latest,
        });
        batch
    }

    fn remove_from_stock(&mut self, card_index: usize) {
        let at = self.cards[card_index]
            .in_stock_at
            .take()
            .expect("card is listed in stock");
        self.in_stock.swap_remove(at);
        if let Some(&moved) = self.in_stock.get(at) {
            self.cards[moved].in_stock_at = Some(at);
        }
    }
}
