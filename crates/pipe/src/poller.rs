//! Reads notifications in batches (several ReceiveMessage calls at once, until a batch is full,
//! the linger time is up or the queue has nothing more), loads the batch's files in one
//! transaction (loads are serial, as the load history requires), and deletes exactly the
//! messages whose every object is loaded, skipped or recorded as failed.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use futures::StreamExt as _;
use rawfiles::notice::{Notification, ObjectNotice, parse_notification};

use crate::load::{LoadRecord, Loader};
use crate::metrics::Metrics;
use crate::{MetricsSnapshot, PipeError};

#[derive(Clone, Debug)]
pub struct PollerConfig {
    pub queue_url: String,
    /// Most files loaded in one transaction.
    pub max_files: usize,
    /// How long a batch waits for more notifications once it has one.
    pub linger: Duration,
    /// ReceiveMessage calls made at once (each returns at most 10 messages).
    pub receivers: usize,
    /// Append one JSON line per loaded file (key, rows, created and visible times) here.
    pub load_log: Option<PathBuf>,
}

impl PollerConfig {
    pub fn new(queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            max_files: 500,
            linger: Duration::from_millis(100),
            receivers: 4,
            load_log: None,
        }
    }
}

pub async fn run(
    config: &PollerConfig,
    sqs: &aws_sdk_sqs::Client,
    loader: &Loader,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<MetricsSnapshot, PipeError> {
    if config.max_files == 0 || config.receivers == 0 {
        return Err(PipeError::Config(
            "max_files and receivers must be at least 1".into(),
        ));
    }
    let mut load_log = match &config.load_log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| PipeError::Io {
                    context: format!("opening the load log {}", path.display()),
                    source,
                })?,
        ),
        None => None,
    };
    tokio::pin!(shutdown);
    tracing::info!(queue = %config.queue_url, max_files = config.max_files, "pipe polling");
    let mut failures = 0u32;
    loop {
        let messages = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = collect(config, sqs) => r,
        };
        let messages = match messages {
            Ok(m) => {
                failures = 0;
                m
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "ReceiveMessage failed");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50)))).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let (settled, records) = handle(&messages, loader, metrics).await;
        if let Some(file) = &mut load_log {
            for record in &records {
                let line = serde_json::to_string(record).expect("a record serializes");
                if let Err(e) = writeln!(file, "{line}") {
                    tracing::warn!(error = %e, "writing the load log");
                }
            }
        }
        let done: Vec<&Message> = messages
            .iter()
            .zip(settled)
            .filter_map(|(m, settled)| settled.then_some(m))
            .collect();
        delete(config, sqs, &done).await;
    }
    let snapshot = metrics.snapshot();
    tracing::info!(
        files = snapshot.files_loaded,
        rows = snapshot.rows_loaded,
        loads = snapshot.loads,
        "pipe stopped"
    );
    Ok(snapshot)
}

/// Receives up to `max_files` messages: a long poll first, then short polls while messages
/// keep coming and the linger time lasts.
async fn collect(config: &PollerConfig, sqs: &aws_sdk_sqs::Client) -> Result<Vec<Message>, String> {
    let receive = |wait: i32| {
        sqs.receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .send()
    };
    let mut out = Vec::new();
    let first = receive(1)
        .await
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?;
    out.extend(first.messages.unwrap_or_default());
    if out.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = tokio::time::Instant::now() + config.linger;
    while out.len() < config.max_files && tokio::time::Instant::now() < deadline {
        let calls = config
            .receivers
            .min((config.max_files - out.len()).div_ceil(10));
        let rounds: Vec<_> = futures::stream::iter(0..calls)
            .map(|_| receive(0))
            .buffer_unordered(calls)
            .collect()
            .await;
        let before = out.len();
        for round in rounds {
            match round {
                Ok(r) => out.extend(r.messages.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed");
                }
            }
        }
        if out.len() == before {
            break;
        }
    }
    Ok(out)
}

/// Loads the batch; returns, per message, whether it is settled (to be deleted), and the files
/// loaded.
async fn handle(
    messages: &[Message],
    loader: &Loader,
    metrics: &Metrics,
) -> (Vec<bool>, Vec<LoadRecord>) {
    let mut settled = vec![false; messages.len()];
    let mut notices: Vec<ObjectNotice> = Vec::new();
    let mut carriers: Vec<usize> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        Metrics::add(&metrics.notifications, 1);
        let body = message.body().unwrap_or_default();
        match parse_notification(body) {
            Ok(Notification::TestEvent) => {
                Metrics::add(&metrics.test_events, 1);
                settled[i] = true;
            }
            Ok(Notification::Objects(objects)) => {
                settled[i] = true;
                for notice in objects {
                    notices.push(notice);
                    carriers.push(i);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, body = %body.chars().take(200).collect::<String>(), "not an S3 notification; dropped");
                Metrics::add(&metrics.bad_notifications, 1);
                settled[i] = true;
            }
        }
    }
    let mut records = Vec::new();
    if !notices.is_empty() {
        match loader.load_batch(&notices, metrics).await {
            Ok(batch) => records = batch.loaded,
            Err(e) => {
                tracing::warn!(files = notices.len(), error = %e, "load failed; the notices will be retried");
                for carrier in &carriers {
                    settled[*carrier] = false;
                }
            }
        }
    }
    (settled, records)
}

/// Deletes settled messages. A failed delete is logged: the notice comes back and its files are
/// skipped as already loaded.
async fn delete(config: &PollerConfig, sqs: &aws_sdk_sqs::Client, done: &[&Message]) {
    let chunks: Vec<Vec<DeleteMessageBatchRequestEntry>> = done
        .chunks(10)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect()
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(chunks)
        .map(|entries| {
            sqs.delete_message_batch()
                .queue_url(&config.queue_url)
                .set_entries(Some(entries))
                .send()
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for result in results {
        match result {
            Ok(out) => {
                for f in out.failed() {
                    tracing::warn!(
                        code = f.code(),
                        message = f.message().unwrap_or(""),
                        "DeleteMessage refused; the notice will come back and be skipped"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed; the notices will come back and be skipped");
            }
        }
    }
}
