//! Packs deliveries into SendMessageBatch requests within SQS's limits: at most 10 entries, at
//! most `pack` events per entry, and a request (bodies plus attributes) under the size limit.

use events::wire::{self, BatchBuilder, Packing};

/// SQS's limits for one SendMessageBatch request, plus how many events an entry carries.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub pack: usize,
    pub max_entries: usize,
    pub max_request_bytes: usize,
}

impl Limits {
    pub fn sqs(pack: usize) -> Self {
        Self {
            pack: pack.max(1),
            max_entries: 10,
            max_request_bytes: 256 * 1024,
        }
    }

    fn packing(&self) -> Packing {
        if self.pack == 1 {
            Packing::Envelope
        } else {
            Packing::Batch
        }
    }
}

/// What an entry's message attribute costs, counted generously against the request size.
pub const ENTRY_OVERHEAD: usize = 64;

/// One SQS message: the text body and the delivery tags of the events it carries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub packing: Packing,
    pub body: String,
    pub tags: Vec<u64>,
    /// When each event was published, in microseconds since the epoch (0 when the publisher
    /// did not say), parallel to `tags`: the relay's hop latency is measured from here.
    pub published_us: Vec<u64>,
}

/// One SendMessageBatch request.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
}

impl Batch {
    pub fn events(&self) -> usize {
        self.entries.iter().map(|e| e.tags.len()).sum()
    }

    pub fn request_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.body.len() + ENTRY_OVERHEAD)
            .sum()
    }
}

/// A body that can never fit in an SQS message.
#[derive(Debug, thiserror::Error)]
#[error("a {len}-byte body does not fit in one SQS message (limit {limit} bytes of base64 text)")]
pub struct Oversized {
    pub len: usize,
    pub limit: usize,
}

#[derive(Default)]
struct Draft {
    single: Vec<u8>,
    batch: BatchBuilder,
    raw_len: usize,
    tags: Vec<u64>,
    published_us: Vec<u64>,
}

pub struct Assembler {
    limits: Limits,
    entries: Vec<Entry>,
    committed_bytes: usize,
    draft: Option<Draft>,
}

impl Assembler {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: Vec::new(),
            committed_bytes: 0,
            draft: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.draft.is_none()
    }

    /// Adds one delivery (published at `published_us`, 0 if unknown); returns the requests
    /// that are now complete.
    pub fn push(
        &mut self,
        tag: u64,
        published_us: u64,
        body: &[u8],
    ) -> Result<Vec<Batch>, Oversized> {
        let framed = match self.limits.packing() {
            Packing::Envelope => body.len(),
            Packing::Batch => BatchBuilder::framed_len(body.len()),
        };
        let alone = wire::text_len(framed) + ENTRY_OVERHEAD;
        if alone > self.limits.max_request_bytes {
            return Err(Oversized {
                len: body.len(),
                limit: self.limits.max_request_bytes - ENTRY_OVERHEAD,
            });
        }
        let mut ready = Vec::new();
        if let Some(draft) = &self.draft {
            let grown = wire::text_len(draft.raw_len + framed) + ENTRY_OVERHEAD;
            if self.committed_bytes + grown > self.limits.max_request_bytes {
                self.close_draft();
            }
        }
        if self.draft.is_none() && self.committed_bytes + alone > self.limits.max_request_bytes {
            ready.extend(self.take());
        }
        let draft = self.draft.get_or_insert_with(Draft::default);
        match self.limits.packing() {
            Packing::Envelope => draft.single = body.to_vec(),
            Packing::Batch => draft.batch.push(body),
        }
        draft.raw_len += framed;
        draft.tags.push(tag);
        draft.published_us.push(published_us);
        if draft.tags.len() == self.limits.pack {
            self.close_draft();
        }
        if self.entries.len() == self.limits.max_entries {
            ready.extend(self.take());
        }
        Ok(ready)
    }

    /// Everything buffered as one request (when the linger time is up or on shutdown).
    pub fn flush(&mut self) -> Option<Batch> {
        self.close_draft();
        self.take()
    }

    fn close_draft(&mut self) {
        let Some(draft) = self.draft.take() else {
            return;
        };
        let packing = self.limits.packing();
        let body = match packing {
            Packing::Envelope => wire::to_text(&draft.single),
            Packing::Batch => wire::to_text(&draft.batch.finish()),
        };
        self.committed_bytes += body.len() + ENTRY_OVERHEAD;
        self.entries.push(Entry {
            id: self.entries.len().to_string(),
            packing,
            body,
            tags: draft.tags,
            published_us: draft.published_us,
        });
    }

    fn take(&mut self) -> Option<Batch> {
        if self.entries.is_empty() {
            return None;
        }
        self.committed_bytes = 0;
        Some(Batch {
            entries: std::mem::take(&mut self.entries),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(limits: Limits, sizes: &[usize]) -> Vec<Batch> {
        let mut a = Assembler::new(limits);
        let mut out = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let body = vec![(i % 251) as u8; *size];
            out.extend(a.push(i as u64 + 1, 0, &body).unwrap());
        }
        out.extend(a.flush());
        assert!(a.is_empty());
        out
    }

    #[test]
    fn full_requests_are_emitted_without_waiting() {
        let mut a = Assembler::new(Limits::sqs(1));
        for tag in 1..10 {
            assert!(a.push(tag, 0, b"x").unwrap().is_empty());
        }
        let ready = a.push(10, 0, b"x").unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].entries.len(), 10);
        assert!(a.is_empty());
    }

    #[test]
    fn a_body_too_big_for_sqs_is_refused() {
        let mut a = Assembler::new(Limits::sqs(1));
        let err = a.push(1, 0, &vec![0; 200 * 1024]).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert!(a.is_empty());
    }

    proptest! {
        #[test]
        fn every_delivery_lands_in_exactly_one_entry_within_limits(
            pack in 1usize..120,
            max_entries in 1usize..11,
            sizes in proptest::collection::vec(prop_oneof![1usize..400, 1usize..60_000], 1..400),
        ) {
            let limits = Limits { pack, max_entries, max_request_bytes: 256 * 1024 };
            let batches = run(limits, &sizes);
            let mut next = 1u64;
            for batch in &batches {
                prop_assert!(!batch.entries.is_empty());
                prop_assert!(batch.entries.len() <= max_entries);
                prop_assert!(batch.request_bytes() <= limits.max_request_bytes);
                for entry in &batch.entries {
                    prop_assert!(!entry.tags.is_empty() && entry.tags.len() <= pack);
                    for tag in &entry.tags {
                        prop_assert_eq!(*tag, next, "tags in order, each exactly once");
                        next += 1;
                    }
                }
            }
            prop_assert_eq!(next - 1, sizes.len() as u64);
        }
    }
}
