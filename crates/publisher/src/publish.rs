//! Publishing a scenario's stream: each body to exchange `events` with routing key
//! `<source>.<type>`, persistent, `message_id` = `event_id`, with confirms awaited in a bounded
//! window.
//!
//! The load is open-model: every emission has an intended send time (the schedule's offset from
//! the start), and a body is sent at that time or, if the publisher is behind, as soon as it
//! can, never skipped and never rescheduled. The gap between the intended and the actual send
//! is recorded as its own histogram (OpenMessaging Benchmark's publish delay), and freshness is
//! measured from the intended time, so a slow publisher cannot hide latency (coordinated
//! omission).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use lapin::PublisherConfirm;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use runtime::latency::{new_histogram, unix_micros};
use synth::{Body, Emission};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// At each emission's offset from the start: the scenario's rate.
    Scenario,
    /// As fast as the broker confirms (backlogs, throughput ceilings).
    Unpaced,
}

/// A send later than its intended time by more than this counts as fallen behind.
pub const BEHIND: Duration = Duration::from_millis(5);

#[derive(Clone, Debug)]
pub struct PublishConfig {
    pub amqp_url: String,
    pub exchange: String,
    pub pacing: Pacing,
    /// Unconfirmed publishes allowed at once.
    pub confirm_window: usize,
    /// Stamp each message with its publish time (header `sluice-published-at`, microseconds
    /// since the epoch), from which the relay measures its hop.
    pub stamp_publish_time: bool,
    /// Emissions whose offset is below this are sent but their delay is not recorded.
    pub warm_up: Duration,
    /// When the schedule's offset 0 is, microseconds since the epoch (publishers in several
    /// processes share one); `None`: when publishing starts. A start already past counts
    /// against the publisher: its first sends are late by that much.
    pub start_at_us: Option<u64>,
}

impl PublishConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            exchange: "events".into(),
            pacing: Pacing::Scenario,
            confirm_window: 2000,
            stamp_publish_time: true,
            warm_up: Duration::ZERO,
            start_at_us: None,
        }
    }
}

