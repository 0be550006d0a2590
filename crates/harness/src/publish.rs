//! Publishing a scenario's stream: each body to exchange `events` with routing key
//! `<source>.<type>`, persistent, `message_id` = `event_id`, at the time the scenario places it
//! (a fixed schedule from the start, so a slow moment is caught up rather than accumulated as
//! drift), with confirms awaited in a bounded window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lapin::PublisherConfirm;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use synth::{Body, Emission};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// At each emission's offset from the start: the scenario's rate.
    Scenario,
    /// As fast as the broker confirms (load tests, backlogs).
    Unpaced,
}

#[derive(Clone, Debug)]
pub struct PublishConfig {
    pub amqp_url: String,
    pub exchange: String,
    pub pacing: Pacing,
    /// Unconfirmed publishes allowed at once.
    pub confirm_window: usize,
}

impl PublishConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            exchange: "events".into(),
            pacing: Pacing::Scenario,
            confirm_window: 2000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PublishReport {
    /// Bodies published and confirmed.
    pub published: u64,
    /// Of which first emissions of an event, redeliveries and poison bodies.
    pub events: u64,
    pub duplicates: u64,
    pub poison: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// The scenario's span: the last emission's offset.
    pub scheduled: Duration,
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
    #[error("the broker refused (nacked) {0} messages")]
    Nacked(u64),
}

/// Publishes every emission; `progress` is called with the number published so far.
pub async fn publish(
    config: &PublishConfig,
    emissions: impl IntoIterator<Item = Emission>,
    mut progress: impl FnMut(u64),
) -> Result<PublishReport, PublishError> {
    let connection =
        lapin::Connection::connect(&config.amqp_url, lapin::ConnectionProperties::default())
            .await
            .map_err(PublishError::Connect)?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut pending: VecDeque<PublisherConfirm> = VecDeque::with_capacity(config.confirm_window);
    let mut report = PublishReport::default();
    let mut nacked = 0u64;
    let start = tokio::time::Instant::now();
    let started = Instant::now();
    for emission in emissions {
        if config.pacing == Pacing::Scenario {
            let due = start + emission.offset;
            // Sleeping under a millisecond costs more than it paces.
            if due > tokio::time::Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due).await;
            }
        }
        report.scheduled = emission.offset;
        let (routing_key, message_id, kind) = match &emission.body {
            Body::Event(e) => {
                report.events += 1;
                (
                    e.routing_key(),
                    e.event_id().to_owned(),
                    e.event_type().as_str(),
                )
            }
            Body::Duplicate(e) => {
                report.duplicates += 1;
                (
                    e.routing_key(),
                    e.event_id().to_owned(),
                    e.event_type().as_str(),
                )
            }
            Body::Poison(_) => {
                report.poison += 1;
                (
                    emission.body.routing_key(),
                    uuid::Uuid::new_v4().to_string(),
                    "poison",
                )
            }
        };
        let body = emission.body.encode();
        report.bytes += body.len() as u64;
        let properties = lapin::BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type(kind.into())
            .with_message_id(message_id.as_str().into())
            .with_delivery_mode(2);
        let confirm = channel
            .basic_publish(
                config.exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await?;
        pending.push_back(confirm);
        report.published += 1;
        while pending.len() >= config.confirm_window {
            let confirmation = pending.pop_front().expect("not empty").await?;
            nacked += u64::from(confirmation.is_nack());
        }
        if report.published % 1000 == 0 {
            progress(report.published);
        }
    }
    for confirm in pending {
        nacked += u64::from(confirm.await?.is_nack());
    }
    report.elapsed = started.elapsed();
    progress(report.published);
    let _ = connection.close(200, "published".into()).await;
    if nacked > 0 {
        return Err(PublishError::Nacked(nacked));
    }
    Ok(report)
}
