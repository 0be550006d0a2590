//! Waiting for a run to drain: every published body through every hop, every poison body in
//! the dead-letter queue, every streamed event in RAW. Shared by `e2e` (quiescence before dbt)
//! and `load-test` (drain time per hop after the last publish); on a timeout it names the first
//! hop that is behind, with every hop's counters.

use std::time::{Duration, Instant};

use crate::rig::components::{ComponentMetrics, Components};
use crate::rig::queues::{QueueDepths, QueueError, Queues};
use crate::rig::warehouse::{self, RawCount, WarehouseError};

/// One look at every hop.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Observed {
    pub components: ComponentMetrics,
    pub queues: QueueDepths,
    pub raw_stream: RawCount,
    /// RAW.CDC_CHANGES (looked at only when the run has a workload).
    pub raw_cdc: RawCount,
    /// A component was restarted, or a fault cut its connections, during the run: its counters
    /// then miss what it did in its last second, or count redelivered bodies twice, so the hops
    /// are judged by their queues instead.
    pub restarted: bool,
}

/// The hops a drain times, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hop {
    Relay,
    Batcher,
    Pipe,
}

impl Hop {
    pub const ALL: [Hop; 3] = [Hop::Relay, Hop::Batcher, Hop::Pipe];

    /// The hop's name in reports (the load-test report's keys).
    pub fn label(self) -> &'static str {
        match self {
            Hop::Relay => "broker -> SQS (relay)",
            Hop::Batcher => "SQS -> S3 (batcher)",
            Hop::Pipe => "S3 -> RAW (pipe)",
        }
    }
}

impl Expect {
    /// Which hops have delivered everything published so far: relay, batcher, pipe. A hop
    /// counts as caught up only when every hop before it has.
    pub fn caught_up(&self, hops: &Observed) -> [bool; 3] {
        let q = &hops.queues;
        let relay = hops.components.relay.as_ref().is_some_and(|r| {
            if hops.restarted || self.cdc_changes.is_some() {
                // Redelivered bodies are counted again by `received`: the source queues are
                // what says whether the relay has taken everything.
                return q.rabbit_ready == 0;
            }
            r.received >= self.published && r.forwarded + r.dead_lettered >= r.received
        }) && q.rabbit_dead_letter >= self.poison;
        let batcher = relay && q.ingest.is_empty();
        let pipe = batcher
            && q.notify.is_empty()
            && hops.raw_stream.distinct_events >= self.stream_distinct
            && self
                .cdc_changes
                .is_none_or(|n| hops.raw_cdc.distinct_events >= n);
        [relay, batcher, pipe]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// How a drain ended.
#[derive(Clone, Debug, Default)]
pub struct Drained {
    /// Set when it timed out or a component died: where the events are, hop by hop.
    pub stuck: Option<String>,
    /// Per hop, in [`Hop::ALL`]'s order: how long after the drain began it had caught up.
    caught_up_after: [Option<Duration>; 3],
    /// The last look.
    pub observed: Observed,
}

impl Drained {
    /// How long after the drain began `hop` had caught up (None: it never did).
    pub fn caught_up_after(&self, hop: Hop) -> Option<Duration> {
        self.caught_up_after[hop as usize]
    }
}

/// Looks at every hop every `interval` until all have caught up on two looks in a row (the
/// components' metrics files lag by up to a second) or `timeout` passes. `on_look` sees every
/// look (progress lines, samples).
pub async fn drain(
    expect: &Expect,
    components: &mut Components,
    queues: &Queues,
    sf: &snowflake::Client,
    timeout: Duration,
    interval: Duration,
    mut on_look: impl FnMut(&Observed, Option<&str>),
) -> Result<Drained, DrainError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut out = Drained::default();
    let mut settled = 0;
    loop {
        if let Err(e) = components.check_running() {
            out.stuck = Some(e.to_string());
            return Ok(out);
        }
        // A service that does not answer now (a broker restarting, an outage being healed) is
        // a hop not yet drained, not a failed run; the timeout still bounds the wait.
        let looked = tokio::try_join!(
            async { queues.depths().await.map_err(|e| e.to_string()) },
            // One warehouse session answers one statement at a time: the counts go in turn.
            async {
                let stream = warehouse::raw_count(sf, "EVENTS_STREAM")
                    .await
                    .map_err(|e| e.to_string())?;
                let cdc = match expect.cdc_changes {
                    Some(_) => warehouse::raw_count(sf, "CDC_CHANGES")
                        .await
                        .map_err(|e| e.to_string())?,
                    None => RawCount::default(),
                };
                Ok::<_, String>((stream, cdc))
            },
        );
        let gap = match looked {
            Ok((queue_depths, (raw_stream, raw_cdc))) => {
                out.observed = Observed {
                    components: components.metrics(),
                    queues: queue_depths,
                    raw_stream,
                    raw_cdc,
                    restarted: components.restarted(),
                };
                for (hop, ok) in expect.caught_up(&out.observed).into_iter().enumerate() {
                    if ok && out.caught_up_after[hop].is_none() {
                        out.caught_up_after[hop] = Some(started.elapsed());
                    }
                }
                expect.first_gap(&out.observed)
            }
            Err(e) => Some(format!("cannot look at every hop yet: {e}")),
        };
        on_look(&out.observed, gap.as_deref());
        settled = if gap.is_none() { settled + 1 } else { 0 };
        if settled >= 2 {
            return Ok(out);
        }
        if Instant::now() >= deadline {
            out.stuck = Some(format!(
                "not drained after {timeout:?}: {}\n(component counters are their last metrics-file writes, up to 1 s old)\n{}",
                gap.unwrap_or_else(|| "counts settled too late".into()),
                hop_table(expect, &out.observed)
            ));
            return Ok(out);
        }
        tokio::time::sleep(interval).await;
    }
}

/// What a drain waits for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect {
    /// Bodies published (events, duplicates and poison).
    pub published: u64,
    /// Poison bodies published: they must all be in the dead-letter queue.
    pub poison: u64,
    /// Distinct streamed events: they must all be in RAW.EVENTS_STREAM.
    pub stream_distinct: u64,
    /// With a workload: distinct row changes (snapshot reads and changes) that must all be in
    /// RAW.CDC_CHANGES.
    pub cdc_changes: Option<u64>,
}

