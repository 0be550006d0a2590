//! Real requests to every service of a stack, shared by the provider tests.

use std::time::Duration;

use stack::State;

pub async fn amqp_round_trip(url: &str) {
    use lapin::options::{
        BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    };
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            "events".into(),
            "orders.order_created".into(),
            BasicPublishOptions::default(),
            b"hello",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "broker confirmed the publish");
    let mut got = None;
    for _ in 0..300 {
        if let Some(m) = channel
            .basic_get("orders".into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            got = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = got.expect("the message routed by `orders.#` into the orders quorum queue");
    assert_eq!(message.delivery.data, b"hello");
    message
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    conn.close(0, "done".into()).await.unwrap();
}

/// Message bodies from a queue: long polls until something arrives (bounded to 30 s).
async fn receive_bodies(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    for _ in 0..15 {
        let r = sqs
            .receive_message()
            .queue_url(queue_url)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        let bodies: Vec<String> = r
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect();
        if !bodies.is_empty() {
            return bodies;
        }
    }
    Vec::new()
}

pub async fn aws_round_trips(state: &State) {
    let sdk = runtime::aws::sdk_config(&state.aws).await;
    let outputs = &state.aws.outputs;
    let s3 = rawfiles::s3_client(&sdk);
    let bucket = &outputs["BucketName"];
    s3.put_object()
        .bucket(bucket)
        .key("raw/hello.txt")
        .body(b"hi".to_vec().into())
        .send()
        .await
        .unwrap();
    let body = s3
        .get_object()
        .bucket(bucket)
        .key("raw/hello.txt")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(body.into_bytes().as_ref(), b"hi");

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ingest = &outputs["IngestQueueUrl"];
    queues_have_the_timeouts_the_state_records(&sqs, state).await;
    sqs.send_message()
        .queue_url(ingest)
        .message_body("event")
        .send()
        .await
        .unwrap();
    let received = receive_bodies(&sqs, ingest).await;
    assert_eq!(received, ["event"]);

    let sns = aws_sdk_sns::Client::new(&sdk);
    sns.publish()
        .topic_arn(&outputs["RawFilesTopicArn"])
        .message("raw/source=orders/x.ndjson.gz")
        .send()
        .await
        .unwrap();
    let notify = &outputs["SnowpipeNotifyQueueUrl"];
    let bodies = receive_bodies(&sqs, notify).await;
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("raw/source=orders/x.ndjson.gz")),
        "SNS -> snowpipe-notify: {bodies:?}"
    );
}

pub async fn snowflake_and_postgres(state: &State) {
    let client =
        snowflake::Client::connect(snowflake::Config::from_state(&state.snowflake).unwrap())
            .await
            .unwrap();
    for table in [
        "RAW.EVENTS_STREAM",
        "RAW.EVENTS_BACKFILL",
        "RAW.LOAD_HISTORY",
    ] {
        let rows = client
            .query(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .unwrap()
            .rows()
            .await
            .unwrap();
        assert_eq!(
            rows[0][0],
            snowflake::Value::Int(0),
            "{table} exists and is empty"
        );
    }
    let (pg, conn) = tokio_postgres::connect(&state.postgres.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = pg
        .query_one("SELECT count(*) FROM history.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// The template's parameters reached the queues: what the state records is what SQS does.
async fn queues_have_the_timeouts_the_state_records(sqs: &aws_sdk_sqs::Client, state: &State) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let timeouts = &state.aws.queue_timeouts;
    let attributes = |url: String| async move {
        sqs.get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default()
    };
    let ingest = attributes(state.aws.outputs["IngestQueueUrl"].clone()).await;
    assert_eq!(
        ingest[&QueueAttributeName::VisibilityTimeout],
        timeouts.ingest_visibility_s.to_string()
    );
    let redrive: serde_json::Value =
        serde_json::from_str(&ingest[&QueueAttributeName::RedrivePolicy]).unwrap();
    // LocalStack keeps the template's number as a string.
    let max_receives = &redrive["maxReceiveCount"];
    assert_eq!(
        max_receives
            .as_u64()
            .or_else(|| max_receives.as_str().and_then(|s| s.parse().ok())),
        Some(u64::from(timeouts.max_receive_count)),
        "{redrive}"
    );
    let notify = attributes(state.aws.outputs["SnowpipeNotifyQueueUrl"].clone()).await;
    assert_eq!(
        notify[&QueueAttributeName::VisibilityTimeout],
        timeouts.notify_visibility_s.to_string()
    );
}