/// Counters another task can read while publishing goes on (the load test's sampler).
#[derive(Debug, Default)]
pub struct PublishProgress {
    /// Bodies handed to the broker.
    pub sent: AtomicU64,
    /// Bodies the broker confirmed.
    pub confirmed: AtomicU64,
    /// First emissions of an event sent (the events that must reach RAW).
    pub events: AtomicU64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublishReport {
    /// Bodies published and confirmed.
    pub published: u64,
    /// Of which first emissions of an event, redeliveries and poison bodies.
    pub events: u64,
    pub duplicates: u64,
    pub poison: u64,
    /// First emissions per source: cards, orders, manufacturing.
    pub events_by_source: [u64; 3],
    pub bytes: u64,
    pub elapsed: Duration,
    /// The scenario's span: the last emission's offset.
    pub scheduled: Duration,
    /// Sends later than intended by more than [`BEHIND`] (after the warm-up).
    pub behind: u64,
    /// Actual minus intended send time, microseconds, after the warm-up (empty when unpaced).
    #[serde(skip, default = "new_histogram")]
    pub delay: Histogram<u64>,
    /// When the first and the last body were sent, microseconds since the epoch.
    pub first_sent_us: u64,
    pub last_sent_us: u64,
    /// When the schedule's offset 0 was, microseconds since the epoch.
    pub schedule_start_us: u64,
    /// Bodies published again: unconfirmed when the connection went, or nacked.
    pub republished: u64,
    /// Connections made again after the broker went away.
    pub reconnects: u64,
}

impl Default for PublishReport {
    fn default() -> Self {
        Self {
            published: 0,
            events: 0,
            duplicates: 0,
            poison: 0,
            events_by_source: [0; 3],
            bytes: 0,
            elapsed: Duration::ZERO,
            scheduled: Duration::ZERO,
            behind: 0,
            delay: new_histogram(),
            first_sent_us: 0,
            last_sent_us: 0,
            schedule_start_us: 0,
            republished: 0,
            reconnects: 0,
        }
    }
}

impl PublishReport {
    pub fn achieved_rate(&self) -> f64 {
        self.published as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The rate the scenario asked for (bodies over its span), if it has a span.
    pub fn target_rate(&self) -> Option<f64> {
        (self.scheduled > Duration::ZERO)
            .then(|| self.published as f64 / self.scheduled.as_secs_f64())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("connecting to RabbitMQ: {0}")]
    Connect(#[source] lapin::Error),
    #[error("publishing: {0}")]
    Amqp(#[from] lapin::Error),
}

/// Publish delay: how late each send was against its intended time, after the warm-up.
#[derive(Debug)]
pub struct DelayRecorder {
    warm_up: Duration,
    pub histogram: Histogram<u64>,
    pub behind: u64,
}

impl DelayRecorder {
    pub fn new(warm_up: Duration) -> Self {
        Self {
            warm_up,
            histogram: new_histogram(),
            behind: 0,
        }
    }

    /// Records the send of the emission at `offset`, intended at `intended`, made at `actual`.
    /// An early send (never, when paced) counts as on time.
    pub fn record(&mut self, offset: Duration, intended: Instant, actual: Instant) {
        if offset < self.warm_up {
            return;
        }
        let late = actual.saturating_duration_since(intended);
        self.histogram.saturating_record(late.as_micros() as u64);
        self.behind += u64::from(late > BEHIND);
    }
}

/// Where one emission goes and how it is labelled.
struct Envelope {
    routing_key: String,
    message_id: String,
    kind: &'static str,
}

fn envelope(emission: &Emission, report: &mut PublishReport) -> Envelope {
    match &emission.body {
        Body::Event(e) => {
            report.events += 1;
            report.events_by_source[e.source() as usize] += 1;
            Envelope {
                routing_key: e.routing_key(),
                message_id: e.event_id().to_owned(),
                kind: e.event_type().as_str(),
            }
        }
        Body::Duplicate(e) => {
            report.duplicates += 1;
            Envelope {
                routing_key: e.routing_key(),
                message_id: e.event_id().to_owned(),
                kind: e.event_type().as_str(),
            }
        }
        Body::Poison(_) => {
            report.poison += 1;
            Envelope {
                routing_key: emission.body.routing_key(),
                message_id: uuid::Uuid::new_v4().to_string(),
                kind: "poison",
            }
        }
    }
}

/// Publishes every emission; `progress` is called with the number published so far.
pub async fn publish(
    config: &PublishConfig,
    emissions: impl IntoIterator<Item = Emission>,
    progress: impl FnMut(u64),
) -> Result<PublishReport, PublishError> {
    publish_observed(config, emissions, &PublishProgress::default(), progress).await
}

/// [`publish`], keeping `observed` up to date for a concurrent reader.
pub async fn publish_observed(
    config: &PublishConfig,
    emissions: impl IntoIterator<Item = Emission>,
    observed: &PublishProgress,
    mut progress: impl FnMut(u64),
) -> Result<PublishReport, PublishError> {
    let mut link = Link::open(&config.amqp_url)
        .await
        .map_err(PublishError::Connect)?;
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(config.confirm_window);
    let mut report = PublishReport::default();
    let mut delays = DelayRecorder::new(config.warm_up);
    let (started, start_us) = schedule_start(config.start_at_us).await;
    report.schedule_start_us = start_us;
    for emission in emissions {
        let intended = started + emission.offset;
        if config.pacing == Pacing::Scenario {
            // Sleeping under a millisecond costs more than it paces.
            if intended > Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(intended.into()).await;
            }
        }
        report.scheduled = emission.offset;
        let envelope = envelope(&emission, &mut report);
        let body = emission.body.encode();
        report.bytes += body.len() as u64;
        let sent_us = unix_micros();
        let mut properties = lapin::BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type(envelope.kind.into())
            .with_message_id(envelope.message_id.as_str().into())
            .with_timestamp(sent_us / 1_000_000)
            .with_delivery_mode(2);
        if config.stamp_publish_time {
            let mut headers = FieldTable::default();
            headers.insert(
                runtime::latency::PUBLISHED_AT_HEADER.into(),
                AMQPValue::LongLongInt(sent_us as i64),
            );
            properties = properties.with_headers(headers);
        }
        if config.pacing == Pacing::Scenario {
            delays.record(emission.offset, intended, Instant::now());
        }
        let message = Message {
            routing_key: envelope.routing_key,
            body,
            properties,
        };
        let confirm = link
            .send(config, &message, &mut pending, &mut report)
            .await?;
        pending.push_back(Pending {
            confirm: Some(confirm),
            message,
        });
        if report.published == 0 {
            report.first_sent_us = sent_us;
        }
        report.last_sent_us = sent_us;
        report.published += 1;
        observed.sent.fetch_add(1, Relaxed);
        if matches!(emission.body, Body::Event(_)) {
            observed.events.fetch_add(1, Relaxed);
        }
        while pending.len() >= config.confirm_window {
            link.settle_oldest(config, &mut pending, &mut report, observed)
                .await?;
        }
        if report.published % 1000 == 0 {
            progress(report.published);
        }
    }
    while !pending.is_empty() {
        link.settle_oldest(config, &mut pending, &mut report, observed)
            .await?;
    }
    report.elapsed = started.elapsed();
    report.delay = delays.histogram;
    report.behind = delays.behind;
    progress(report.published);
    let _ = link.connection.close(200, "published".into()).await;
    Ok(report)
}

/// The schedule's offset 0 as an instant and in microseconds since the epoch: now, or the
/// shared start (waited for when still ahead, placed in the past when already gone).
async fn schedule_start(start_at_us: Option<u64>) -> (Instant, u64) {
    let Some(at) = start_at_us else {
        return (Instant::now(), unix_micros());
    };
    let now_us = unix_micros();
    if at > now_us {
        tokio::time::sleep(Duration::from_micros(at - now_us)).await;
        return (Instant::now(), at);
    }
    let gone = Duration::from_micros(now_us - at);
    let now = Instant::now();
    (now.checked_sub(gone).unwrap_or(now), at)
}

/// One body as published, kept until the broker confirms it, to publish again should the
/// connection go or the broker nack it.
struct Message {
    routing_key: String,
    body: Vec<u8>,
    properties: lapin::BasicProperties,
}

struct Pending {
    /// None when the connection it was published on is gone (it is then published again).
    confirm: Option<PublisherConfirm>,
    message: Message,
}

/// How long the publisher keeps trying to reach a broker that went away (a restart under a
/// fault schedule) before the run fails.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// A connection and a confirming channel, made again when the broker goes away.
struct Link {
    connection: lapin::Connection,
    channel: lapin::Channel,
}

impl Link {
    async fn open(url: &str) -> Result<Self, lapin::Error> {
        let connection =
            lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            channel,
        })
    }

