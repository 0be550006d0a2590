use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::{Event, Payload, Source};
use proptest::prelude::*;
use synth::output::{self, Format, Part};
use synth::rate::Factor;
use synth::scenario::{Rate, Ratio, Span};
use synth::{Body, Emission, Generator, Scenario, Shape};

fn smoke() -> Scenario {
    Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/smoke.toml"
    ))
    .unwrap()
}

fn secs(s: f64) -> Span {
    Span::new(Duration::from_secs_f64(s))
}

prop_compose! {
    fn shape()(kind in 0..3u8, a in 0.2f64..3.0, b in 0.2f64..3.0, every in 2.0f64..10.0, part in 0.1f64..0.9) -> Shape {
        match kind {
            0 => Shape::Constant,
            1 => Shape::Ramp { from: Factor::new(a).unwrap(), to: Factor::new(b).unwrap(), over: None },
            _ => Shape::Burst { every: secs(every), length: secs(every * part), factor: Factor::new(a + 1.0).unwrap() },
        }
    }
}

prop_compose! {
    /// Small scenarios with every knob in play; at least ~200 events expected.
    fn scenario()(
        seed in any::<u64>(),
        cards in 0.5f64..10.0,
        orders in 20.0f64..300.0,
        manufacturing in 1.0f64..40.0,
        duration in 2.0f64..12.0,
        shape in shape(),
        duplicate in 0.0f64..0.3,
        late in 0.0f64..0.5,
        max_lateness in 0.001f64..600.0,
        poison in 0.0f64..0.1,
        history in 0u64..300,
        constrained in any::<bool>(),
        revisions in (0.0f64..0.4, 0.0f64..0.3, 0.0f64..0.2, 0.0f64..0.4),
    ) -> Scenario {
        let mut s = smoke();
        s.seed = seed;
        s.duration = Some(secs(duration.max(300.0 / orders)));
        s.rates.cards = Rate::new(cards).unwrap();
        s.rates.orders = Rate::new(orders).unwrap();
        s.rates.manufacturing = Rate::new(manufacturing).unwrap();
        s.shape = shape;
        s.faults.duplicate_ratio = Ratio::new(duplicate).unwrap();
        s.faults.out_of_order_ratio = Ratio::new(late).unwrap();
        s.faults.max_lateness = secs(max_lateness);
        s.faults.poison_ratio = Ratio::new(poison).unwrap();
        s.history.events = history;
        s.supply.constrained = constrained;
        s.revisions.card_updates = Ratio::new(revisions.0).unwrap();
        s.revisions.order_amendments = Ratio::new(revisions.1).unwrap();
        s.revisions.order_cancellations = Ratio::new(revisions.2).unwrap();
        s.revisions.batch_corrections = Ratio::new(revisions.3).unwrap();
        s
    }
}

type Recency = (DateTime<Utc>, DateTime<Utc>, String);

fn recency(e: &Event) -> Recency {
    (e.occurred_at(), e.produced_at(), e.event_id().to_owned())
}

/// The business state "latest wins" gives after the events seen so far, with per-card totals
/// of good units produced and units ordered by open orders, kept up as keys change.
#[derive(Default)]
struct Latest {
    batches: HashMap<String, (Recency, String, i64)>,
    lines: HashMap<String, (Recency, Vec<(String, i64)>)>,
    cancelled: HashSet<String>,
    good: HashMap<String, i64>,
    ordered: HashMap<String, i64>,
}

impl Latest {
    fn count_order(&mut self, order_id: &str, sign: i64) {
        if self.cancelled.contains(order_id) {
            return;
        }
        if let Some((_, lines)) = self.lines.get(order_id) {
            for (card, q) in lines.clone() {
                *self.ordered.entry(card).or_default() += sign * q;
            }
        }
    }

    fn apply(&mut self, e: &Event) {
        let at = recency(e);
        match e.payload() {
            Payload::ManufacturingBatch(b) => {
                let good = i64::from(b.quantity_produced - b.quantity_defective);
                let newer = self
                    .batches
                    .get(&b.batch_id)
                    .is_none_or(|(r, _, _)| at > *r);
                if newer {
                    if let Some((_, card, old)) = self.batches.get(&b.batch_id) {
                        *self.good.entry(card.clone()).or_default() -= old;
                    }
                    *self.good.entry(b.card_id.clone()).or_default() += good;
                    self.batches
                        .insert(b.batch_id.clone(), (at, b.card_id.clone(), good));
                }
            }
            Payload::OrderCreated(o) => self.set_lines(&o.order_id, at, &o.lines),
            Payload::OrderAmended(a) => self.set_lines(&a.order_id, at, &a.lines),
            Payload::OrderCancelled(c) => {
                self.count_order(&c.order_id, -1);
                self.cancelled.insert(c.order_id.clone());
            }
            Payload::CardCatalogCreated(_) | Payload::RowChange(_) => {}
        }
    }