impl Expect {
    /// The first hop, in pipeline order, that has not caught up; None when all have.
    pub fn first_gap(&self, hops: &Observed) -> Option<String> {
        let q = &hops.queues;
        let Some(relay) = &hops.components.relay else {
            return Some("the relay has not reported yet".into());
        };
        // The cdc publishes beside the harness: with it, the source queues say what is left.
        let by_queues = hops.restarted || self.cdc_changes.is_some();
        let behind = if by_queues {
            q.rabbit_ready > 0
        } else {
            relay.received < self.published
        };
        if behind {
            return Some(format!(
                "RabbitMQ -> relay: {} of {} published bodies received ({} ready in the source queues)",
                relay.received, self.published, q.rabbit_ready
            ));
        }
        if !by_queues && relay.forwarded + relay.dead_lettered < relay.received {
            return Some(format!(
                "relay -> SQS: {} received, {} forwarded, {} dead-lettered",
                relay.received, relay.forwarded, relay.dead_lettered
            ));
        }
        if q.rabbit_dead_letter < self.poison {
            return Some(format!(
                "dead-letter queue: {} of {} poison bodies arrived",
                q.rabbit_dead_letter, self.poison
            ));
        }
        if !q.ingest.is_empty() {
            return Some(format!("SQS ingest queue -> batcher: {}", q.ingest));
        }
        if !q.notify.is_empty() {
            return Some(format!("SNS notify queue -> pipe: {}", q.notify));
        }
        if hops.raw_stream.distinct_events < self.stream_distinct {
            return Some(format!(
                "pipe -> RAW: {} of {} streamed events loaded, every queue empty",
                hops.raw_stream.distinct_events, self.stream_distinct
            ));
        }
        if let Some(expected) = self.cdc_changes
            && hops.raw_cdc.distinct_events < expected
        {
            let cdc = hops.components.cdc.as_ref();
            return Some(format!(
                "cdc -> RAW.CDC_CHANGES: {} of {expected} row changes loaded ({} published, {} confirmed by the broker)",
                hops.raw_cdc.distinct_events,
                cdc.map_or(0, |c| c.snapshot_rows + c.changes),
                cdc.map_or(0, |c| c.confirmed_changes),
            ));
        }
        None
    }
}

