//! The event-source mapping's side of an invocation: the batch the poller filled goes to the
//! function as an SQS event; with `ReportBatchItemFailures`, the records the function names
//! failed stay on the queue, and a function error, crash or timeout leaves the whole batch
//! there (nothing deleted: it all comes back after the visibility timeout).

use std::sync::Arc;

use batcher::poller::Invoke;
use batcher::{BatchResponse, BatcherError, Record};

use crate::api::Outcome;
use crate::event::{Source, all_failed, batch_response, sqs_event};
use crate::function::Function;

pub struct Mapping {
    pub function: Arc<Function>,
    pub source: Source,
}

impl Invoke for Mapping {
    async fn invoke(&self, records: Vec<Record>) -> Result<BatchResponse, BatcherError> {
        let outcome = self
            .function
            .invoke(sqs_event(&records, &self.source))
            .await;
        let failed_whole = |why: String| {
            tracing::warn!(records = records.len(), %why, "the invocation failed; its batch stays on the queue");
            Ok(all_failed(&records))
        };
        match outcome {
            Outcome::Response(body) => match batch_response(&body, &records) {
                Ok(response) => Ok(response),
                Err(why) => failed_whole(why),
            },
            Outcome::Error(e) => failed_whole(format!("function error: {e}")),
            Outcome::Crashed(e) => failed_whole(format!("environment crashed: {e}")),
            Outcome::TimedOut(t) => failed_whole(format!("timed out after {t:?}")),
        }
    }
}
