use chrono::{DateTime, Utc};
use events::{
    CardCatalogCreated, ChangeSource, ContractError, Envelope, Event, EventType, Fingerprint,
    ManufacturingBatch, OrderAmended, OrderCancelled, OrderCreated, OrderLine, Payload, RowChange,
    Source, timestamp,
};
use proptest::prelude::*;
use uuid::Uuid;

fn micros() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000-01-01 .. 2100-01-01, microsecond precision.
    (946_684_800_000_000i64..4_102_444_800_000_000)
        .prop_map(|us| DateTime::from_timestamp_micros(us).unwrap())
}

fn text() -> impl Strategy<Value = String> {
    // Includes quotes, backslashes, control and non-ASCII characters: JSON escaping must round trip.
    "[a-zA-Z0-9 '\"\\\\\u{e9}\u{4e2d}\u{1f0cf}\n\t-]{1,24}"
}

fn card() -> impl Strategy<Value = CardCatalogCreated> {
    (
        text(),
        text(),
        text(),
        text(),
        text(),
        0i64..10_000_000,
        1i32..36_500,
    )
        .prop_map(
            |(card_id, sku, name, set_name, rarity, list_price_cents, days)| CardCatalogCreated {
                card_id,
                sku,
                name,
                set_name,
                rarity,
                release_date: (chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()
                    + chrono::Days::new(days as u64))
                .to_string(),
                list_price_cents,
                currency: "USD".into(),
            },
        )
}

fn order() -> impl Strategy<Value = OrderCreated> {
    let line =
        (text(), 1u32..100, 0i64..1_000_000).prop_map(|(card_id, quantity, unit_price_cents)| {
            OrderLine {
                card_id,
                quantity,
                unit_price_cents,
            }
        });
    (
        text(),
        text(),
        text(),
        "[A-Z]{2}",
        micros(),
        prop::collection::vec(line, 1..6),
    )
        .prop_map(
            |(order_id, customer_id, channel, ship_country, ordered_at, lines)| OrderCreated {
                order_id,
                customer_id,
                channel,
                ship_country,
                ordered_at: Some(timestamp::to_proto(ordered_at)),
                lines,
            },
        )
}

fn batch() -> impl Strategy<Value = ManufacturingBatch> {
    (
        text(),
        text(),
        text(),
        micros(),
        0i64..1_000_000_000,
        0u32..100_000,
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(batch_id, card_id, factory, started, duration_us, planned, p, d)| {
                let produced = if planned == 0 { 0 } else { p % (planned + 1) };
                let defective = if produced == 0 { 0 } else { d % (produced + 1) };
                ManufacturingBatch {
                    batch_id,
                    card_id,
                    factory,
                    started_at: Some(timestamp::to_proto(started)),
                    completed_at: Some(timestamp::to_proto(
                        started + chrono::Duration::microseconds(duration_us),
                    )),
                    quantity_planned: planned,
                    quantity_produced: produced,
                    quantity_defective: defective,
                }
            },
        )
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        card().prop_map(Payload::CardCatalogCreated),
        order().prop_map(Payload::OrderCreated),
        (order(), text()).prop_map(|(o, reason)| Payload::OrderAmended(OrderAmended {
            order_id: o.order_id,
            lines: o.lines,
            reason,
        })),
        (text(), text()).prop_map(
            |(order_id, reason)| Payload::OrderCancelled(OrderCancelled { order_id, reason })
        ),
        batch().prop_map(Payload::ManufacturingBatch),
    ]
}

/// A JSON value of the kinds a row image holds.
fn column_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ]
}

