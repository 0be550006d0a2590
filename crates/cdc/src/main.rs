//! `cdc`: stream PostgreSQL row changes to RabbitMQ. See `cdc --help`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cdc::{CdcConfig, Metrics, TableName};
use clap::Parser;
use runtime::args::{MetricsArgs, StackArgs};

/// Change data capture from PostgreSQL: reads the publication's tables through a logical
/// replication slot (pgoutput), takes an initial snapshot consistent with the slot, then
/// streams every insert, update and delete as a Debezium-shaped change (op c/u/d/r, before,
/// after, source table, LSN, transaction id, commit time) to RabbitMQ with publisher confirms,
/// routing key `cdc.<schema>.<table>`. The slot's LSN advances only past transactions the
/// broker confirmed in full, so a restart, however abrupt, loses nothing (changes sent again
/// keep their event ids). Stops cleanly on SIGTERM or Ctrl-C.
///
/// With `--stack`, endpoints come from a stack started by `cargo xtask up`; flags override them.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    /// PostgreSQL URL, e.g. postgres://user:password@127.0.0.1:5432/postgres [default: the
    /// stack's]. Its user needs the REPLICATION attribute.
    #[arg(long, env = "SLUICE_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// RabbitMQ URL [default: the stack's].
    #[arg(long, env = "SLUICE_AMQP_URL", hide_env_values = true)]
    amqp_url: Option<String>,
    /// The exchange to publish to.
    #[arg(long, default_value = "events")]
    exchange: String,
    /// The logical replication slot.
    #[arg(long, default_value = cdc::DEFAULT_SLOT)]
    slot: String,
    /// The publication whose tables are captured.
    #[arg(long, default_value = cdc::DEFAULT_PUBLICATION)]
    publication: String,
    /// Tables that must be in the publication (schema.table, comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "shop.customers,shop.order_status"
    )]
    tables: Vec<TableName>,
    /// Changes published and not yet confirmed by the broker, at most.
    #[arg(long, default_value_t = 10_000)]
    max_unconfirmed: usize,
    /// How often the confirmed position is reported to PostgreSQL.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    feedback_interval: Duration,
    /// How often to write a heartbeat into the WAL (a logical message the stream brings back
    /// and the slot is acknowledged past), so the slot lets go of WAL other tables write while
    /// the published ones are quiet; 0s for none.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// On shutdown, how long to wait for outstanding confirms.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Stream changes (the default).
    Run,
    /// Make the slot while the published tables are still empty, its (empty) snapshot recorded,
    /// so no change made before the first run is missed; with rows already there, nothing is
    /// made and the first run takes a snapshot. `cargo xtask up` does this.
    Setup,
    /// Drop the slot and its snapshot record: the next run takes a new snapshot, and the
    /// warehouse receives every row again as a read (op r).
    Reset,
}

#[tokio::main]
async fn main() -> Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
    let state = cli.stack.load().context("reading the stack state")?;
    let postgres_url = cli
        .postgres_url
        .or_else(|| state.as_ref().map(|s| s.postgres.url.clone()))
        .context("no PostgreSQL URL: pass --stack NAME or --postgres-url")?;
    let amqp_url = cli
        .amqp_url
        .or_else(|| state.as_ref().map(|s| s.rabbitmq.amqp_url.clone()))
        .context("no RabbitMQ URL: pass --stack NAME or --amqp-url")?;
    let mut config = CdcConfig::new(postgres_url, amqp_url);
    config.exchange = cli.exchange;
    config.slot = cli.slot;
    config.publication = cli.publication;
    config.tables = cli.tables;
    config.max_unconfirmed = cli.max_unconfirmed.max(1);
    config.feedback_interval = cli.feedback_interval;
    config.shutdown_grace = cli.shutdown_grace;
    config.heartbeat = (!cli.heartbeat.is_zero()).then_some(cli.heartbeat);

    if let Some(Command::Setup) = cli.command {
        let made = cdc::slot::setup(&config).await?;
        eprintln!(
            "cdc: {}",
            if made {
                format!("made slot {} with an empty snapshot", config.slot)
            } else {
                format!(
                    "no slot made: slot {} exists, or the tables have rows (the first run takes a snapshot)",
                    config.slot
                )
            }
        );
        return Ok(());
    }
    if let Some(Command::Reset) = cli.command {
        let (pg, connection) = tokio_postgres::connect(&config.postgres_url, tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!(
                    "connecting to {}",
                    runtime::redact_url(&config.postgres_url)
                )
            })?;
        tokio::spawn(connection);
        cdc::slot::reset(&pg, &config.slot).await?;
        eprintln!(
            "cdc: dropped slot {} and its snapshot record; the next run takes a new snapshot",
            config.slot
        );
        return Ok(());
    }

    let metrics = Arc::new(Metrics::default());
    let metrics_file = runtime::MetricsFile::start(cli.metrics.metrics_file.clone(), {
        let m = metrics.clone();
        move || m.snapshot()
    });
    let result = cdc::run(config, metrics.clone(), runtime::shutdown_signal()).await;
    metrics_file.finish()?;
    let s = result?;
    eprintln!(
        "cdc: {} snapshot rows and {} changes in {} transactions published; {} changes confirmed; acked up to {}; {} restarts",
        s.snapshot_rows,
        s.changes,
        s.transactions,
        s.confirmed_changes,
        pg_walstream::format_lsn(s.acked_lsn),
        s.restarts
    );
    Ok(())
}
