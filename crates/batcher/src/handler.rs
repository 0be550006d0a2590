//! The Lambda handler: one SQS batch in, batch item failures out.
//!
//! Events are grouped by partition; each group becomes one object, written and then announced.
//! A record succeeds only if every group holding one of its events was written and announced;
//! the poller deletes exactly the records that succeeded, so a failure anywhere leaves the
//! record on the queue to be retried (a duplicate object is possible, a lost event is not).

use std::collections::BTreeSet;
use std::sync::Arc;

use events::Event;
use events::wire::{self, Packing};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use rawfiles::partition::{PartitionKey, partition};
use rawfiles::{FileFormat, format as object};

use crate::metrics::Metrics;
use crate::sink::Sink;
use crate::{BatcherError, Fault};

/// One SQS message as the handler sees it (the fields of a Lambda SQS record it needs).
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub message_id: String,
    pub body: String,
    /// The `sluice-packing` message attribute; absent means one envelope.
    pub packing: Option<String>,
    /// SQS's `SentTimestamp` (epoch milliseconds): when the queue accepted the message. The
    /// batcher's hop latency (queue to object written) is measured from here.
    pub sent_at_ms: Option<u64>,
}

/// Lambda's partial batch response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

#[derive(Clone, Debug)]
pub struct HandlerConfig {
    pub format: FileFormat,
    pub key_prefix: String,
    pub fault: Fault,
}

pub struct Handler<S> {
    sink: S,
    config: HandlerConfig,
    metrics: Arc<Metrics>,
}

/// Groups written at once per invocation.
const GROUPS_IN_FLIGHT: usize = 8;