/// A row change in any of its four shapes, at `commit_time`.
fn row_change(commit_time: DateTime<Utc>) -> impl Strategy<Value = Payload> {
    (
        0..4usize,
        prop::collection::btree_map("[a-z_]{1,8}", column_value(), 0..6),
        text(),
        1u64..1 << 40,
        1u64..1 << 20,
        any::<u32>(),
        (1u32..50, 0u32..50),
    )
        .prop_map(
            move |(op, mut row, id, commit_lsn, back, tx_id, (size, order))| {
                row.insert("id".into(), serde_json::Value::from(id));
                let key = serde_json::json!({"id": row["id"]}).to_string();
                let row = serde_json::Value::Object(row.into_iter().collect()).to_string();
                let op = ["c", "u", "d", "r"][op];
                let snapshot = op == "r";
                Payload::RowChange(RowChange {
                    op: op.into(),
                    table: "shop.customers".into(),
                    key,
                    before: if matches!(op, "u" | "d") {
                        row.clone()
                    } else {
                        String::new()
                    },
                    after: if op == "d" { String::new() } else { row },
                    source: Some(ChangeSource {
                        slot: "sluice_cdc".into(),
                        commit_lsn: commit_lsn + back,
                        change_lsn: if snapshot { 0 } else { commit_lsn },
                        tx_id: if snapshot { 0 } else { tx_id },
                        commit_time: Some(timestamp::to_proto(commit_time)),
                        tx_order: if snapshot { 0 } else { 1 + order % size },
                        tx_size: if snapshot { 0 } else { size },
                    }),
                })
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    let business = (any::<u128>(), micros(), 0i64..86_400_000_000, payload()).prop_map(
        |(id, occurred, lag_us, payload)| {
            Event::new(
                Uuid::from_u128(id),
                occurred,
                occurred + chrono::Duration::microseconds(lag_us),
                payload,
            )
            .unwrap()
        },
    );
    let change =
        (any::<u128>(), micros(), 0i64..1_000_000).prop_flat_map(|(id, committed, lag_us)| {
            row_change(committed).prop_map(move |payload| {
                Event::new(
                    Uuid::from_u128(id),
                    committed,
                    committed + chrono::Duration::microseconds(lag_us),
                    payload,
                )
                .unwrap()
            })
        });
    prop_oneof![4 => business, 1 => change]
}

/// Rebuilds a JSON value with every object's keys in a shuffled (seeded) order.
fn shuffle_keys(value: &serde_json::Value, seed: &mut u64) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            for i in (1..entries.len()).rev() {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                entries.swap(i, (*seed >> 33) as usize % (i + 1));
            }
            let mut out = serde_json::Map::new();
            for (k, v) in entries {
                out.insert(k.clone(), shuffle_keys(v, seed));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|v| shuffle_keys(v, seed)).collect())
        }
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn protobuf_and_canonical_json_round_trip(event in event()) {
        let decoded = Event::decode(&event.encode()).unwrap();
        prop_assert_eq!(&decoded, &event);

        let json = event.to_canonical_json();
        let parsed = Event::from_canonical_json(&json).unwrap();
        prop_assert_eq!(&parsed, &event);
        // Canonical means one form: writing the parsed event again gives the same bytes.
        prop_assert_eq!(parsed.to_canonical_json(), json);
    }

    #[test]
    fn fingerprint_does_not_depend_on_key_order(event in event(), seed in any::<u64>()) {
        let json: serde_json::Value = serde_json::from_str(&event.to_canonical_json()).unwrap();
        let mut seed = seed;
        let shuffled = shuffle_keys(&json, &mut seed);
        let reparsed = Event::from_canonical_value(shuffled.clone()).unwrap();
        prop_assert_eq!(reparsed.fingerprint(), event.fingerprint());
        let fp = Fingerprint::of_json(event.event_type(), &shuffled["payload"]).unwrap();
        prop_assert_eq!(fp, event.fingerprint());
    }

    #[test]
    fn fingerprint_changes_with_the_payload(event in event(), delta in 1i64..1000) {
        let mut envelope = event.clone().into_envelope();
        match envelope.payload.as_mut().unwrap() {
            Payload::CardCatalogCreated(c) => c.list_price_cents += delta,
            Payload::OrderCreated(o) => o.lines[0].unit_price_cents += delta,
            Payload::OrderAmended(o) => o.lines[0].quantity += delta as u32,
            Payload::OrderCancelled(o) => o.reason.push('!'),
            Payload::ManufacturingBatch(b) => { b.quantity_planned += delta as u32; }
            Payload::RowChange(c) => c.source.as_mut().unwrap().commit_lsn += delta as u64,
        }
        let changed = Event::try_from(envelope).unwrap();
        prop_assert_ne!(changed.fingerprint(), event.fingerprint());
    }
}

fn sample() -> Event {
    let t = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.25+02:00")
        .unwrap()
        .with_timezone(&Utc);
    Event::new(
        Uuid::from_u128(7),
        t,
        t,
        Payload::OrderCreated(OrderCreated {
            order_id: "O-1".into(),
            customer_id: "C-1".into(),
            channel: "web".into(),
            ship_country: "DE".into(),
            ordered_at: Some(timestamp::to_proto(t)),
            lines: vec![OrderLine {
                card_id: "K-1".into(),
                quantity: 2,
                unit_price_cents: 199,
            }],
        }),
    )
    .unwrap()
}

#[test]
fn canonical_json_has_the_documented_shape() {
    let e = sample();
    assert_eq!(e.routing_key(), "orders.order_created");
    assert_eq!(
        e.to_canonical_json(),
        r#"{"event_id":"00000000-0000-0000-0000-000000000007","source":"orders","type":"order_created","occurred_at":"2026-03-01T10:00:00.250000Z","produced_at":"2026-03-01T10:00:00.250000Z","schema_version":1,"payload":{"order_id":"O-1","customer_id":"C-1","channel":"web","ship_country":"DE","ordered_at":"2026-03-01T10:00:00.250000Z","lines":[{"card_id":"K-1","quantity":2,"unit_price_cents":199}]}}"#
    );
}

