//! The independent oracle: the three marts computed in Rust from the exact events a run
//! produced, with the rules the dbt models state in SQL:
//! - one event per `event_id` (copies are identical; a copy with another payload is a conflict);
//! - per business key (card, order, batch) the latest event wins, ordered by event time, then
//!   produce time, then event id, whatever order the events arrived in;
//! - a card's `first_seen_at` is its earliest catalog event time;
//! - an order's header is its `order_created` event's; its lines are those of its latest
//!   `order_created` or `order_amended` event; any `order_cancelled` cancels it (terminal), at
//!   the latest cancellation's event time;
//! - order lines are numbered from 1 in event order; amounts are quantity x unit price in cents;
//! - rates are produced / planned and defective / produced; duration is whole seconds / 3600.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, NaiveDateTime, Utc};
use events::{Event, Fingerprint, Payload, timestamp};

use crate::prove::mart::{Cell, DIM_CARD, FCT_BATCH_PERFORMANCE, FCT_ORDERS, Marts};

/// What the oracle derived from a run's events.
pub struct Expected {
    pub marts: Marts,
    /// Distinct event ids.
    pub distinct_events: u64,
    /// Event ids seen with more than one payload.
    pub conflicts: Vec<String>,
}

/// Orders events for "latest wins": event time, then produce time, then id.
fn recency(e: &Event) -> (DateTime<Utc>, DateTime<Utc>, &str) {
    (e.occurred_at(), e.produced_at(), e.event_id())
}

fn ts(t: DateTime<Utc>) -> Cell {
    Cell::Timestamp(t.naive_utc())
}

