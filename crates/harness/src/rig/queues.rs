//! The queues between the hops: RabbitMQ's source and dead-letter queues, and the SQS ingest,
//! dead-letter and Snowpipe-notification queues. Depths for quiescence and for "where are the
//! events stuck"; purges for a clean start.

use aws_sdk_sqs::types::QueueAttributeName;
use lapin::options::{QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use stack::State;

/// RabbitMQ queues the relay consumes.
pub const SOURCE_QUEUES: [&str; 4] = ["cards", "orders", "manufacturing", "cdc"];
/// Where rejected (poison) bodies end up (infra/rabbitmq/definitions.json).
pub const DEAD_LETTER_QUEUE: &str = "dead-letter";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("RabbitMQ ({what}): {source}")]
    Amqp {
        what: String,
        #[source]
        source: lapin::Error,
    },
    #[error("SQS ({what}): {reason}")]
    Sqs { what: String, reason: String },
    #[error("the stack has no CloudFormation output {0}; was it brought up by `cargo xtask up`?")]
    MissingOutput(&'static str),
}

/// Messages waiting in an SQS queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SqsDepth {
    pub visible: u64,
    pub in_flight: u64,
}

impl SqsDepth {
    pub fn is_empty(&self) -> bool {
        self.visible == 0 && self.in_flight == 0
    }
}

impl std::fmt::Display for SqsDepth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} waiting, {} in flight", self.visible, self.in_flight)
    }
}

/// The SQS queues between the hops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SqsDepths {
    pub ingest: SqsDepth,
    pub ingest_dead_letter: SqsDepth,
    pub notify: SqsDepth,
}

/// One look at every queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepths {
    /// Ready messages in the source queues together (the cdc queue included).
    pub rabbit_ready: u64,
    pub rabbit_dead_letter: u64,
    pub ingest: SqsDepth,
    pub ingest_dead_letter: SqsDepth,
    pub notify: SqsDepth,
}

pub struct Queues {
    amqp_url: String,
    /// Made again after the broker went away (a restart under a fault schedule).
    amqp: tokio::sync::Mutex<Option<(lapin::Connection, lapin::Channel)>>,
    sqs: aws_sdk_sqs::Client,
    ingest_url: String,
    ingest_dlq_url: String,
    notify_url: String,
}

fn output(state: &State, key: &'static str) -> Result<String, QueueError> {
    state
        .aws
        .outputs
        .get(key)
        .cloned()
        .ok_or(QueueError::MissingOutput(key))
}

fn sqs_err<E: std::error::Error + 'static>(
    what: String,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E>) -> QueueError {
    move |e| QueueError::Sqs {
        what,
        reason: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
    }
}

fn amqp_err(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> QueueError {
    let what = what.into();
    move |source| QueueError::Amqp { what, source }
}

async fn open(url: &str) -> Result<(lapin::Connection, lapin::Channel), QueueError> {
    let amqp = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(amqp_err("connecting"))?;
    let channel = amqp
        .create_channel()
        .await
        .map_err(amqp_err("opening a channel"))?;
    Ok((amqp, channel))
}

impl Queues {
    pub async fn connect(state: &State, sqs: aws_sdk_sqs::Client) -> Result<Self, QueueError> {
        let amqp = open(&state.rabbitmq.amqp_url).await?;
        Ok(Self {
            amqp_url: state.rabbitmq.amqp_url.clone(),
            amqp: tokio::sync::Mutex::new(Some(amqp)),
            sqs,
            ingest_url: output(state, "IngestQueueUrl")?,
            ingest_dlq_url: output(state, "IngestDeadLetterQueueUrl")?,
            notify_url: output(state, "SnowpipeNotifyQueueUrl")?,
        })
    }

    /// The AMQP channel, opened again if the last one failed.
    async fn channel(&self) -> Result<lapin::Channel, QueueError> {
        let mut slot = self.amqp.lock().await;
        if let Some((conn, channel)) = slot.as_ref()
            && conn.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let (conn, channel) = open(&self.amqp_url).await?;
        *slot = Some((conn, channel.clone()));
        Ok(channel)
    }

    async fn rabbit_ready(&self, queue: &str) -> Result<u64, QueueError> {
        let q = self
            .channel()
            .await?
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err(format!("inspecting queue {queue}")))?;
        Ok(u64::from(q.message_count()))
    }

    async fn sqs_depth(&self, url: &str) -> Result<SqsDepth, QueueError> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(sqs_err(format!("reading the depth of {url}")))?;
        let attrs = out.attributes();
        let get = |name: QueueAttributeName| {
            attrs
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(SqsDepth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    pub async fn depths(&self) -> Result<QueueDepths, QueueError> {
        let mut rabbit_ready = 0;
        for queue in SOURCE_QUEUES {
            rabbit_ready += self.rabbit_ready(queue).await?;
        }
        let sqs = self.sqs_depths().await?;
        Ok(QueueDepths {
            rabbit_ready,
            rabbit_dead_letter: self.rabbit_ready(DEAD_LETTER_QUEUE).await?,
            ingest: sqs.ingest,
            ingest_dead_letter: sqs.ingest_dead_letter,
            notify: sqs.notify,
        })
    }

    /// The SQS queues alone, looked at concurrently.
    pub async fn sqs_depths(&self) -> Result<SqsDepths, QueueError> {
        let (ingest, ingest_dead_letter, notify) = tokio::try_join!(
            self.sqs_depth(&self.ingest_url),
            self.sqs_depth(&self.ingest_dlq_url),
            self.sqs_depth(&self.notify_url),
        )?;
        Ok(SqsDepths {
            ingest,
            ingest_dead_letter,
            notify,
        })
    }

    /// Empties every queue, so a run counts only its own messages.
    pub async fn purge(&self) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        for queue in SOURCE_QUEUES.into_iter().chain([DEAD_LETTER_QUEUE]) {
            channel
                .queue_purge(queue.into(), QueuePurgeOptions::default())
                .await
                .map_err(amqp_err(format!("purging queue {queue}")))?;
        }
        for url in [&self.ingest_url, &self.ingest_dlq_url, &self.notify_url] {
            self.sqs
                .purge_queue()
                .queue_url(url.as_str())
                .send()
                .await
                .map_err(sqs_err(format!("purging {url}")))?;
        }
        Ok(())
    }

    pub async fn close(self) {
        if let Some((conn, _)) = self.amqp.into_inner() {
            let _ = conn.close(200, "done".into()).await;
        }
    }
}