#[test]
fn contract_violations_are_named() {
    let good = sample().into_envelope();

    let err = Event::decode(b"\x0fnot protobuf").unwrap_err();
    assert!(matches!(err, ContractError::Decode(_)), "{err}");

    let mut e = good.clone();
    e.payload = None;
    assert!(matches!(
        Event::try_from(e).unwrap_err(),
        ContractError::Missing("payload")
    ));

    let mut e = good.clone();
    e.source = "cards".into();
    let err = Event::try_from(e).unwrap_err();
    assert_eq!(
        err.to_string(),
        "envelope says source \"cards\" but the payload is a order_created event"
    );

    let mut e = good.clone();
    e.r#type = "shipment".into();
    assert!(
        matches!(Event::try_from(e).unwrap_err(), ContractError::UnknownType(t) if t == "shipment")
    );

    let mut e = good.clone();
    e.event_id = "not-a-uuid".into();
    assert!(
        Event::try_from(e)
            .unwrap_err()
            .to_string()
            .contains("event_id")
    );

    let mut e = good.clone();
    e.schema_version = 2;
    assert!(matches!(
        Event::try_from(e).unwrap_err(),
        ContractError::UnsupportedSchemaVersion(2)
    ));

    let mut e = good.clone();
    e.occurred_at.as_mut().unwrap().nanos += 1;
    assert!(
        Event::try_from(e)
            .unwrap_err()
            .to_string()
            .contains("sub-microsecond")
    );

    let mut e = good.clone();
    e.produced_at.as_mut().unwrap().seconds -= 10;
    assert!(
        Event::try_from(e)
            .unwrap_err()
            .to_string()
            .contains("after produced_at")
    );

    let mut e = good;
    if let Some(Payload::OrderCreated(o)) = e.payload.as_mut() {
        o.lines.clear();
    }
    assert!(
        Event::try_from(e)
            .unwrap_err()
            .to_string()
            .contains("at least one line")
    );
}

#[test]
fn batch_quantities_must_be_consistent() {
    let t = DateTime::from_timestamp_micros(1_767_225_600_000_001).unwrap();
    let batch = |planned, produced, defective| {
        Event::new(
            Uuid::from_u128(1),
            t,
            t,
            Payload::ManufacturingBatch(ManufacturingBatch {
                batch_id: "B".into(),
                card_id: "K".into(),
                factory: "F".into(),
                started_at: Some(timestamp::to_proto(t)),
                completed_at: Some(timestamp::to_proto(t)),
                quantity_planned: planned,
                quantity_produced: produced,
                quantity_defective: defective,
            }),
        )
    };
    assert!(batch(10, 10, 10).is_ok());
    assert!(
        batch(10, 11, 0)
            .unwrap_err()
            .to_string()
            .contains("quantity_produced")
    );
    assert!(
        batch(10, 5, 6)
            .unwrap_err()
            .to_string()
            .contains("quantity_defective")
    );
}

fn change(op: &str, before: &str, after: &str) -> RowChange {
    RowChange {
        op: op.into(),
        table: "shop.customers".into(),
        key: r#"{"customer_id":"c-1"}"#.into(),
        before: before.into(),
        after: after.into(),
        source: Some(ChangeSource {
            slot: "sluice_cdc".into(),
            commit_lsn: 900,
            change_lsn: 800,
            tx_id: 77,
            commit_time: Some(timestamp::to_proto(sample().occurred_at())),
            tx_order: 1,
            tx_size: 2,
        }),
    }
}

fn change_event(change: RowChange) -> Result<Event, ContractError> {
    let t = sample().occurred_at();
    Event::new(Uuid::from_u128(8), t, t, Payload::RowChange(change))
}

#[test]
fn a_row_change_embeds_its_rows_and_routes_by_table() {
    let row = r#"{"country":"NL","customer_id":"c-1"}"#;
    let e = change_event(change("u", row, row)).unwrap();
    assert_eq!(e.routing_key(), "cdc.shop.customers");
    assert_eq!(e.source(), Source::Cdc);
    let json: serde_json::Value = serde_json::from_str(&e.to_canonical_json()).unwrap();
    assert_eq!(json["payload"]["after"]["country"], "NL");
    assert_eq!(
        json["payload"]["key"],
        serde_json::json!({"customer_id": "c-1"})
    );
    let deleted = change_event(change("d", row, "")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&deleted.to_canonical_json()).unwrap();
    assert!(json["payload"]["after"].is_null());
    assert_eq!(Event::from_canonical_value(json).unwrap(), deleted);
}

