//! Delivery tags complete out of order (batches finish in any order); the broker wants acks.
//! [`AckTracker`] keeps the settled tags above the lowest unsettled one and says when a single
//! multiple-ack can cover a contiguous run.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Forwarded: to be acknowledged.
    Forwarded,
    /// Already rejected to the dead-letter exchange: nothing more to send for it.
    Rejected,
}

#[derive(Debug)]
pub struct AckTracker {
    /// The lowest delivery tag not yet settled (tags start at 1 on a channel).
    floor: u64,
    /// Settled tags at or above `floor`.
    settled: BTreeMap<u64, Settlement>,
    /// Forwarded tags below `floor` not yet covered by an ack.
    unacked: u64,
}

/// Acknowledge every delivery up to `up_to` (`multiple = true`); `count` forwarded deliveries
/// are newly covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub up_to: u64,
    pub count: u64,
}

impl Default for AckTracker {
    fn default() -> Self {
        Self {
            floor: 1,
            settled: BTreeMap::new(),
            unacked: 0,
        }
    }
}

impl AckTracker {
    /// Records a settled tag. Returns the tag to acknowledge with `multiple = true` when the
    /// contiguous run from the floor now ends with forwarded messages.
    pub fn settle(&mut self, tag: u64, how: Settlement) -> Option<Ack> {
        debug_assert!(tag >= self.floor, "tag {tag} settled twice");
        self.settled.insert(tag, how);
        let mut up_to = None;
        while let Some(how) = self.settled.remove(&self.floor) {
            if how == Settlement::Forwarded {
                up_to = Some(self.floor);
                self.unacked += 1;
            }
            self.floor += 1;
        }
        up_to.map(|up_to| Ack {
            up_to,
            count: std::mem::take(&mut self.unacked),
        })
    }

    /// Tags settled but waiting behind an unsettled lower tag.
    pub fn waiting(&self) -> usize {
        self.settled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_completions_ack_each_run() {
        let mut t = AckTracker::default();
        assert_eq!(
            t.settle(1, Settlement::Forwarded),
            Some(Ack { up_to: 1, count: 1 })
        );
        assert_eq!(
            t.settle(2, Settlement::Forwarded),
            Some(Ack { up_to: 2, count: 1 })
        );
    }

    #[test]
    fn a_gap_holds_acks_until_filled() {
        let mut t = AckTracker::default();
        assert_eq!(t.settle(2, Settlement::Forwarded), None);
        assert_eq!(t.settle(3, Settlement::Forwarded), None);
        assert_eq!(t.waiting(), 2);
        assert_eq!(
            t.settle(1, Settlement::Forwarded),
            Some(Ack { up_to: 3, count: 3 })
        );
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn a_run_ending_in_a_reject_acks_up_to_the_last_forwarded() {
        let mut t = AckTracker::default();
        assert_eq!(t.settle(2, Settlement::Rejected), None);
        assert_eq!(
            t.settle(1, Settlement::Forwarded),
            Some(Ack { up_to: 1, count: 1 })
        );
        assert_eq!(t.settle(3, Settlement::Rejected), None);
        assert_eq!(
            t.settle(4, Settlement::Forwarded),
            Some(Ack { up_to: 4, count: 1 })
        );
    }

    proptest! {
        /// Whatever the completion order, every forwarded tag is covered by exactly one
        /// multiple-ack range, no range covers an unsettled tag, and no rejected tag is the
        /// target of an ack.
        #[test]
        fn acks_cover_every_forwarded_tag_once(
            kinds in proptest::collection::vec(any::<bool>(), 1..200),
            order_seed in any::<u64>(),
        ) {
            let n = kinds.len() as u64;
            let mut order: Vec<u64> = (1..=n).collect();
            // Deterministic shuffle from the seed.
            let mut s = order_seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut t = AckTracker::default();
            let mut settled = vec![false; n as usize + 1];
            let mut acked_up_to = 0u64;
            let mut acked = 0u64;
            for tag in order {
                let how = if kinds[tag as usize - 1] { Settlement::Forwarded } else { Settlement::Rejected };
                settled[tag as usize] = true;
                if let Some(Ack { up_to, count }) = t.settle(tag, how) {
                    acked += count;
                    prop_assert!(up_to > acked_up_to);
                    prop_assert!((1..=up_to).all(|k| settled[k as usize]), "ack covers an unsettled tag");
                    prop_assert!(kinds[up_to as usize - 1], "ack targets a rejected tag");
                    acked_up_to = up_to;
                }
            }
            let last_forwarded = (1..=n).rev().find(|k| kinds[*k as usize - 1]).unwrap_or(0);
            prop_assert_eq!(acked_up_to, last_forwarded);
            prop_assert_eq!(acked, kinds.iter().filter(|k| **k).count() as u64);
            prop_assert_eq!(t.waiting(), 0);
        }
    }
}
