//! The business state behind the generated events: the card catalog, stock per card (for the
//! supply-constrained mode), customers and factories. It guarantees the referential rules:
//! orders and batches only reference announced cards, produced <= planned, defective <= produced,
//! and (when constrained) units ordered never exceed good units produced, per card.

use chrono::{DateTime, Days, Utc};
use fake::Fake;
use fake::faker::address::en::CountryCode;
use fake::faker::name::en::{FirstName, LastName};
use rand::Rng;
use rand::seq::IndexedRandom;

use events::{
    CardCatalogCreated, EventType, ManufacturingBatch, OrderCreated, OrderLine, Payload, timestamp,
};

const CUSTOMERS: usize = 1_000;
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

struct Card {
    id: String,
    list_price_cents: i64,
    /// Good units produced minus units ordered (only tracked when supply is constrained).
    stock: u64,
    /// Position in `World::in_stock`, if there.
    in_stock_at: Option<usize>,
}

struct Customer {
    id: String,
    country: String,
}

struct CardSet {
    name: String,
    code: String,
    size: u32,
}

pub(crate) struct World {
    constrained: bool,
    cards: Vec<Card>,
    in_stock: Vec<usize>,
    customers: Vec<Customer>,
    factories: Vec<String>,
    set: CardSet,
    sets_made: usize,
    orders_made: u64,
    batches_made: u64,
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
    pub(crate) fn new<R: Rng + ?Sized>(rng: &mut R, constrained: bool) -> Self {
        let customers = (0..CUSTOMERS)
            .map(|i| {
                let first: String = FirstName().fake_with_rng(rng);
                let last: String = LastName().fake_with_rng(rng);
                let slug: String = format!("{first}-{last}")
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                Customer {
                    id: format!("{slug}-{i:04}"),
                    country: CountryCode().fake_with_rng(rng),
                }
            })
            .collect();
        let factories = (0..FACTORIES)
            .map(|_| format!("{} Works", LastName().fake_with_rng::<String, _>(rng)))
            .collect();
        let mut world = Self {
            constrained,
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
        };
        world.next_set(rng);
        world
    }

    /// The payload for a slot of `wanted`'s schedule. When the catalog is empty, or (constrained)
    /// nothing is in stock, another kind of event takes the slot so the rules hold.
    pub(crate) fn next_payload<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        wanted: EventType,
        at: DateTime<Utc>,
    ) -> Payload {
        let ty = match wanted {
            _ if self.cards.is_empty() => EventType::CardCatalogCreated,
            EventType::OrderCreated if self.constrained && self.in_stock.is_empty() => {
                EventType::ManufacturingBatch
            }
            other => other,
        };
        match ty {
            EventType::CardCatalogCreated => Payload::CardCatalogCreated(self.card(rng, at)),
            EventType::OrderCreated => Payload::OrderCreated(self.order(rng, at)),
            EventType::ManufacturingBatch => Payload::ManufacturingBatch(self.batch(rng, at)),
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

    fn card<R: Rng + ?Sized>(&mut self, rng: &mut R, at: DateTime<Utc>) -> CardCatalogCreated {
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
        self.cards.push(Card {
            id: id.clone(),
            list_price_cents,
            stock: 0,
            in_stock_at: None,
        });
        CardCatalogCreated {
            card_id: id,
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
        }
    }

    fn order<R: Rng + ?Sized>(&mut self, rng: &mut R, at: DateTime<Utc>) -> OrderCreated {
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
            let list = card.list_price_cents;
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
        OrderCreated {
            order_id: format!("ord-{:09}", self.orders_made),
            customer_id: customer.id.clone(),
            channel: (*channel).to_owned(),
            ship_country: customer.country.clone(),
            ordered_at: Some(timestamp::to_proto(at)),
            lines,
        }
    }

    fn batch<R: Rng + ?Sized>(&mut self, rng: &mut R, at: DateTime<Utc>) -> ManufacturingBatch {
        self.batches_made += 1;
        let card_index = skewed_index(rng, self.cards.len());
        let planned: u32 = 500 * rng.random_range(1..=10);
        let produced = planned - rng.random_range(0..=planned / 10);
        let defective = rng.random_range(0..=produced / 25);
        let hours = rng.random_range(2 * 60..=36 * 60);
        if self.constrained {
            let card = &mut self.cards[card_index];
            card.stock += u64::from(produced - defective);
            if card.stock > 0 && card.in_stock_at.is_none() {
                card.in_stock_at = Some(self.in_stock.len());
                self.in_stock.push(card_index);
            }
        }
        ManufacturingBatch {
            batch_id: format!("mfg-{:07}", self.batches_made),
            card_id: self.cards[card_index].id.clone(),
            factory: self.factories[rng.random_range(0..self.factories.len())].clone(),
            started_at: Some(timestamp::to_proto(at - chrono::Duration::minutes(hours))),
            completed_at: Some(timestamp::to_proto(at)),
            quantity_planned: planned,
            quantity_produced: produced,
            quantity_defective: defective,
        }
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
