//! Reads notifications one message at a time (loads are serial, as the load history requires)
//! and deletes a message once every object it names is loaded, skipped or recorded as failed.

use std::future::Future;
use std::time::Duration;

use batcher::notice::{Notification, parse_notification};

use crate::load::{LoadOutcome, Loader};
use crate::metrics::Metrics;
use crate::{MetricsSnapshot, PipeError};

pub async fn run(
    queue_url: &str,
    sqs: &aws_sdk_sqs::Client,
    loader: &Loader,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<MetricsSnapshot, PipeError> {
    tokio::pin!(shutdown);
    tracing::info!(queue = %queue_url, "pipe polling");
    let mut failures = 0u32;
    loop {
        let received = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).wait_time_seconds(1).send() => r,
        };
        let messages = match received {
            Ok(out) => {
                failures = 0;
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50)))).await;
                continue;
            }
        };
        for message in messages {
            Metrics::add(&metrics.notifications, 1);
            let body = message.body().unwrap_or_default();
            let done = match parse_notification(body) {
                Ok(Notification::TestEvent) => {
                    Metrics::add(&metrics.test_events, 1);
                    true
                }
                Ok(Notification::Objects(objects)) => {
                    let mut all = true;
                    for notice in &objects {
                        match loader.load(notice, metrics).await {
                            Ok(LoadOutcome::Loaded { rows }) => {
                                tracing::debug!(key = %notice.key, rows, "loaded");
                            }
                            Ok(LoadOutcome::AlreadyLoaded) => {
                                tracing::debug!(key = %notice.key, "already loaded; skipped");
                            }
                            Ok(LoadOutcome::Failed { .. }) => {}
                            Err(e) => {
                                tracing::warn!(key = %notice.key, error = %e, "load failed; the notice will be retried");
                                all = false;
                            }
                        }
                    }
                    all
                }
                Err(e) => {
                    tracing::warn!(error = %e, body = %body.chars().take(200).collect::<String>(), "not an S3 notification; dropped");
                    Metrics::add(&metrics.bad_notifications, 1);
                    true
                }
            };
            if done
                && let Some(handle) = message.receipt_handle()
                && let Err(e) = sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
            {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessage failed; the notice will come back and be skipped");
            }
        }
    }
    let snapshot = metrics.snapshot();
    tracing::info!(?snapshot, "pipe stopped");
    Ok(snapshot)
}
