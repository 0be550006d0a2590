//! The generator: a scenario and a seed in, the same events out, every time.
//!
//! First the history (events dated within `history.span` before the stream start, for the
//! backfill), then the stream: each source's events at the times its rate profile dictates,
//! merged in time order, with the scenario's faults applied: late events, identical duplicates
//! a little later in the stream, and poison bodies.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use events::{Event, EventType, Payload, Source};

use crate::rate::RateProfile;
use crate::scenario::Scenario;
use crate::world::{RevisionRates, World};

/// How many later stream slots a duplicate may trail its original by.
const MAX_DUPLICATE_DELAY: u64 = 64;
/// How many later slots of its source a held-back revision may wait for.
const MAX_HELD_BACK_SLOTS: u64 = 4;

/// One body to publish, at `offset` after the stream start.
#[derive(Clone, Debug, PartialEq)]
pub struct Emission {
    pub offset: Duration,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// An event, emitted for the first time.
    Event(Event),
    /// An earlier event emitted again, identical: the at-least-once redelivery of production.
    Duplicate(Event),
    /// A body that is not a valid event; it must end in a dead-letter queue.
    Poison(Poison),
}

impl Body {
    pub fn event(&self) -> Option<&Event> {
        match self {
            Body::Event(e) | Body::Duplicate(e) => Some(e),
            Body::Poison(_) => None,
        }
    }

    /// The protobuf body as published.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Body::Event(e) | Body::Duplicate(e) => e.encode(),
            Body::Poison(p) => p.bytes.clone(),
        }
    }

    pub fn routing_key(&self) -> String {
        match self {
            Body::Event(e) | Body::Duplicate(e) => e.routing_key(),
            Body::Poison(p) => p.routing_key(),
        }
    }
}

/// Bytes that do not decode as an event, sent the way a misbehaving producer of `source` would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poison {
    pub source: Source,
    pub bytes: Vec<u8>,
}

impl Poison {
    pub fn routing_key(&self) -> String {
        let ty = EventType::ALL
            .into_iter()
            .find(|t| t.source() == self.source)
            .expect("every source has a type");
        format!("{}.{}", self.source, ty)
    }
}

/// What the generator has produced so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub history: u64,
    /// Original stream events per source: cards, orders, manufacturing.
    pub stream: [u64; 3],
    pub duplicates: u64,
    pub late: u64,
    pub poison: u64,
    /// Events (history and stream) that revise a key announced earlier: a card re-announced,
    /// an order amended or cancelled, a batch corrected.
    pub revisions: u64,
    /// Revisions emitted after an event of the same key with a later event time: they arrive
    /// superseded, so "latest wins" must keep the earlier arrival.
    pub superseded: u64,
}

impl Stats {
    pub fn stream_events(&self) -> u64 {
        self.stream.iter().sum()
    }
}

/// Per-source event times from rate profiles, merged in time order.
struct Schedule {
    profiles: [RateProfile; 3],
    next_index: [u64; 3],
    next_time: [f64; 3],
}

impl Schedule {
    fn new(profiles: [RateProfile; 3]) -> Self {
        let next_time = profiles.map(|p| p.time_of(0.5));
        Self {
            profiles,
            next_index: [0; 3],
            next_time,
        }
    }

    /// The next slot: which source and when (seconds from the schedule's start).
    fn peek(&self) -> (usize, f64) {
        let mut best = 0;
        for i in 1..3 {
            if self.next_time[i] < self.next_time[best] {
                best = i;
            }
        }
        (best, self.next_time[best])
    }

    fn advance(&mut self, source: usize) {
        self.next_index[source] += 1;
        self.next_time[source] =
            self.profiles[source].time_of(self.next_index[source] as f64 + 0.5);
    }
}

fn seconds(t: f64) -> chrono::Duration {
    chrono::Duration::microseconds((t * 1e6).floor() as i64)
}

/// A revision waiting to be emitted after the revision that supersedes it.
struct HeldBack {
    /// The source's slot it is due at.
    due: u64,
    payload: Payload,
    occurred_at: DateTime<Utc>,
    /// The superseding revision's event time: this one must stay before it.
    before: DateTime<Utc>,
}

pub struct Generator {
    scenario: Scenario,
    rng: ChaCha8Rng,
    world: World,
    history_left: u64,
    history: Schedule,
    history_start: DateTime<Utc>,
    stream: Schedule,
    slot: u64,
    /// Duplicates waiting for their slot, with the slot they are due at.
    pending: VecDeque<(u64, Event)>,
    /// Per source, revisions held back to arrive after the one that supersedes them. Each takes
    /// the place of a later slot of its source.
    held_back: [VecDeque<HeldBack>; 3],
    /// Stream slots taken so far, per source.
    source_slots: [u64; 3],
    ready: VecDeque<Emission>,
    last_offset: Duration,
    finished: bool,
    stats: Stats,
}