    fn set_lines(&mut self, order_id: &str, at: Recency, lines: &[events::OrderLine]) {
        if self.lines.get(order_id).is_some_and(|(r, _)| at < *r) {
            return;
        }
        self.count_order(order_id, -1);
        let lines = lines
            .iter()
            .map(|l| (l.card_id.clone(), i64::from(l.quantity)))
            .collect();
        self.lines.insert(order_id.to_owned(), (at, lines));
        self.count_order(order_id, 1);
    }
}

fn run(s: &Scenario) -> (Vec<Event>, Vec<Emission>) {
    let mut g = Generator::new(s, None);
    let history: Vec<Event> = g.history().collect();
    let stream: Vec<Emission> = g.stream().collect();
    (history, stream)
}

fn card_refs(p: &Payload) -> Vec<&str> {
    match p {
        Payload::CardCatalogCreated(_) | Payload::OrderCancelled(_) | Payload::RowChange(_) => {
            vec![]
        }
        Payload::OrderCreated(o) => o.lines.iter().map(|l| l.card_id.as_str()).collect(),
        Payload::OrderAmended(a) => a.lines.iter().map(|l| l.card_id.as_str()).collect(),
        Payload::ManufacturingBatch(b) => vec![b.card_id.as_str()],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn generated_streams_keep_every_invariant(s in scenario()) {
        let (history, stream) = run(&s);
        let start: DateTime<Utc> = s.start;
        let history_start = start - chrono::Duration::from_std(s.history.span.get()).unwrap();

        // History: the requested count, dated within the span before the start, no faults.
        prop_assert_eq!(history.len() as u64, s.history.events);
        for e in &history {
            prop_assert!(e.occurred_at() >= history_start && e.occurred_at() < start);
            prop_assert_eq!(e.occurred_at(), e.produced_at());
        }

        let mut announced = HashSet::new();
        let mut first_seen: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut originals: HashMap<String, Event> = HashMap::new();
        let mut latest = Latest::default();
        let mut last_offset = Duration::ZERO;
        let mut late = 0u64;
        let mut poison = 0u64;
        let stream_events: Vec<&Event> = stream.iter().filter_map(|e| match &e.body { Body::Event(ev) => Some(ev), _ => None }).collect();
        let all_originals = history.iter().chain(stream_events.iter().copied());

        // Referential integrity in emission order: revisions only of keys announced before, and
        // never before a key's first event. Supply holds in the latest-wins state after every
        // event: open orders never take more units than the latest batches yield.
        for e in all_originals {
            for card in card_refs(e.payload()) {
                prop_assert!(announced.contains(card), "{} references unannounced {card}", e.event_id());
            }
            let (key, creates) = match e.payload() {
                Payload::CardCatalogCreated(c) => { announced.insert(c.card_id.clone()); (format!("card {}", c.card_id), true) }
                Payload::ManufacturingBatch(b) => {
                    prop_assert!(b.quantity_produced <= b.quantity_planned);
                    prop_assert!(b.quantity_defective <= b.quantity_produced);
                    (format!("batch {}", b.batch_id), true)
                }
                Payload::OrderCreated(o) => (format!("order {}", o.order_id), true),
                Payload::OrderAmended(a) => (format!("order {}", a.order_id), false),
                Payload::OrderCancelled(c) => (format!("order {}", c.order_id), false),
                Payload::RowChange(_) => unreachable!("the generator makes no row changes"),
            };
            match first_seen.get(&key) {
                Some(first) => prop_assert!(e.occurred_at() > *first, "{key} revised before its first event"),
                None => {
                    prop_assert!(creates, "{key} is revised but was never created");
                    first_seen.insert(key, e.occurred_at());
                }
            }
            latest.apply(e);
            if s.supply.constrained {
                for card in card_refs(e.payload()) {
                    let ordered = latest.ordered.get(card).copied().unwrap_or(0);
                    let made = latest.good.get(card).copied().unwrap_or(0);
                    prop_assert!(ordered <= made, "card {card}: open orders take {ordered} > {made} produced");
                }
            }
        }

        for emission in &stream {
            prop_assert!(emission.offset >= last_offset, "emissions come in time order");
            last_offset = emission.offset;
            match &emission.body {
                Body::Event(e) => {
                    let lateness = e.produced_at() - e.occurred_at();
                    prop_assert!(lateness >= chrono::Duration::zero());
                    prop_assert!(lateness.to_std().unwrap() <= s.faults.max_lateness.get());
                    late += u64::from(!lateness.is_zero());
                    prop_assert!(e.produced_at() >= start);
                    prop_assert!(originals.insert(e.event_id().to_owned(), e.clone()).is_none(), "event ids are unique");
                }
                Body::Duplicate(e) => {
                    let original = originals.get(e.event_id());
                    prop_assert_eq!(Some(e), original, "a duplicate is identical to an earlier original");
                }
                Body::Poison(p) => {
                    poison += 1;
                    prop_assert!(Event::decode(&p.bytes).is_err(), "poison must not decode");
                }
            }
        }
        if s.faults.out_of_order_ratio.get() == 0.0 { prop_assert_eq!(late, 0); }
        if s.faults.poison_ratio.get() == 0.0 { prop_assert_eq!(poison, 0); }

        // Achieved rate on the virtual clock (event time) within 1% of the profile's target.
        let d = s.duration.unwrap().as_secs_f64();
        let target = s.total_profile().events_by(d);
        let achieved = stream_events.len() as f64;
        prop_assert!((achieved - target).abs() / target < 0.01, "achieved {achieved} vs target {target}");
    }

    #[test]
    fn fault_ratios_are_honoured(seed in any::<u64>()) {
        let mut s = smoke();
        s.seed = seed;
        s.duration = Some(secs(60.0));
        s.faults.duplicate_ratio = Ratio::new(0.1).unwrap();
        s.faults.out_of_order_ratio = Ratio::new(0.2).unwrap();
        s.faults.max_lateness = secs(120.0);
        s.faults.poison_ratio = Ratio::new(0.05).unwrap();
        let mut g = Generator::new(&s, None);
        let n = g.stream().count();
        let stats = g.stats().clone();
        let events = stats.stream_events() as f64;
        prop_assert_eq!(n as u64, stats.stream_events() + stats.duplicates + stats.poison);
        for (count, ratio) in [(stats.duplicates, 0.1), (stats.late, 0.2), (stats.poison, 0.05)] {
            let share = count as f64 / events;
            prop_assert!((share - ratio).abs() < 0.02, "share {share} vs {ratio}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Revisions come at their shares, and with late events some arrive after the revision
    /// that supersedes them: the data exercises both halves of "latest by event time wins".
    #[test]
    fn revisions_come_at_their_shares_and_some_arrive_superseded(seed in any::<u64>()) {
        let mut s = smoke();
        s.seed = seed;
        s.duration = Some(secs(30.0));
        s.faults.out_of_order_ratio = Ratio::new(0.2).unwrap();
        s.faults.max_lateness = secs(60.0);
        s.revisions.card_updates = Ratio::new(0.3).unwrap();
        s.revisions.order_amendments = Ratio::new(0.1).unwrap();
        s.revisions.order_cancellations = Ratio::new(0.05).unwrap();
        s.revisions.batch_corrections = Ratio::new(0.2).unwrap();
        let mut g = Generator::new(&s, None);
        let events: Vec<Event> = g.first_events().collect();
        let stats = g.stats().clone();
        let mut kinds: HashMap<&str, u64> = HashMap::new();
        for e in &events {
            *kinds.entry(e.event_type().as_str()).or_default() += 1;
        }
        let orders = (kinds["order_created"] + kinds["order_amended"] + kinds["order_cancelled"]) as f64;
        for (kind, share) in [("order_amended", 0.1), ("order_cancelled", 0.05)] {
            let got = kinds.get(kind).copied().unwrap_or(0) as f64 / orders;
            prop_assert!((got - share).abs() < 0.03, "{kind}: {got} of order slots, asked {share}");
        }
        prop_assert!(stats.revisions > 0);
        prop_assert!(stats.superseded > 0, "no revision arrived superseded: {stats:?}");
        prop_assert!(stats.superseded < stats.revisions);
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let bytes = |s: &Scenario, seed: Option<u64>, format: Format| {
        let mut out = Vec::new();
        output::write(&mut Generator::new(s, seed), format, Part::All, &mut out).unwrap();
        out
    };
    let mut s = smoke();
    s.faults.duplicate_ratio = Ratio::new(0.05).unwrap();
    s.faults.poison_ratio = Ratio::new(0.05).unwrap();
    for format in [Format::Ndjson, Format::Proto] {
        let a = bytes(&s, None, format);
        assert_eq!(a, bytes(&s, None, format));
        assert_ne!(a, bytes(&s, Some(7), format));
    }
}

#[test]
fn max_events_ends_the_stream() {
    let mut s = smoke();
    s.duration = None;
    s.max_events = Some(777);
    let mut g = Generator::new(&s, None);
    let n = g
        .stream()
        .filter(|e| matches!(e.body, Body::Event(_)))
        .count();
    assert_eq!(n, 777);
}

#[test]
fn smoke_has_every_source_in_history_and_stream_across_two_days() {
    let (history, stream) = run(&smoke());
    let sources = |events: Vec<&Event>| events.iter().map(|e| e.source()).collect::<HashSet<_>>();
    assert_eq!(
        sources(history.iter().collect()),
        HashSet::from(Source::GENERATED)
    );
    let stream: Vec<&Event> = stream.iter().filter_map(|e| e.body.event()).collect();
    assert_eq!(sources(stream.clone()), HashSet::from(Source::GENERATED));
    let days: HashSet<_> = stream
        .iter()
        .map(|e| e.occurred_at().date_naive())
        .collect();
    assert_eq!(days.len(), 2, "smoke starts just before midnight");
    assert!(
        (2_000..5_000).contains(&stream.len()),
        "a few thousand events: {}",
        stream.len()
    );
}

#[test]
fn reading_the_history_or_not_gives_the_same_stream() {
    let s = smoke();
    let (_, with_history) = run(&s);
    let without: Vec<Emission> = Generator::new(&s, None).stream().collect();
    assert_eq!(with_history, without);
}

#[test]
fn snapshot_first_events_of_smoke() {
    let mut g = Generator::new(&smoke(), Some(42));
    let history: Vec<String> = g
        .history()
        .take(20)
        .map(|e| e.to_canonical_json())
        .collect();
    insta::assert_snapshot!("smoke_seed42_history_first20", history.join("\n"));
    let stream: Vec<String> = g
        .stream()
        .take(20)
        .filter_map(|e| e.body.event().map(Event::to_canonical_json))
        .collect();
    insta::assert_snapshot!("smoke_seed42_stream_first20", stream.join("\n"));
}

/// The first revision of each kind in smoke's stream, beside the event it revises: what a
/// re-announced card, an amended or cancelled order and a corrected batch look like.
#[test]
fn snapshot_first_revisions_of_smoke() {
    let mut g = Generator::new(&smoke(), Some(42));
    let mut events: Vec<Event> = g.history().collect();
    events.extend(g.first_events());
    let key = |e: &Event| match e.payload() {
        Payload::CardCatalogCreated(c) => c.card_id.clone(),
        Payload::OrderCreated(o) => o.order_id.clone(),
        Payload::OrderAmended(o) => o.order_id.clone(),
        Payload::OrderCancelled(o) => o.order_id.clone(),
        Payload::ManufacturingBatch(b) => b.batch_id.clone(),
        Payload::RowChange(_) => unreachable!("the generator makes no row changes"),
    };
    let mut seen: HashMap<String, &Event> = HashMap::new();
    let mut shown = Vec::new();
    let mut kinds = HashSet::new();
    for e in &events {
        if let Some(earlier) = seen.get(&key(e)) {
            let kind = format!("{}<-{}", e.event_type(), earlier.event_type());
            if kinds.insert(kind.clone()) {
                shown.push(format!(
                    "# {kind}\n{}\n{}",
                    earlier.to_canonical_json(),
                    e.to_canonical_json()
                ));
            }
        }
        seen.insert(key(e), e);
    }
    assert!(
        shown.len() >= 4,
        "every kind of revision appears: {kinds:?}"
    );
    insta::assert_snapshot!("smoke_seed42_first_revisions", shown.join("\n"));
}
