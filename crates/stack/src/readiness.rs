//! Waiting for a service at the protocol level, never a bare TCP connect.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Result, StackError};
use crate::process::log_tail;
use runtime::state::ProcessInfo;

/// Polls `probe` until it succeeds; fails early if the process dies, or at `timeout`, with the
/// tail of the service's log.
pub(crate) async fn wait<F, Fut>(
    service: &'static str,
    process: Option<&ProcessInfo>,
    timeout: Duration,
    mut probe: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let mut last: String;
    loop {
        if let Some(p) = process
            && !p.is_alive()
        {
            return Err(StackError::Exited {
                service,
                status: "exited".into(),
                log: p.log.clone(),
                tail: log_tail(&p.log, 25),
            });
        }
        match tokio::time::timeout(Duration::from_secs(5), probe()).await {
            Ok(Ok(())) => {
                tracing::info!(service, elapsed = ?started.elapsed(), "ready");
                return Ok(());
            }
            Ok(Err(reason)) => last = reason,
            Err(_) => last = "probe timed out".into(),
        }
        if started.elapsed() > timeout {
            let log = process.map(|p| p.log.clone()).unwrap_or_default();
            return Err(StackError::NotReady {
                service,
                seconds: timeout.as_secs(),
                reason: last,
                tail: log_tail(&log, 25),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("static HTTP client config")
}

/// RabbitMQ's management API aliveness check: declares, publishes to and consumes from a test
/// queue on the default vhost.
pub(crate) async fn rabbitmq(
    http: &reqwest::Client,
    management_url: &str,
    user: &str,
    password: &str,
) -> Result<(), String> {
    let url = format!("{management_url}/api/aliveness-test/%2F");
    let r = http
        .get(&url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.map_err(|e| format!("HTTP {status}: {e}"))?;
    if body["status"] == "ok" {
        Ok(())
    } else {
        Err(format!("aliveness: HTTP {status} {body}"))
    }
}

/// An AMQP client's view: connect and authenticate, open a channel, and find the `orders`
/// queue (a passive declare), which also proves the definitions were loaded. The management
/// API can answer while the AMQP listener still refuses connections.
pub(crate) async fn amqp(url: &str) -> Result<(), String> {
    use lapin::options::QueueDeclareOptions;
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(
                "orders".into(),
                passive,
                lapin::types::FieldTable::default(),
            )
            .await
            .map_err(|e| format!("queue `orders`: {e}"))?;
        Ok(())
    }
    .await;
    let _ = conn.close(0, "readiness".into()).await;
    result
}

pub(crate) async fn postgres(url: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(connection);
    let row = client
        .query_one("SELECT 1::int4", &[])
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let _ = conn.await;
    if row.get::<_, i32>(0) == 1 {
        Ok(())
    } else {
        Err("SELECT 1 gave something else".into())
    }
}

/// LocalStack's health endpoint with every service the pipeline needs available.
pub(crate) async fn localstack(http: &reqwest::Client, endpoint: &str) -> Result<(), String> {
    let body: serde_json::Value = http
        .get(format!("{endpoint}/_localstack/health"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let missing: Vec<&str> = ["s3", "sqs", "sns", "cloudformation"]
        .into_iter()
        .filter(|s| !matches!(body["services"][s].as_str(), Some("available" | "running")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "services not available yet: {}",
            missing.join(", ")
        ))
    }
}

/// A Snowflake login and `SELECT 1`.
pub(crate) async fn snowflake(config: snowflake::Config) -> Result<(), String> {
    let mut config = config;
    config.retry.max_attempts = 1;
    let client = snowflake::Client::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    let rows = client
        .query("SELECT 1", &[])
        .await
        .map_err(|e| e.to_string())?
        .rows()
        .await
        .map_err(|e| e.to_string())?;
    let _ = client.close().await;
    if rows.first().and_then(|r| r.first()) == Some(&snowflake::Value::Int(1)) {
        Ok(())
    } else {
        Err(format!("SELECT 1 gave {rows:?}"))
    }
}
