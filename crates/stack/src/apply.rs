//! Applying `infra/` to a ready stack: the CloudFormation template, the Snowflake DDL, the
//! PostgreSQL schema and (for brokers the stack did not start) the RabbitMQ definitions.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Parameter, StackStatus};

use crate::StackName;
use crate::error::{Result, StackError, apply_err, io_err};
use runtime::QueueTimeouts;
use runtime::state::Aws;

/// What a CloudFormation stack was created with and gives back.
pub(crate) struct Applied {
    pub outputs: BTreeMap<String, String>,
    /// As the stack has them: a reused stack keeps the parameters it was created with.
    pub queue_timeouts: QueueTimeouts,
}

/// Creates (or, when it exists, reuses) the pipeline's CloudFormation stack with `timeouts` as
/// its parameters and returns its Outputs. Creation is asynchronous: the status is polled until
/// it settles.
pub(crate) async fn cloudformation(
    infra: &Path,
    name: &StackName,
    aws: &Aws,
    timeouts: &QueueTimeouts,
) -> Result<Applied> {
    let path = infra.join("cloudformation/pipeline.yaml");
    let template =
        std::fs::read_to_string(&path).map_err(io_err(format!("reading {}", path.display())))?;
    let what = format!(
        "{} to {}",
        path.display(),
        aws.endpoint_url.as_deref().unwrap_or("AWS")
    );
    let cf = aws_sdk_cloudformation::Client::new(&runtime::aws::sdk_config(aws).await);
    let cf_stack = format!("sluice-{name}");
    let exists = cf
        .describe_stacks()
        .stack_name(&cf_stack)
        .send()
        .await
        .is_ok_and(|d| {
            d.stacks()
                .first()
                .and_then(|s| s.stack_status())
                .is_some_and(|s| *s != StackStatus::DeleteComplete)
        });
    if !exists {
        let parameters = [
            ("StackName", name.to_string()),
            (
                "IngestVisibilityTimeout",
                timeouts.ingest_visibility_s.to_string(),
            ),
            (
                "NotifyVisibilityTimeout",
                timeouts.notify_visibility_s.to_string(),
            ),
            ("MaxReceiveCount", timeouts.max_receive_count.to_string()),
        ];
        cf.create_stack()
            .stack_name(&cf_stack)
            .template_body(template)
            .set_parameters(Some(
                parameters
                    .into_iter()
                    .map(|(k, v)| {
                        Parameter::builder()
                            .parameter_key(k)
                            .parameter_value(v)
                            .build()
                    })
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| {
                apply_err(&what)(aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string())
            })?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = cf
            .describe_stacks()
            .stack_name(&cf_stack)
            .send()
            .await
            .map_err(|e| {
                apply_err(&what)(aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string())
            })?;
        let stack = described
            .stacks()
            .first()
            .ok_or_else(|| apply_err(&what)("stack vanished".into()))?;
        match stack.stack_status() {
            Some(StackStatus::CreateComplete | StackStatus::UpdateComplete) => {
                let outputs = stack
                    .outputs()
                    .iter()
                    .filter_map(|o| {
                        Some((o.output_key()?.to_owned(), o.output_value()?.to_owned()))
                    })
                    .collect();
                let parameters: BTreeMap<&str, &str> = stack
                    .parameters()
                    .iter()
                    .filter_map(|p| Some((p.parameter_key()?, p.parameter_value()?)))
                    .collect();
                return Ok(Applied {
                    outputs,
                    queue_timeouts: timeouts_of(&parameters, timeouts),
                });
            }
            Some(StackStatus::CreateInProgress | StackStatus::UpdateInProgress)
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => {
                let reason = stack.stack_status_reason().unwrap_or("no reason given");
                return Err(apply_err(&what)(format!(
                    "stack {cf_stack} is {other:?}: {reason}"
                )));
            }
        }
    }
}

/// The timeouts a stack's parameters name; one it does not name (a stack created from an older
/// template) is the template's default, which is what such a stack was created with.
fn timeouts_of(parameters: &BTreeMap<&str, &str>, asked: &QueueTimeouts) -> QueueTimeouts {
    let read = |key: &str, default: u32| {
        parameters
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let defaults = QueueTimeouts::PRODUCTION;
    let actual = QueueTimeouts {
        ingest_visibility_s: read("IngestVisibilityTimeout", defaults.ingest_visibility_s),
        notify_visibility_s: read("NotifyVisibilityTimeout", defaults.notify_visibility_s),
        max_receive_count: read("MaxReceiveCount", defaults.max_receive_count),
    };
    if actual != *asked {
        tracing::warn!(%actual, %asked, "the CloudFormation stack exists with other queue timeouts; keeping them");
    }
    actual
}

/// The statements of a SQL file, split at semicolons that end a line (our files keep to that).
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let code = line.split("--").next().unwrap_or("");
        if code.trim().is_empty() && current.trim().is_empty() {
            continue;
        }
        if code.trim_end().ends_with(';') {
            current.push_str(code.trim_end().trim_end_matches(';'));
            out.push(current.trim().to_owned());
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// Runs `infra/snowflake/*.sql` in file-name order; `*.real-account.sql` only on real accounts.
pub(crate) async fn snowflake(
    infra: &Path,
    config: snowflake::Config,
    real_account: bool,
) -> Result<()> {
    let dir = infra.join("snowflake");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io_err(format!("reading {}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .filter(|p| real_account || !p.to_string_lossy().ends_with(".real-account.sql"))
        .collect();
    files.sort();
    let client = snowflake::Client::connect(config)
        .await
        .map_err(|e| apply_err("Snowflake DDL")(e.to_string()))?;
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(io_err(format!("reading {}", file.display())))?;
        for sql in statements(&text) {
            client.query(&sql, &[]).await.map_err(|e| {
                apply_err(file.display().to_string())(format!("{e}\nin statement:\n{sql}"))
            })?;
        }
    }
    let _ = client.close().await;
    Ok(())
}

/// Runs `infra/postgres/*.sql` in file-name order (the backfill's history, the operational
/// `shop` schema with its publication). The cdc's replication slot is the cdc's own business
/// (`cdc setup`, which `cargo xtask up` runs next).
pub(crate) async fn postgres(infra: &Path, url: &str) -> Result<()> {
    let dir = infra.join("postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io_err(format!("reading {}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| apply_err(dir.display().to_string())(e.to_string()))?;
    let conn = tokio::spawn(connection);
    for path in files {
        let sql = std::fs::read_to_string(&path)
            .map_err(io_err(format!("reading {}", path.display())))?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| apply_err(path.display().to_string())(pg_error(&e)))?;
    }
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// A PostgreSQL error with the server's message (tokio-postgres' Display says only "db error").
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// For a broker the stack did not start: POST the definitions to the management API.
pub(crate) async fn rabbitmq_definitions(
    infra: &Path,
    management_url: &str,
    user: &str,
    password: &str,
) -> Result<()> {
    let path = infra.join("rabbitmq/definitions.json");
    let body =
        std::fs::read_to_string(&path).map_err(io_err(format!("reading {}", path.display())))?;
    let what = path.display().to_string();
    let response = crate::readiness::http_client()
        .post(format!("{management_url}/api/definitions"))
        // Importing declares the quorum queues: on a loaded machine (CI runs two stacks at
        // once) that took longer than the client's 5 s.
        .timeout(std::time::Duration::from_secs(60))
        .basic_auth(user, Some(password))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
            apply_err(&what)(format!("{e}{cause}"))
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(StackError::Apply {
            what,
            reason: format!("HTTP {}", response.status()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn sql_files_split_into_statements() {
        let sql = "-- header\nCREATE TABLE a (\n  x INT -- why\n);\n\nCREATE STAGE s; -- trailing\nSELECT 1";
        assert_eq!(
            statements(sql),
            [
                "CREATE TABLE a (\n  x INT -- why\n)",
                "CREATE STAGE s",
                "SELECT 1"
            ]
        );
    }
}
