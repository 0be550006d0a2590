//! `backfill`: history into PostgreSQL, then a snapshot into RAW. See `backfill --help`.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backfill::snapshot::SnapshotConfig;
use clap::{Parser, Subcommand};
use runtime::args::StackArgs;

/// The historical backfill: writes history events into PostgreSQL `history.events`
/// (COPY FROM STDIN; ids already there are skipped), then copies that table into
/// RAW.EVENTS_BACKFILL in chunks through PUT + COPY (ids RAW already holds are skipped), so
/// running it twice adds no rows.
///
/// The history is canonical NDJSON, one event per line, as `cargo xtask gen --scenario F
/// --part history --format ndjson` writes it (or an export of the system of record).
///
/// With `--stack`, PostgreSQL and Snowflake come from a stack started by `cargo xtask up`.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    /// PostgreSQL URL [default: the stack's].
    #[arg(
        long,
        env = "SLUICE_POSTGRES_URL",
        hide_env_values = true,
        global = true
    )]
    postgres_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Both steps: `history` then `snapshot`.
    Run {
        #[command(flatten)]
        history: HistoryArgs,
        #[command(flatten)]
        snapshot: SnapshotArgs,
    },
    /// Write the events of `--input` into PostgreSQL `history.events`, all or none.
    History(HistoryArgs),
    /// Copy `history.events` into RAW.EVENTS_BACKFILL.
    Snapshot(SnapshotArgs),
}

#[derive(clap::Args, Debug)]
struct HistoryArgs {
    /// Canonical NDJSON events, one per line; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
}

#[derive(clap::Args, Debug)]
struct SnapshotArgs {
    /// Rows per PUT + COPY in the snapshot step.
    #[arg(long, default_value_t = 50_000)]
    chunk_rows: usize,
}

/// `--input`: a file, or standard input for `-`.
fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("opening --input {}", path.display()))?;
    Ok(Box::new(std::io::BufReader::new(file)))
}

#[tokio::main]
async fn main() -> Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
    let (history, snapshot) = match &cli.command {
        Command::Run { history, snapshot } => (Some(&history.input), Some(snapshot)),
        Command::History(a) => (Some(&a.input), None),
        Command::Snapshot(a) => (None, Some(a)),
    };
    // Opened before connecting: a missing file fails before anything starts.
    let history = history
        .map(|path| open_input(path).map(|reader| (path, reader)))
        .transpose()?;
    let state = cli.stack.load().context("reading the stack state")?;
    let pg_url = cli
        .postgres_url
        .clone()
        .or_else(|| state.as_ref().map(|s| s.postgres.url.clone()))
        .context("no PostgreSQL: pass --stack NAME or --postgres-url")?;
    let (mut pg, connection) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);

    if let Some((input, reader)) = history {
        let started = std::time::Instant::now();
        let events = backfill::history::read_ndjson(reader);
        let report = backfill::history::try_load(&mut pg, events)
            .await
            .with_context(|| format!("loading {} (nothing was written)", input.display()))?;
        eprintln!(
            "history: {} events offered, {} new rows in history.events ({:.1} s)",
            report.offered,
            report.inserted,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(args) = snapshot {
        let warehouse = &state
            .as_ref()
            .context("the snapshot step needs --stack NAME for its Snowflake")?
            .snowflake;
        let sf_config = snowflake::Config::from_state(warehouse)?;
        let sf = snowflake::Client::connect(sf_config)
            .await
            .context("connecting to Snowflake")?;
        let config = SnapshotConfig {
            chunk_rows: args.chunk_rows,
            ..SnapshotConfig::default()
        };
        let started = std::time::Instant::now();
        let report = backfill::snapshot::copy(&pg, &sf, &config).await?;
        let _ = sf.close().await;
        eprintln!(
            "snapshot {}: {} rows read, {} new rows in RAW.EVENTS_BACKFILL in {} chunks ({:.1} s)",
            config.snapshot_id,
            report.read,
            report.inserted,
            report.chunks,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
