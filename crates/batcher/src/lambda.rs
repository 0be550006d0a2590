//! The same handler under `lambda_runtime`: an SQS event in, a partial batch response out.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::handler::{Handler, Record};
use crate::sink::Sink;

fn records(event: SqsEvent) -> Vec<Record> {
    event
        .records
        .into_iter()
        .map(|m| Record {
            message_id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            sent_at_ms: m
                .attributes
                .get("SentTimestamp")
                .and_then(|v| v.parse().ok()),
            packing: m
                .message_attributes
                .get(events::wire::PACKING_ATTRIBUTE)
                .and_then(|a| a.string_value.clone()),
        })
        .collect()
}

/// Serves `handler` as a Lambda function until the runtime stops.
pub async fn serve<S: Sink + 'static>(handler: Handler<S>) -> Result<(), lambda_runtime::Error> {
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let response = match handler.handle(&records(event.payload)).await {
            Ok(response) => response,
            // An injected crash stops the process dead mid-invocation, as a killed execution
            // environment would: no response, no error report.
            Err(crash @ crate::BatcherError::InjectedCrash { .. }) => {
                eprintln!("batcher-lambda: {crash}");
                std::process::exit(101);
            }
            Err(e) => return Err(lambda_runtime::Error::from(e)),
        };
        let mut out = SqsBatchResponse::default();
        out.batch_item_failures = response
            .batch_item_failures
            .into_iter()
            .map(|f| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = f.item_identifier;
                failure
            })
            .collect();
        Ok::<_, lambda_runtime::Error>(out)
    }))
    .await
}