    /// Publishes on the current channel, reconnecting first if it is gone.
    async fn send(
        &mut self,
        config: &PublishConfig,
        message: &Message,
        pending: &mut VecDeque<Pending>,
        report: &mut PublishReport,
    ) -> Result<PublisherConfirm, PublishError> {
        loop {
            match self.publish(config, message).await {
                Ok(confirm) => return Ok(confirm),
                Err(e) => self.reconnect(config, e, pending, report).await?,
            }
        }
    }

    async fn publish(
        &self,
        config: &PublishConfig,
        message: &Message,
    ) -> Result<PublisherConfirm, lapin::Error> {
        self.channel
            .basic_publish(
                config.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &message.body,
                message.properties.clone(),
            )
            .await
    }

    /// Waits for the oldest unconfirmed body; a nack or a lost connection publishes it (and,
    /// after a reconnect, every other unconfirmed body) again.
    async fn settle_oldest(
        &mut self,
        config: &PublishConfig,
        pending: &mut VecDeque<Pending>,
        report: &mut PublishReport,
        observed: &PublishProgress,
    ) -> Result<(), PublishError> {
        let Some(oldest) = pending.pop_front() else {
            return Ok(());
        };
        let Some(confirm) = oldest.confirm else {
            let confirm = self.send(config, &oldest.message, pending, report).await?;
            report.republished += 1;
            pending.push_front(Pending {
                confirm: Some(confirm),
                message: oldest.message,
            });
            return Ok(());
        };
        match confirm.await {
            Ok(confirmation) if confirmation.is_ack() => {
                observed.confirmed.fetch_add(1, Relaxed);
                Ok(())
            }
            Ok(_) => {
                // Nacked: the broker did not take it; publish it again.
                report.republished += 1;
                let confirm = self.send(config, &oldest.message, pending, report).await?;
                pending.push_back(Pending {
                    confirm: Some(confirm),
                    message: oldest.message,
                });
                Ok(())
            }
            Err(e) => {
                pending.push_front(Pending {
                    confirm: None,
                    message: oldest.message,
                });
                self.reconnect(config, e, pending, report).await
            }
        }
    }