#[test]
fn row_change_violations_are_named() {
    let row = r#"{"country":"NL","customer_id":"c-1"}"#;
    let field = |c: RowChange| match change_event(c).unwrap_err() {
        ContractError::Invalid { field, reason } => format!("{field}: {reason}"),
        ContractError::Missing(field) => format!("{field}: missing"),
        other => other.to_string(),
    };
    assert!(field(change("x", "", row)).starts_with("op: \"x\""));
    assert!(field(change("c", row, row)).starts_with("before: op \"c\" has no"));
    assert!(field(change("d", row, row)).starts_with("after: op \"d\" has no"));
    assert!(field(change("d", "", "")).starts_with("before: op \"d\" needs"));
    let spaced = r#"{"customer_id": "c-1"}"#;
    assert!(field(change("c", "", spaced)).contains("not canonical JSON"));
    assert!(
        field(change("c", "", r#"{"customer_id":"c-2"}"#))
            .starts_with("key: column \"customer_id\"")
    );
    let mut unqualified = change("c", "", row);
    unqualified.table = "customers".into();
    assert!(field(unqualified).contains("not schema-qualified"));
    let mut after_commit = change("c", "", row);
    after_commit.source.as_mut().unwrap().change_lsn = 901;
    assert!(field(after_commit).contains("must lie before the commit record"));
    let mut read = change("r", "", row);
    assert!(field(read.clone()).contains("a snapshot read has no change_lsn"));
    read.source = Some(ChangeSource {
        slot: "sluice_cdc".into(),
        commit_lsn: 900,
        commit_time: Some(timestamp::to_proto(sample().occurred_at())),
        ..ChangeSource::default()
    });
    change_event(read.clone()).unwrap();
    // The envelope's event time is the commit time.
    let later = sample().occurred_at() + chrono::Duration::seconds(1);
    let err = Event::new(Uuid::from_u128(8), later, later, Payload::RowChange(read)).unwrap_err();
    assert!(err.to_string().contains("commit time"), "{err}");
}

#[test]
fn canonical_json_rejects_unknown_keys_and_types() {
    let json = sample().to_canonical_json();
    let extra = json.replacen("{", "{\"extra\":1,", 1);
    assert!(
        Event::from_canonical_json(&extra)
            .unwrap_err()
            .to_string()
            .contains("unknown field `extra`")
    );
    let payload_extra = json.replace("\"channel\"", "\"coupon\":\"X\",\"channel\"");
    assert!(
        Event::from_canonical_json(&payload_extra)
            .unwrap_err()
            .to_string()
            .contains("coupon")
    );
    let bad_time = json.replacen("2026-03-01T10:00:00.250000Z", "yesterday", 1);
    assert!(
        Event::from_canonical_json(&bad_time)
            .unwrap_err()
            .to_string()
            .contains("occurred_at")
    );
}

#[test]
fn kinds_parse_and_print() {
    for s in Source::ALL {
        assert_eq!(s.as_str().parse::<Source>().unwrap(), s);
    }
    for t in EventType::ALL {
        assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
    }
    let _: Envelope = sample().into();
}

mod wire_packing {
    use events::wire::{self, BatchBuilder, Packing};
    use proptest::prelude::*;

    proptest! {
        /// Packing envelope bytes as received gives a batch that decodes to the same events.
        #[test]
        fn packed_batches_decode_to_the_same_events(events in proptest::collection::vec(super::event(), 1..20)) {
            let mut builder = BatchBuilder::default();
            let mut expected_len = 0;
            for event in &events {
                let bytes = event.encode();
                expected_len += BatchBuilder::framed_len(bytes.len());
                builder.push(&bytes);
            }
            prop_assert_eq!(builder.len(), events.len());
            let body = builder.finish();
            prop_assert_eq!(body.len(), expected_len);
            let text = wire::to_text(&body);
            prop_assert_eq!(text.len(), wire::text_len(body.len()));
            let decoded = wire::decode_text(&text, Packing::Batch).unwrap();
            prop_assert_eq!(decoded, events);
        }
    }

    #[test]
    fn a_body_that_is_not_base64_is_a_clear_error() {
        let err = wire::decode_text("not base64 !!", Packing::Envelope).unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }

    #[test]
    fn packing_names_round_trip() {
        for p in [Packing::Envelope, Packing::Batch] {
            assert_eq!(Packing::parse(p.as_str()), Some(p));
        }
        assert_eq!(Packing::parse("zip"), None);
    }
}