impl Generator {
    /// A generator for `scenario`, with `seed` overriding the scenario's own if given.
    pub fn new(scenario: &Scenario, seed: Option<u64>) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.unwrap_or(scenario.seed));
        let r = &scenario.revisions;
        let rates = RevisionRates {
            card_updates: r.card_updates.get(),
            order_amendments: r.order_amendments.get(),
            order_cancellations: r.order_cancellations.get(),
            batch_corrections: r.batch_corrections.get(),
            out_of_order: scenario.faults.out_of_order_ratio.get(),
        };
        let world = World::new(&mut rng, scenario.supply.constrained, rates);
        let rates = [
            scenario.rates.cards,
            scenario.rates.orders,
            scenario.rates.manufacturing,
        ];
        // History keeps the stream's mix of sources, spread evenly over its span.
        let span = scenario.history.span.as_secs_f64();
        let scale = if scenario.history.events == 0 {
            1.0
        } else {
            scenario.history.events as f64 / (span * scenario.rates.total())
        };
        Self {
            history_left: scenario.history.events,
            history: Schedule::new(rates.map(|r| RateProfile::constant(r.get() * scale))),
            history_start: scenario.start - seconds(span),
            stream: Schedule::new(rates.map(|r| scenario.profile(r))),
            scenario: scenario.clone(),
            rng,
            world,
            slot: 0,
            pending: VecDeque::new(),
            held_back: Default::default(),
            source_slots: [0; 3],
            ready: VecDeque::new(),
            last_offset: Duration::ZERO,
            finished: false,
            stats: Stats::default(),
        }
    }

    /// The history events, oldest first. Their `produced_at` equals their `occurred_at`.
    pub fn history(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_history())
    }

    /// The stream, in emission order. Any history not yet taken is generated (and dropped)
    /// first, so the stream is the same whether or not the caller read the history.
    pub fn stream(&mut self) -> impl Iterator<Item = Emission> + '_ {
        while self.next_history().is_some() {}
        std::iter::from_fn(move || self.next_emission())
    }

    /// The stream's events at their first emission: no duplicates, no poison bodies.
    pub fn first_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.stream().filter_map(|e| match e.body {
            Body::Event(event) => Some(event),
            Body::Duplicate(_) | Body::Poison(_) => None,
        })
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The event of one slot of `source`'s schedule: a revision held back for this slot, or
    /// what the world makes. A revision may take a later event time than asked (never before
    /// its key's first event). `stream` slots may hold a revision back for a later one.
    fn new_event(
        &mut self,
        source: Source,
        occurred_at: DateTime<Utc>,
        produced_at: DateTime<Utc>,
        stream: bool,
    ) -> Event {
        let id = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        let s = source as usize;
        if stream {
            self.source_slots[s] += 1;
            let slot = self.source_slots[s];
            while self.held_back[s].front().is_some_and(|h| h.due <= slot) {
                let held = self.held_back[s].pop_front().expect("checked");
                // No later than `max_lateness` behind its emission, and still superseded; a
                // revision that cannot be both is not emitted (it would change nothing).
                let max = self.scenario.faults.max_lateness.get().as_micros() as i64;
                let earliest = produced_at - chrono::Duration::microseconds(max);
                let occurred_at = held.occurred_at.max(earliest);
                if occurred_at < held.before {
                    self.stats.revisions += 1;
                    self.stats.superseded += 1;
                    return Event::new(id, occurred_at, produced_at, held.payload)
                        .expect("the generator keeps the contract");
                }
            }
        }
        let made = self
            .world
            .next_payload(&mut self.rng, source, occurred_at, produced_at, stream);
        if let Some(revision) = made.revision {
            self.stats.revisions += 1;
            self.stats.superseded += u64::from(revision.superseded);
        }
        if let Some((payload, at)) = made.held_back {
            let due = self.source_slots[s] + self.rng.random_range(1..=MAX_HELD_BACK_SLOTS);
            let queue = &mut self.held_back[s];
            let at_slot = queue.partition_point(|h| h.due <= due);
            queue.insert(
                at_slot,
                HeldBack {
                    due,
                    payload,
                    occurred_at: at,
                    before: made.occurred_at,
                },
            );
        }
        Event::new(id, made.occurred_at, produced_at, made.payload)
            .expect("the generator keeps the contract")
    }

    fn next_history(&mut self) -> Option<Event> {
        if self.history_left == 0 {
            return None;
        }
        self.history_left -= 1;
        // The schedule picks the source (keeping the stream's mix); times are spaced evenly so
        // exactly `history.events` fit inside the span, whatever the rounding per source.
        let (source, _) = self.history.peek();
        self.history.advance(source);
        let span = self.scenario.history.span.as_secs_f64();
        let t = span * (self.stats.history as f64 + 0.5) / self.scenario.history.events as f64;
        let at = self.history_start + seconds(t);
        self.stats.history += 1;
        Some(self.new_event(Source::GENERATED[source], at, at, false))
    }

    fn next_emission(&mut self) -> Option<Emission> {
        loop {
            if let Some(emission) = self.ready.pop_front() {
                return Some(emission);
            }
            if self.finished {
                return None;
            }
            self.fill_slot();
        }
    }

    fn stream_over(&self, t: f64) -> bool {
        let out_of_time = self.scenario.duration.is_some_and(|d| t >= d.as_secs_f64());
        let out_of_events = self
            .scenario
            .max_events
            .is_some_and(|m| self.stats.stream_events() >= m);
        out_of_time || out_of_events
    }

    /// Generates the next slot of the stream into `ready`.
    fn fill_slot(&mut self) {
        let (source, t) = self.stream.peek();
        if self.stream_over(t) {
            self.finished = true;
            // Duplicates still owed are delivered at the end, never dropped.
            while let Some((_, event)) = self.pending.pop_front() {
                self.push(self.last_offset, Body::Duplicate(event));
            }
            return;
        }
        self.stream.advance(source);
        let offset = Duration::from_secs_f64(t);
        self.last_offset = offset;
        let produced_at = self.scenario.start + seconds(t);
        let faults = self.scenario.faults;
        let late = self.rng.random_bool(faults.out_of_order_ratio.get());
        let occurred_at = if late {
            let max = faults.max_lateness.get().as_micros().max(1) as i64;
            produced_at - chrono::Duration::microseconds(self.rng.random_range(1..=max))
        } else {
            produced_at
        };
        let event = self.new_event(Source::GENERATED[source], occurred_at, produced_at, true);
        self.stats.stream[event.source() as usize] += 1;
        self.stats.late += u64::from(late);
        if self.rng.random_bool(faults.duplicate_ratio.get()) {
            let due = self.slot + self.rng.random_range(1..=MAX_DUPLICATE_DELAY);
            let at = self.pending.partition_point(|(d, _)| *d <= due);
            self.pending.insert(at, (due, event.clone()));
        }
        self.push(offset, Body::Event(event));
        if self.rng.random_bool(faults.poison_ratio.get()) {
            let poison = self.poison();
            self.push(offset, Body::Poison(poison));
        }
        self.slot += 1;
        while self
            .pending
            .front()
            .is_some_and(|(due, _)| *due <= self.slot)
        {
            let (_, event) = self.pending.pop_front().expect("checked");
            self.push(offset, Body::Duplicate(event));
        }
    }

    fn push(&mut self, offset: Duration, body: Body) {
        match &body {
            Body::Duplicate(_) => self.stats.duplicates += 1,
            Body::Poison(_) => self.stats.poison += 1,
            Body::Event(_) => {}
        }
        self.ready.push_back(Emission { offset, body });
    }

    /// Bodies a real misconfigured producer sends: JSON where protobuf was expected, a cut-off
    /// message, or noise. Each is checked to fail decoding, so the test of poison handling is sure.
    fn poison(&mut self) -> Poison {
        let source = Source::GENERATED[self.rng.random_range(0..3)];
        let mut bytes = match self.rng.random_range(0..3) {
            0 => format!(
                r#"{{"order_id":"ord-{}","note":"json sent to a protobuf queue"}}"#,
                self.rng.random::<u32>()
            )
            .into_bytes(),
            1 => {
                let id = Uuid::from_u128(self.rng.random());
                let mut cut = format!("\n\x24{id}\x12\x06orders\x1a\x0dorder_created").into_bytes();
                cut.truncate(self.rng.random_range(3..cut.len()));
                cut
            }
            _ => (0..self.rng.random_range(1..64))
                .map(|_| self.rng.random())
                .collect(),
        };
        if Event::decode(&bytes).is_ok() {
            // 0x0f is field 1 with wire type 7, which does not exist: never decodes.
            bytes.insert(0, 0x0f);
        }
        Poison { source, bytes }
    }
}