fn proto_ts(t: &Option<prost_types::Timestamp>) -> NaiveDateTime {
    let t = t.as_ref().expect("validated events carry their timestamps");
    timestamp::from_proto("timestamp", t)
        .expect("validated events carry valid timestamps")
        .naive_utc()
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

/// Computes the expected marts. Events may repeat (duplicates, history overlapping the stream).
pub fn expected_marts<'a>(events: impl IntoIterator<Item = &'a Event>) -> Expected {
    let mut by_id: HashMap<&str, (&Event, Fingerprint)> = HashMap::new();
    let mut conflicts = Vec::new();
    for event in events {
        match by_id.entry(event.event_id()) {
            Entry::Vacant(slot) => {
                slot.insert((event, event.fingerprint()));
            }
            Entry::Occupied(seen) => {
                if seen.get().1 != event.fingerprint() {
                    conflicts.push(event.event_id().to_owned());
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();

    let mut cards: HashMap<&str, (&Event, DateTime<Utc>)> = HashMap::new();
    let mut orders: HashMap<&str, &Event> = HashMap::new();
    let mut order_lines: HashMap<&str, &Event> = HashMap::new();
    let mut cancellations: HashMap<&str, &Event> = HashMap::new();
    let mut batches: HashMap<&str, &Event> = HashMap::new();
    for (event, _) in by_id.values() {
        match event.payload() {
            Payload::CardCatalogCreated(card) => {
                let slot = cards
                    .entry(card.card_id.as_str())
                    .or_insert((event, event.occurred_at()));
                slot.1 = slot.1.min(event.occurred_at());
                if recency(event) > recency(slot.0) {
                    slot.0 = event;
                }
            }
            Payload::OrderCreated(order) => {
                latest(&mut orders, &order.order_id, event);
                latest(&mut order_lines, &order.order_id, event);
            }
            Payload::OrderAmended(amended) => latest(&mut order_lines, &amended.order_id, event),
            Payload::OrderCancelled(c) => latest(&mut cancellations, &c.order_id, event),
            Payload::ManufacturingBatch(batch) => latest(&mut batches, &batch.batch_id, event),
            // Row changes travel the CDC path; their oracle is the source database.
            Payload::RowChange(_) => {}
        }
    }

    let mut marts = Marts::empty();
    for (event, first_seen) in cards.values() {
        let Payload::CardCatalogCreated(c) = event.payload() else {
            unreachable!("grouped by type")
        };
        let release = chrono::NaiveDate::parse_from_str(&c.release_date, "%Y-%m-%d")
            .map(Cell::Date)
            .unwrap_or(Cell::Null);
        marts.table_mut(&DIM_CARD).insert(vec![
            text(&c.card_id),
            text(&c.sku),
            text(&c.name),
            text(&c.set_name),
            text(&c.rarity),
            release,
            Cell::Int(c.list_price_cents),
            text(&c.currency),
            ts(*first_seen),
        ]);
    }
    for (order_id, event) in &orders {
        let Payload::OrderCreated(o) = event.payload() else {
            unreachable!("grouped by type")
        };
        let ordered_at = proto_ts(&o.ordered_at);
        let lines = match order_lines[order_id].payload() {
            Payload::OrderCreated(created) => &created.lines,
            Payload::OrderAmended(amended) => &amended.lines,
            _ => unreachable!("grouped by type"),
        };
        let cancelled_at = cancellations.get(order_id).map(|c| ts(c.occurred_at()));
        for (i, line) in lines.iter().enumerate() {
            marts.table_mut(&FCT_ORDERS).insert(vec![
                text(&o.order_id),
                Cell::Int(i as i64 + 1),
                text(&line.card_id),
                text(&o.customer_id),
                text(&o.channel),
                text(&o.ship_country),
                Cell::Int(i64::from(line.quantity)),
                Cell::Int(line.unit_price_cents),
                Cell::Int(i64::from(line.quantity) * line.unit_price_cents),
                Cell::Timestamp(ordered_at),
                Cell::Date(ordered_at.date()),
                Cell::Bool(cancelled_at.is_some()),
                cancelled_at.clone().unwrap_or(Cell::Null),
            ]);
        }
    }
    for event in batches.values() {
        let Payload::ManufacturingBatch(b) = event.payload() else {
            unreachable!("grouped by type")
        };
        let started = proto_ts(&b.started_at);
        let completed = proto_ts(&b.completed_at);
        // DATEDIFF('second') counts second boundaries crossed: whole seconds, floored.
        let seconds = completed.and_utc().timestamp() - started.and_utc().timestamp();
        marts.table_mut(&FCT_BATCH_PERFORMANCE).insert(vec![
            text(&b.batch_id),
            text(&b.card_id),
            text(&b.factory),
            Cell::Int(i64::from(b.quantity_planned)),
            Cell::Int(i64::from(b.quantity_produced)),
            Cell::Int(i64::from(b.quantity_defective)),
            ratio(b.quantity_produced, b.quantity_planned),
            ratio(b.quantity_defective, b.quantity_produced),
            Cell::Ratio(seconds as f64 / 3600.0),
            Cell::Timestamp(completed),
            Cell::Date(completed.date()),
        ]);
    }
    Expected {
        marts,
        distinct_events: by_id.len() as u64,
        conflicts,
    }
}

fn latest<'a>(slot: &mut HashMap<&'a str, &'a Event>, key: &'a str, event: &'a Event) {
    let current = slot.entry(key).or_insert(event);
    if recency(event) > recency(current) {
        *current = event;
    }
}

fn ratio(numerator: u32, denominator: u32) -> Cell {
    if denominator == 0 {
        Cell::Null
    } else {
        Cell::Ratio(f64::from(numerator) / f64::from(denominator))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use events::{CardCatalogCreated, OrderAmended, OrderCancelled, OrderCreated, OrderLine};

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_772_000_000 + s, 0).unwrap()
    }

    fn card(id: &str, event: u128, t: i64, price: i64) -> Event {
        Event::new(
            uuid::Uuid::from_u128(event),
            at(t),
            at(t),
            Payload::CardCatalogCreated(CardCatalogCreated {
                card_id: id.into(),
                sku: "S-001C".into(),
                name: "n".into(),
                set_name: "s".into(),
                rarity: "common".into(),
                release_date: "2026-03-01".into(),
                list_price_cents: price,
                currency: "USD".into(),
            }),
        )
        .unwrap()
    }

    #[test]
    fn the_latest_catalog_event_wins_and_first_seen_is_the_earliest() {
        let events = [
            card("card-1", 1, 100, 10),
            card("card-1", 2, 50, 20),
            card("card-1", 3, 200, 30),
            card("card-1", 3, 200, 30),
        ];
        let expected = expected_marts(&events);
        assert_eq!(expected.distinct_events, 3);
        assert!(expected.conflicts.is_empty());
        let row = expected.marts.dim_card.rows.values().next().unwrap();
        assert_eq!(row[6], Cell::Int(30));
        assert_eq!(row[8], ts(at(50)));
    }

    fn line(card: &str, quantity: u32) -> OrderLine {
        OrderLine {
            card_id: card.into(),
            quantity,
            unit_price_cents: 100,
        }
    }

    fn order_event(id: u128, t: i64, produced: i64, payload: Payload) -> Event {
        Event::new(uuid::Uuid::from_u128(id), at(t), at(produced), payload).unwrap()
    }

    fn created(lines: Vec<OrderLine>) -> Payload {
        Payload::OrderCreated(OrderCreated {
            order_id: "ord-1".into(),
            customer_id: "c".into(),
            channel: "web".into(),
            ship_country: "NL".into(),
            ordered_at: Some(timestamp::to_proto(at(0))),
            lines,
        })
    }

    fn amended(lines: Vec<OrderLine>) -> Payload {
        Payload::OrderAmended(OrderAmended {
            order_id: "ord-1".into(),
            lines,
            reason: "customer_request".into(),
        })
    }

    fn quantities(expected: &Expected) -> Vec<(i64, bool)> {
        expected
            .marts
            .fct_orders
            .rows
            .values()
            .map(|r| match (&r[6], &r[11]) {
                (Cell::Int(q), Cell::Bool(c)) => (*q, *c),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_amendment_restates_the_lines_and_a_late_one_loses_to_a_later_event_time() {
        // Arrival order: the order, an amendment at t=20, then one that happened at t=10 but
        // arrived last. The t=20 lines hold.
        let events = [
            order_event(1, 0, 0, created(vec![line("card-1", 1), line("card-2", 2)])),
            order_event(
                2,
                20,
                20,
                amended(vec![line("card-1", 3), line("card-2", 2)]),
            ),
            order_event(
                3,
                10,
                30,
                amended(vec![line("card-1", 4), line("card-2", 2)]),
            ),
        ];
        assert_eq!(
            quantities(&expected_marts(&events)),
            [(3, false), (2, false)]
        );
        // The header stays the order's own: an amendment carries no customer.
        let row = expected_marts(&events)
            .marts
            .fct_orders
            .rows
            .into_values()
            .next()
            .unwrap();
        assert_eq!(row[3], Cell::Text("c".into()));
    }

    #[test]
    fn a_cancellation_is_terminal_and_keeps_the_lines() {
        let cancel = Payload::OrderCancelled(OrderCancelled {
            order_id: "ord-1".into(),
            reason: "payment_failed".into(),
        });
        let events = [
            order_event(1, 0, 0, created(vec![line("card-1", 1)])),
            order_event(2, 5, 40, cancel),
            order_event(3, 20, 20, amended(vec![line("card-1", 2)])),
        ];
        let expected = expected_marts(&events);
        assert_eq!(quantities(&expected), [(2, true)]);
        let row = expected.marts.fct_orders.rows.values().next().unwrap();
        assert_eq!(row[12], ts(at(5)));
    }

    #[test]
    fn a_late_catalog_revision_arrives_superseded() {
        let events = [
            card("card-1", 1, 0, 10),
            card("card-1", 2, 30, 20),
            // Happened at t=20, arrived after the t=30 revision: it loses.
            card("card-1", 3, 20, 30),
        ];
        let row = expected_marts(&events)
            .marts
            .dim_card
            .rows
            .into_values()
            .next()
            .unwrap();
        assert_eq!(row[6], Cell::Int(20));
        assert_eq!(row[8], ts(at(0)));
    }

    #[test]
    fn the_same_id_with_another_payload_is_a_conflict() {
        let events = [card("card-1", 1, 100, 10), card("card-1", 1, 100, 11)];
        let expected = expected_marts(&events);
        assert_eq!(expected.conflicts.len(), 1);
    }

    #[test]
    fn order_lines_are_numbered_from_one_with_amounts_in_cents() {
        let order = Event::new(
            uuid::Uuid::from_u128(9),
            at(0),
            at(0),
            Payload::OrderCreated(OrderCreated {
                order_id: "ord-1".into(),
                customer_id: "c".into(),
                channel: "web".into(),
                ship_country: "NL".into(),
                ordered_at: Some(timestamp::to_proto(at(0))),
                lines: vec![
                    OrderLine {
                        card_id: "card-1".into(),
                        quantity: 3,
                        unit_price_cents: 37,
                    },
                    OrderLine {
                        card_id: "card-2".into(),
                        quantity: 1,
                        unit_price_cents: 1999,
                    },
                ],
            }),
        )
        .unwrap();
        let expected = expected_marts([&order]);
        let rows: Vec<_> = expected.marts.fct_orders.rows.values().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((&rows[0][1], &rows[0][8]), (&Cell::Int(1), &Cell::Int(111)));
        assert_eq!(
            (&rows[1][1], &rows[1][8]),
            (&Cell::Int(2), &Cell::Int(1999))
        );
    }
}