    /// Connects again (backing off, for up to [`RECONNECT_FOR`]) and publishes every
    /// unconfirmed body again: at least once, never lost.
    async fn reconnect(
        &mut self,
        config: &PublishConfig,
        cause: lapin::Error,
        pending: &mut VecDeque<Pending>,
        report: &mut PublishReport,
    ) -> Result<(), PublishError> {
        tracing::warn!(error = %cause, unconfirmed = pending.len(), "lost the broker; reconnecting to publish again");
        let deadline = Instant::now() + RECONNECT_FOR;
        let mut delay = Duration::from_millis(200);
        'connect: loop {
            if Instant::now() > deadline {
                return Err(PublishError::Connect(cause));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            let Ok(link) = Link::open(&config.amqp_url).await else {
                continue;
            };
            *self = link;
            report.reconnects += 1;
            for entry in pending.iter_mut() {
                match self.publish(config, &entry.message).await {
                    Ok(confirm) => entry.confirm = Some(confirm),
                    Err(_) => continue 'connect,
                }
                report.republished += 1;
            }
            return Ok(());
        }
    }
}

/// The shared view of a publish in progress.
pub type SharedProgress = Arc<PublishProgress>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A publisher whose sends take 2 ms against a 1 ms schedule falls further behind with every
    /// send: the delays say so (the k-th send is k ms late), instead of the schedule quietly
    /// stretching as it would if the next send were timed from the last.
    #[test]
    fn a_slow_publisher_cannot_hide_its_delay() {
        let start = Instant::now();
        let mut delays = DelayRecorder::new(Duration::from_millis(10));
        let mut now = start;
        for k in 0..1000u64 {
            let offset = Duration::from_millis(k);
            let intended = start + offset;
            now = now.max(intended);
            delays.record(offset, intended, now);
            now += Duration::from_millis(2);
        }
        let h = &delays.histogram;
        assert_eq!(h.len(), 990, "the first 10 ms are warm-up");
        assert!(h.equivalent(h.max(), 999_000), "max {} µs", h.max());
        assert!(h.equivalent(h.min(), 10_000), "min {} µs", h.min());
        assert_eq!(delays.behind, 990, "every measured send is over 5 ms late");

        // On schedule (a send takes less than the interval): no delay at all.
        let mut on_time = DelayRecorder::new(Duration::ZERO);
        for k in 0..100u64 {
            let intended = start + Duration::from_millis(k);
            on_time.record(Duration::from_millis(k), intended, intended);
        }
        assert_eq!(on_time.behind, 0);
        assert_eq!(on_time.histogram.max(), 0);
    }

    /// Workers share one start: a start still ahead is waited for, one already gone is placed
    /// in the past (its sends then count as late), and without one the schedule starts now.
    #[tokio::test]
    async fn the_schedule_starts_at_the_shared_start() {
        let ahead = unix_micros() + 300_000;
        let (at, us) = schedule_start(Some(ahead)).await;
        assert_eq!(us, ahead);
        assert!(unix_micros() >= ahead, "returned before the start");
        assert!(at.elapsed() < Duration::from_millis(100));

        let gone = unix_micros() - 2_000_000;
        let (at, us) = schedule_start(Some(gone)).await;
        assert_eq!(us, gone);
        let behind = at.elapsed();
        assert!(
            behind >= Duration::from_millis(1_990) && behind < Duration::from_millis(2_500),
            "a start 2 s ago lies {behind:?} back"
        );

        let before = unix_micros();
        let (at, us) = schedule_start(None).await;
        assert!(us >= before && at.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn the_schedule_gives_every_emission_its_intended_offset() {
        let scenario = synth::Scenario::parse(
            "t.toml",
            "name = \"t\"\nseed = 3\nduration = \"2s\"\n[rates]\ncards = 5\norders = 50\nmanufacturing = 5\n",
        )
        .unwrap();
        let offsets: Vec<Duration> = synth::Generator::new(&scenario, None)
            .stream()
            .map(|e| e.offset)
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "in send order");
        // 60 events/s for 2 s: the k-th emission is due near k/60 s.
        assert_eq!(offsets.len(), 120);
        for (k, offset) in offsets.iter().enumerate() {
            let due = (k as f64 + 0.5) / 60.0;
            assert!(
                (offset.as_secs_f64() - due).abs() < 0.02,
                "emission {k} at {offset:?}, due at {due:.3} s"
            );
        }
    }
}