impl<S: Sink> Handler<S> {
    pub fn new(sink: S, config: HandlerConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            sink,
            config,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Handles one batch. `Err` only for an injected crash: nothing may be deleted then.
    pub async fn handle(&self, records: &[Record]) -> Result<BatchResponse, BatcherError> {
        Metrics::add(&self.metrics.invocations, 1);
        Metrics::add(&self.metrics.records_in, records.len() as u64);
        let mut failed: BTreeSet<usize> = BTreeSet::new();
        let mut decoded = Vec::new();
        for (index, record) in records.iter().enumerate() {
            if self.config.fault == Fault::FailPart && index % 2 == 1 {
                failed.insert(index);
                continue;
            }
            match decode_record(record) {
                Ok(events) => decoded.extend(events.into_iter().map(|e| (index, e))),
                Err(reason) => {
                    tracing::warn!(message_id = %record.message_id, %reason, "not an event batch; leaving it for the dead-letter queue");
                    Metrics::add(&self.metrics.poison_records, 1);
                    failed.insert(index);
                }
            }
        }
        Metrics::add(&self.metrics.events_in, decoded.len() as u64);

        let groups = partition(decoded);
        let mut results = futures::stream::iter(
            groups
                .into_iter()
                .map(|(key, group)| self.write_group(records, key, group)),
        )
        .buffer_unordered(GROUPS_IN_FLIGHT);
        while let Some(result) = results.next().await {
            match result {
                Ok(()) => {}
                Err((_, crash @ BatcherError::InjectedCrash { .. })) => return Err(crash),
                Err((indices, e)) => {
                    tracing::warn!(error = %e, records = indices.len(), "group not written; its records will be retried");
                    failed.extend(indices);
                }
            }
        }
        Metrics::add(&self.metrics.failed_records, failed.len() as u64);
        Ok(BatchResponse {
            batch_item_failures: failed
                .into_iter()
                .map(|i| ItemFailure {
                    item_identifier: records[i].message_id.clone(),
                })
                .collect(),
        })
    }

    async fn write_group(
        &self,
        records: &[Record],
        key: PartitionKey,
        group: Vec<(usize, Event)>,
    ) -> Result<(), (BTreeSet<usize>, BatcherError)> {
        let indices: BTreeSet<usize> = group.iter().map(|(i, _)| *i).collect();
        let fail = |e| (indices.clone(), e);
        let body = object::encode(self.config.format, group.iter().map(|(_, e)| e))
            .map_err(|e| fail(e.into()))?;
        let object_key = key.object_key(
            &self.config.key_prefix,
            &object::content_id(&body),
            self.config.format,
        );
        let bytes = body.len() as u64;
        let notice = self
            .sink
            .put(&object_key, body, self.config.format)
            .await
            .map_err(fail)?;
        Metrics::add(&self.metrics.objects_written, 1);
        Metrics::add(&self.metrics.bytes_written, bytes);
        Metrics::add(&self.metrics.events_written, group.len() as u64);
        let written_us = runtime::latency::unix_micros();
        for (index, _) in &group {
            if let Some(sent_ms) = records[*index].sent_at_ms {
                self.metrics
                    .sqs_to_object
                    .record(written_us.saturating_sub(sent_ms * 1000));
            }
        }
        if self.config.fault == Fault::CrashAfterPut {
            return Err(fail(BatcherError::InjectedCrash { key: object_key }));
        }
        self.sink.announce(&notice).await.map_err(fail)?;
        Metrics::add(&self.metrics.notices_published, 1);
        Ok(())
    }
}

fn decode_record(record: &Record) -> Result<Vec<Event>, String> {
    let packing = match record.packing.as_deref() {
        None => Packing::Envelope,
        Some(value) => Packing::parse(value)
            .ok_or_else(|| format!("unknown {} attribute {value:?}", wire::PACKING_ATTRIBUTE))?,
    };
    wire::decode_text(&record.body, packing).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;

    use super::*;
    use proptest::prelude::*;
    use rawfiles::ObjectNotice;

    /// Objects kept in memory, with an optional failure on puts into one source.
    #[derive(Default)]
    struct MemorySink {
        objects: Mutex<BTreeMap<String, Vec<u8>>>,
        announced: Mutex<Vec<String>>,
        fail_source: Option<&'static str>,
    }

    impl Sink for MemorySink {
        async fn put(
            &self,
            key: &str,
            body: Vec<u8>,
            _: FileFormat,
        ) -> Result<ObjectNotice, BatcherError> {
            if self
                .fail_source
                .is_some_and(|s| key.contains(&format!("source={s}/")))
            {
                return Err(BatcherError::Put {
                    bucket: "mem".into(),
                    key: key.into(),
                    reason: "injected".into(),
                });
            }
            let size = body.len() as u64;
            self.objects.lock().unwrap().insert(key.to_owned(), body);
            Ok(ObjectNotice {
                bucket: "mem".into(),
                key: key.into(),
                size,
                etag: "e".into(),
                event_time: Some(chrono::Utc::now()),
            })
        }
        async fn announce(&self, notice: &ObjectNotice) -> Result<(), BatcherError> {
            self.announced.lock().unwrap().push(notice.key.clone());
            Ok(())
        }
    }

    fn events(seed: u64, n: usize) -> Vec<Event> {
        let mut scenario = synth::Scenario::parse(
            "t.toml",
            r#"name = "t"
seed = 1
start = "2026-03-01T22:00:00Z"
duration = "6h"
max_events = 5000
[rates]
cards = 5.0
orders = 20.0
manufacturing = 5.0
[faults]
out_of_order_ratio = 0.3
max_lateness = "3d"
"#,
        )
        .unwrap();
        scenario.max_events = Some(n as u64);
        synth::Generator::new(&scenario, Some(seed))
            .first_events()
            .take(n)
            .collect()
    }

    fn records(events: &[Event], pack: usize) -> Vec<Record> {
        events
            .chunks(pack)
            .enumerate()
            .map(|(i, chunk)| {
                if pack == 1 {
                    Record {
                        message_id: format!("m{i}"),
                        body: wire::to_text(&chunk[0].encode()),
                        ..Record::default()
                    }
                } else {
                    let mut b = wire::BatchBuilder::default();
                    for e in chunk {
                        b.push(&e.encode());
                    }
                    Record {
                        message_id: format!("m{i}"),
                        body: wire::to_text(&b.finish()),
                        packing: Some("batch".into()),
                        ..Record::default()
                    }
                }
            })
            .collect()
    }

    fn handler(sink: MemorySink, format: FileFormat) -> Handler<MemorySink> {
        Handler::new(
            sink,
            HandlerConfig {
                format,
                key_prefix: "raw".into(),
                fault: Fault::None,
            },
            Arc::default(),
        )
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Every object holds only events of its own source and date, and every input event is
        /// in exactly one object.
        #[test]
        fn objects_are_partitioned_and_hold_each_event_once(
            seed in any::<u64>(),
            n in 1usize..300,
            pack in prop_oneof![Just(1usize), 2usize..50],
            parquet in any::<bool>(),
        ) {
            let format = if parquet { FileFormat::Parquet } else { FileFormat::NdjsonGz };
            let input = events(seed, n);
            let h = handler(MemorySink::default(), format);
            let response = run(h.handle(&records(&input, pack))).unwrap();
            prop_assert!(response.batch_item_failures.is_empty());
            let objects = h.sink.objects.lock().unwrap();
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (key, body) in objects.iter() {
                let partition = PartitionKey::parse(key).expect("a partitioned key");
                prop_assert_eq!(FileFormat::of_key(key), Some(format));
                for event in object::decode(format, body).unwrap() {
                    prop_assert_eq!(PartitionKey::of(&event), partition, "event in the wrong object {}", key);
                    *seen.entry(event.event_id().to_owned()).or_default() += 1;
                }
            }
            prop_assert_eq!(seen.len(), input.len());
            prop_assert!(seen.values().all(|c| *c == 1));
            prop_assert_eq!(h.sink.announced.lock().unwrap().len(), objects.len());
        }
    }

    #[test]
    fn a_failed_write_fails_exactly_the_records_in_that_group() {
        let input = events(7, 200);
        let sink = MemorySink {
            fail_source: Some("orders"),
            ..Default::default()
        };
        let h = handler(sink, FileFormat::NdjsonGz);
        let recs = records(&input, 1);
        let response = run(h.handle(&recs)).unwrap();
        let failed: BTreeSet<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let expected: BTreeSet<_> = input
            .iter()
            .zip(&recs)
            .filter(|(e, _)| e.source() == events::Source::Orders)
            .map(|(_, r)| r.message_id.clone())
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(failed, expected);
    }

    #[test]
    fn poison_records_are_item_failures_and_do_not_stop_the_rest() {
        let input = events(3, 20);
        let mut recs = records(&input, 1);
        recs.push(Record {
            message_id: "poison".into(),
            body: "bm90IGFuIGV2ZW50".into(),
            ..Record::default()
        });
        recs.push(Record {
            message_id: "odd".into(),
            body: recs[0].body.clone(),
            packing: Some("zip".into()),
            ..Record::default()
        });
        let h = handler(MemorySink::default(), FileFormat::NdjsonGz);
        let response = run(h.handle(&recs)).unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["poison", "odd"]);
        assert_eq!(h.metrics().snapshot().events_written, 20);
        assert_eq!(h.metrics().snapshot().poison_records, 2);
    }

    #[test]
    fn the_fail_part_fault_fails_every_second_record_and_writes_only_the_rest() {
        let input = events(5, 10);
        let recs = records(&input, 1);
        let h = Handler::new(
            MemorySink::default(),
            HandlerConfig {
                format: FileFormat::NdjsonGz,
                key_prefix: "raw".into(),
                fault: Fault::FailPart,
            },
            Arc::default(),
        );
        let response = run(h.handle(&recs)).unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m1", "m3", "m5", "m7", "m9"]);
        assert_eq!(h.metrics().snapshot().events_written, 5);
    }

    #[test]
    fn the_response_has_lambdas_shape() {
        let r = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "a".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"a"}]}"#
        );
    }
}