/// Every hop's counters, for the "where are the events stuck" report.
pub fn hop_table(expect: &Expect, hops: &Observed) -> String {
    let m = &hops.components;
    let q = &hops.queues;
    let mut out = String::new();
    let mut line = |hop: &str, text: String| out.push_str(&format!("  {hop:<22} {text}\n"));
    line(
        "published",
        format!("{} bodies ({} poison)", expect.published, expect.poison),
    );
    line(
        "rabbitmq",
        format!(
            "{} ready in source queues, {} in dead-letter",
            q.rabbit_ready, q.rabbit_dead_letter
        ),
    );
    line(
        "relay",
        m.relay.as_ref().map_or("no metrics yet".into(), |r| {
            format!(
                "{} received, {} forwarded, {} dead-lettered, {} acked",
                r.received, r.forwarded, r.dead_lettered, r.acked
            )
        }),
    );
    line(
        "sqs ingest",
        format!("{}; dead-letter: {}", q.ingest, q.ingest_dead_letter),
    );
    line(
        "batcher",
        m.batcher.as_ref().map_or("no metrics yet".into(), |b| {
            format!(
                "{} events in, {} written in {} objects, {} poison / {} failed records",
                b.events_in,
                b.events_written,
                b.objects_written,
                b.poison_records,
                b.failed_records
            )
        }),
    );
    line("sns -> notify queue", q.notify.to_string());
    line(
        "pipe",
        m.pipe.as_ref().map_or("no metrics yet".into(), |p| {
            format!(
                "{} files loaded ({} rows), {} skipped, {} failed",
                p.files_loaded, p.rows_loaded, p.files_skipped, p.files_failed
            )
        }),
    );
    line(
        "RAW.EVENTS_STREAM",
        format!(
            "{} rows, {} of {} streamed events",
            hops.raw_stream.rows, hops.raw_stream.distinct_events, expect.stream_distinct
        ),
    );
    if let Some(expected) = expect.cdc_changes {
        line(
            "cdc",
            m.cdc.as_ref().map_or("no metrics yet".into(), |c| {
                format!(
                    "{} snapshot rows and {} changes published, {} confirmed, {} restarts",
                    c.snapshot_rows, c.changes, c.confirmed_changes, c.restarts
                )
            }),
        );
        line(
            "RAW.CDC_CHANGES",
            format!(
                "{} rows, {} of {expected} row changes",
                hops.raw_cdc.rows, hops.raw_cdc.distinct_events
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::queues::SqsDepth;
    use crate::rig::warehouse::RawCount;

    fn caught_up() -> (Expect, Observed) {
        let expect = Expect {
            published: 100,
            poison: 2,
            stream_distinct: 95,
            cdc_changes: None,
        };
        let mut hops = Observed::default();
        hops.components.relay = Some(relay::MetricsSnapshot {
            received: 100,
            forwarded: 98,
            dead_lettered: 2,
            ..Default::default()
        });
        hops.queues.rabbit_dead_letter = 2;
        hops.raw_stream = RawCount {
            rows: 98,
            distinct_events: 95,
        };
        (expect, hops)
    }

    #[test]
    fn quiescence_names_the_first_hop_behind() {
        let (expect, hops) = caught_up();
        assert_eq!(expect.first_gap(&hops), None);

        let mut behind = hops.clone();
        behind.queues.ingest = SqsDepth {
            visible: 3,
            in_flight: 10,
        };
        behind.raw_stream.distinct_events = 80;
        let gap = expect.first_gap(&behind).unwrap();
        assert!(
            gap.starts_with("SQS ingest queue -> batcher: 3 waiting, 10 in flight"),
            "{gap}"
        );

        let mut relay_behind = behind.clone();
        relay_behind.components.relay.as_mut().unwrap().received = 60;
        relay_behind.queues.rabbit_ready = 40;
        let gap = expect.first_gap(&relay_behind).unwrap();
        assert!(
            gap.contains("60 of 100 published bodies received (40 ready"),
            "{gap}"
        );

        let mut lost = hops.clone();
        lost.raw_stream.distinct_events = 90;
        let gap = expect.first_gap(&lost).unwrap();
        assert!(
            gap.contains("90 of 95 streamed events loaded, every queue empty"),
            "{gap}"
        );

        let table = hop_table(&expect, &lost);
        for hop in [
            "relay",
            "sqs ingest",
            "batcher",
            "pipe",
            "RAW.EVENTS_STREAM",
        ] {
            assert!(table.contains(hop), "{table}");
        }
    }

    #[test]
    fn hops_catch_up_in_pipeline_order() {
        let (expect, hops) = caught_up();
        assert_eq!(expect.caught_up(&hops), [true, true, true]);
        let mut loading = hops.clone();
        loading.raw_stream.distinct_events = 90;
        assert_eq!(expect.caught_up(&loading), [true, true, false]);
        let mut batching = hops.clone();
        batching.queues.ingest.visible = 1;
        assert_eq!(
            expect.caught_up(&batching),
            [true, false, false],
            "a hop behind one that lags has not caught up either"
        );
        let mut relaying = hops;
        relaying.components.relay.as_mut().unwrap().received = 99;
        assert_eq!(expect.caught_up(&relaying), [false, false, false]);
    }

    #[test]
    fn after_a_fault_the_relay_is_judged_by_its_queues() {
        // Bodies received before a connection was cut come again: `received` counts them twice.
        let (expect, mut hops) = caught_up();
        hops.components.relay.as_mut().unwrap().received = 117;
        assert_eq!(expect.caught_up(&hops), [false, false, false]);
        assert!(expect.first_gap(&hops).unwrap().starts_with("relay -> SQS"));
        hops.restarted = true;
        assert_eq!(expect.caught_up(&hops), [true, true, true]);
        assert_eq!(expect.first_gap(&hops), None);
        hops.queues.rabbit_ready = 5;
        assert_eq!(expect.caught_up(&hops), [false, false, false]);
        assert!(
            expect
                .first_gap(&hops)
                .unwrap()
                .contains("(5 ready in the source queues)")
        );
    }

    #[test]
    fn with_a_workload_the_run_waits_for_every_row_change() {
        let (mut expect, mut hops) = caught_up();
        expect.cdc_changes = Some(50);
        // The cdc's messages count in `received`: the queues judge the relay instead.
        hops.components.relay.as_mut().unwrap().received = 140;
        hops.raw_cdc.distinct_events = 49;
        assert_eq!(expect.caught_up(&hops), [true, true, false]);
        let gap = expect.first_gap(&hops).unwrap();
        assert!(gap.contains("49 of 50 row changes loaded"), "{gap}");
        hops.raw_cdc.distinct_events = 50;
        assert_eq!(expect.caught_up(&hops), [true, true, true]);
        assert_eq!(expect.first_gap(&hops), None);
        assert!(hop_table(&expect, &hops).contains("RAW.CDC_CHANGES"));
    }

    #[test]
    fn missing_dead_letters_keep_the_run_waiting() {
        let (expect, mut hops) = caught_up();
        hops.queues.rabbit_dead_letter = 1;
        let gap = expect.first_gap(&hops).unwrap();
        assert!(gap.contains("1 of 2 poison bodies"), "{gap}");
    }
}
