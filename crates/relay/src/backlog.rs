//! The source queues' depth as a CloudWatch embedded metric (`Sluice/Relay SourceBacklog`,
//! dimension `Stack`), one JSON line on stdout per interval: in ECS the awslogs driver ships it
//! and CloudWatch extracts the metric, which the relay's service scales on (backlog per task),
//! since Amazon MQ for RabbitMQ publishes no per-queue metrics. The depth is what a passive
//! declare reports: messages ready, not those delivered and unacknowledged.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

/// One embedded-metric-format line.
pub fn emf_line(stack: &str, backlog: u64, timestamp_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Sluice/Relay",
                "Dimensions": [["Stack"]],
                "Metrics": [{ "Name": "SourceBacklog", "Unit": "Count" }],
            }],
        },
        "Stack": stack,
        "SourceBacklog": backlog,
    })
    .to_string()
}

/// Messages ready in `queues`, summed; a queue that cannot be asked is left out and logged.
pub async fn depth(channel: &lapin::Channel, queues: &[String]) -> Result<u64, lapin::Error> {
    let mut total = 0u64;
    for queue in queues {
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        total += u64::from(declared.message_count());
    }
    Ok(total)
}

/// Writes a line to `out` every `interval` until `shutdown` resolves, on a connection of its
/// own (reconnected after a failure: the metric is worth less than the relay's own session).
pub async fn publish(
    amqp_url: &str,
    queues: &[String],
    stack: &str,
    interval: Duration,
    out: &mut (dyn Write + Send),
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    let mut channel: Option<(lapin::Connection, lapin::Channel)> = None;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        if channel.is_none() {
            match lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await
            {
                Ok(connection) => match connection.create_channel().await {
                    Ok(c) => channel = Some((connection, c)),
                    Err(e) => tracing::warn!(error = %e, "backlog metric: no channel"),
                },
                Err(e) => tracing::warn!(error = %e, "backlog metric: no broker connection"),
            }
        }
        let Some((_, c)) = &channel else { continue };
        match depth(c, queues).await {
            Ok(backlog) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                let _ = writeln!(out, "{}", emf_line(stack, backlog, now));
                let _ = out.flush();
            }
            Err(e) => {
                // A passive declare of a missing queue closes the channel: start over.
                tracing::warn!(error = %e, ?queues, "backlog metric: cannot read the queues' depth");
                channel = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::emf_line;

    #[test]
    fn the_line_is_an_embedded_metric_cloudwatch_extracts() {
        let line = emf_line("prod", 42, 1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Sluice/Relay");
        assert_eq!(directive["Dimensions"][0][0], "Stack");
        assert_eq!(directive["Metrics"][0]["Name"], "SourceBacklog");
        // Every dimension and metric named in the directive is a member of the line.
        assert_eq!(v["Stack"], "prod");
        assert_eq!(v["SourceBacklog"], 42);
        assert!(!line.contains('\n'));
    }
}
