//! Splitting one stream across publishers by key: every emission of a key (its revisions, its
//! redeliveries) goes through the same publisher, so a key's bodies keep their order.

use std::num::NonZeroU32;

use events::Payload;
use synth::Body;

/// Publisher `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: NonZeroU32,
}

#[derive(Debug, thiserror::Error)]
#[error("shard {index} of {count}: shards are numbered 0 to {last}", last = count.saturating_sub(1))]
pub struct ShardError {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole stream, one publisher.
    pub const WHOLE: Shard = Shard {
        index: 0,
        count: NonZeroU32::MIN,
    };

    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        match NonZeroU32::new(count) {
            Some(n) if index < count => Ok(Self { index, count: n }),
            _ => Err(ShardError { index, count }),
        }
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count.get()
    }

    /// Whether this publisher sends `body`.
    pub fn owns(self, body: &Body) -> bool {
        self.count.get() == 1 || part_of(body, self.count) == self.index
    }
}

/// Which of `count` parts `body` belongs to.
pub fn part_of(body: &Body, count: NonZeroU32) -> u32 {
    let hash = match body {
        Body::Event(e) | Body::Duplicate(e) => fnv1a(key(e.payload(), e.event_id()).as_bytes()),
        Body::Poison(p) => fnv1a(&p.bytes),
    };
    (hash % u64::from(count.get())) as u32
}

/// The business key a body's revisions share.
fn key<'a>(payload: &'a Payload, event_id: &'a str) -> &'a str {
    match payload {
        Payload::CardCatalogCreated(c) => &c.card_id,
        Payload::OrderCreated(o) => &o.order_id,
        Payload::OrderAmended(o) => &o.order_id,
        Payload::OrderCancelled(o) => &o.order_id,
        Payload::ManufacturingBatch(b) => &b.batch_id,
        // The generator emits no row changes (the cdc captures them); each is its own key.
        Payload::RowChange(_) => event_id,
    }
}

/// FNV-1a: stable across processes and builds, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn dirty() -> synth::Scenario {
        synth::Scenario::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/dirty.toml"
        ))
        .unwrap()
    }

    /// Every emission is sent by exactly one of the shards, every key by one shard only, and
    /// the shards share the load.
    #[test]
    fn the_shards_partition_the_stream_by_key() {
        let scenario = dirty();
        let all: Vec<_> = synth::Generator::new(&scenario, None).stream().collect();
        for count in [2u32, 3, 4] {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            let mut per_shard = vec![0usize; count as usize];
            let mut shard_of_key: HashMap<String, u32> = HashMap::new();
            for emission in &all {
                let owners: Vec<&Shard> =
                    shards.iter().filter(|s| s.owns(&emission.body)).collect();
                assert_eq!(owners.len(), 1, "{:?} owned by {owners:?}", emission.body);
                per_shard[owners[0].index() as usize] += 1;
                if let Some(e) = emission.body.event() {
                    let key = key(e.payload(), e.event_id()).to_owned();
                    let first = *shard_of_key.entry(key.clone()).or_insert(owners[0].index());
                    assert_eq!(first, owners[0].index(), "key {key} on two shards");
                }
            }
            let fair = all.len() / count as usize;
            for n in per_shard {
                assert!(n > fair / 2, "{count} shards: {n} of {} on one", all.len());
            }
        }
        assert!(Shard::WHOLE.owns(&all[0].body));
    }

    #[test]
    fn a_shard_past_the_count_is_refused() {
        assert!(Shard::new(3, 4).is_ok());
        let e = Shard::new(4, 4).unwrap_err();
        assert_eq!(e.to_string(), "shard 4 of 4: shards are numbered 0 to 3");
        assert!(Shard::new(0, 0).is_err());
    }
}
