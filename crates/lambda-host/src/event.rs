//! The payloads an SQS event-source mapping exchanges with its function: the SQS event it
//! invokes with (the `aws_lambda_events` types the function itself decodes) and the partial
//! batch response it reads back.

use std::collections::{HashMap, HashSet};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use batcher::Record;
use batcher::handler::{BatchResponse, ItemFailure};

/// Where the records came from, as the event names it.
#[derive(Clone, Debug)]
pub struct Source {
    pub queue_arn: String,
    pub region: String,
}

/// The SQS event Lambda would pass for `records`.
pub fn sqs_event(records: &[Record], source: &Source) -> Vec<u8> {
    let mut event = SqsEvent::default();
    event.records = records
        .iter()
        .map(|r| {
            let mut m = SqsMessage::default();
            m.message_id = Some(r.message_id.clone());
            m.body = Some(r.body.clone());
            m.event_source = Some("aws:sqs".into());
            m.event_source_arn = Some(source.queue_arn.clone());
            m.aws_region = Some(source.region.clone());
            if let Some(sent) = r.sent_at_ms {
                m.attributes = HashMap::from([("SentTimestamp".to_owned(), sent.to_string())]);
            }
            if let Some(packing) = &r.packing {
                let mut a = SqsMessageAttribute::default();
                a.string_value = Some(packing.clone());
                a.data_type = Some("String".into());
                m.message_attributes =
                    HashMap::from([(events::wire::PACKING_ATTRIBUTE.to_owned(), a)]);
            }
            m
        })
        .collect();
    serde_json::to_vec(&event).expect("an SQS event serializes")
}

/// The function's answer, read as the mapping reads it with `ReportBatchItemFailures`: the
/// records it names failed; an answer that is not a batch response, or that names a record not
/// in the batch (or none at all), fails the whole batch.
pub fn batch_response(body: &[u8], records: &[Record]) -> Result<BatchResponse, String> {
    // A function may return nothing (null or an empty body): every record succeeded.
    if body.iter().all(u8::is_ascii_whitespace) || body == b"null" {
        return Ok(BatchResponse::default());
    }
    let response: BatchResponse = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a partial batch response ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    let ids: HashSet<&str> = records.iter().map(|r| r.message_id.as_str()).collect();
    if let Some(bad) = response
        .batch_item_failures
        .iter()
        .find(|f| !ids.contains(f.item_identifier.as_str()))
    {
        return Err(format!(
            "the response names `{}`, which is not a record of the batch",
            bad.item_identifier
        ));
    }
    Ok(response)
}

/// Every record of the batch failed: nothing is deleted, all come back after the visibility
/// timeout.
pub fn all_failed(records: &[Record]) -> BatchResponse {
    BatchResponse {
        batch_item_failures: records
            .iter()
            .map(|r| ItemFailure {
                item_identifier: r.message_id.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            message_id: id.into(),
            body: format!("body of {id}"),
            packing: Some("batch".into()),
            sent_at_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn the_event_carries_what_the_handler_reads() {
        let records = [record("a"), record("b")];
        let source = Source {
            queue_arn: "arn:aws:sqs:eu-west-1:000000000000:q".into(),
            region: "eu-west-1".into(),
        };
        let event: SqsEvent = serde_json::from_slice(&sqs_event(&records, &source)).unwrap();
        assert_eq!(event.records.len(), 2);
        let m = &event.records[1];
        assert_eq!(m.message_id.as_deref(), Some("b"));
        assert_eq!(m.body.as_deref(), Some("body of b"));
        assert_eq!(m.attributes["SentTimestamp"], "1700000000000");
        assert_eq!(
            m.message_attributes[events::wire::PACKING_ATTRIBUTE]
                .string_value
                .as_deref(),
            Some("batch")
        );
        assert_eq!(
            m.event_source_arn.as_deref(),
            Some(source.queue_arn.as_str())
        );
    }

    #[test]
    fn a_response_fails_the_records_it_names_or_the_whole_batch() {
        let records = [record("a"), record("b"), record("c")];
        let named = batch_response(
            br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#,
            &records,
        )
        .unwrap();
        assert_eq!(named.batch_item_failures.len(), 1);
        assert_eq!(named.batch_item_failures[0].item_identifier, "b");
        assert!(
            batch_response(b"null", &records)
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
        assert!(
            batch_response(br#"{"batchItemFailures":[]}"#, &records)
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
        let unknown = batch_response(
            br#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#,
            &records,
        )
        .unwrap_err();
        assert!(unknown.contains("`z`"), "{unknown}");
        assert!(batch_response(b"[1,2]", &records).is_err());
        assert_eq!(all_failed(&records).batch_item_failures.len(), 3);
    }
}
