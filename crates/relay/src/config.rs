use std::time::Duration;

/// Everything the relay needs; built from a stack's state ([`RelayConfig::from_stack`]) or from
/// the binary's flags.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub amqp_url: String,
    /// The queues to consume (production: cards, orders, manufacturing, and cdc's row changes).
    pub queues: Vec<String>,
    /// Unacknowledged deliveries the broker may push per consumer. It bounds throughput: a
    /// delivery stays unacked for an SQS round trip, so it should cover `max_in_flight` full
    /// requests ([`RelayConfig::auto_prefetch`]).
    pub prefetch: u16,
    pub sqs_queue_url: String,
    /// Events per SQS message: 1 sends each envelope as is (production); more packs an
    /// `EventBatch`.
    pub pack: usize,
    /// SendMessageBatch calls in flight at once.
    pub max_in_flight: usize,
    /// How long a partly filled batch may wait for more deliveries.
    pub linger: Duration,
    /// How long shutdown waits for in-flight sends before closing (the broker then requeues
    /// whatever is still unacknowledged).
    pub shutdown_grace: Duration,
}

pub const SOURCE_QUEUES: [&str; 4] = ["cards", "orders", "manufacturing", "cdc"];

impl RelayConfig {
    /// The relay of a stack: its broker, its source queues and its ingest queue.
    pub fn from_stack(state: &runtime::State) -> Result<Self, crate::RelayError> {
        let sqs_queue_url = state
            .aws
            .outputs
            .get("IngestQueueUrl")
            .cloned()
            .ok_or(crate::RelayError::MissingOutput("IngestQueueUrl"))?;
        Ok(Self {
            amqp_url: state.rabbitmq.amqp_url.clone(),
            queues: SOURCE_QUEUES.iter().map(|q| (*q).to_owned()).collect(),
            sqs_queue_url,
            ..Self::defaults()
        })
    }

    /// Enough prefetch to keep `max_in_flight` requests of 10 entries of `pack` events busy from
    /// one queue, at least 1,000.
    pub fn auto_prefetch(pack: usize, max_in_flight: usize) -> u16 {
        (pack.max(1) * 10 * max_in_flight.max(1)).clamp(1000, usize::from(u16::MAX)) as u16
    }

    /// Defaults for everything but the endpoints, which are left empty.
    pub fn defaults() -> Self {
        Self {
            amqp_url: String::new(),
            queues: SOURCE_QUEUES.iter().map(|q| (*q).to_owned()).collect(),
            prefetch: 1000,
            sqs_queue_url: String::new(),
            pack: 1,
            max_in_flight: 8,
            linger: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RelayConfig;

    #[test]
    fn auto_prefetch_covers_the_requests_in_flight() {
        assert_eq!(RelayConfig::auto_prefetch(1, 8), 1000);
        assert_eq!(RelayConfig::auto_prefetch(100, 8), 8000);
        assert_eq!(RelayConfig::auto_prefetch(1000, 8), u16::MAX);
    }
}
