//! `backfill`: history into PostgreSQL, then a snapshot into RAW. See `backfill --help`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use backfill::snapshot::SnapshotConfig;
use clap::{Parser, Subcommand};
use runtime::args::StackArgs;

/// The historical backfill: writes a scenario's history into PostgreSQL `history.events`
/// (COPY FROM STDIN; ids already there are skipped), then copies that table into
/// RAW.EVENTS_BACKFILL in chunks through PUT + COPY (ids RAW already holds are skipped), so
/// running it twice adds no rows.
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
    Run(ScenarioArgs),
    /// Write the scenario's history into PostgreSQL `history.events`.
    History(ScenarioArgs),
    /// Copy `history.events` into RAW.EVENTS_BACKFILL.
    Snapshot,
}

#[derive(clap::Args, Debug)]
struct ScenarioArgs {
    /// The scenario whose `[history]` to write.
    #[arg(long)]
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Rows per PUT + COPY in the snapshot step.
    #[arg(long, default_value_t = 50_000)]
    chunk_rows: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
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

    let (scenario_args, do_history, do_snapshot) = match &cli.command {
        Command::Run(a) => (Some(a), true, true),
        Command::History(a) => (Some(a), true, false),
        Command::Snapshot => (None, false, true),
    };
    if do_history {
        let args = scenario_args.expect("history needs a scenario");
        let scenario = synth::Scenario::load(&args.scenario)?;
        let mut generator = synth::Generator::new(&scenario, args.seed);
        let started = std::time::Instant::now();
        let report = backfill::history::load(&mut pg, generator.history()).await?;
        eprintln!(
            "history: {} events offered, {} new rows in history.events ({:.1} s)",
            report.offered,
            report.inserted,
            started.elapsed().as_secs_f64()
        );
    }
    if do_snapshot {
        let warehouse = &state
            .as_ref()
            .context("the snapshot step needs --stack NAME for its Snowflake")?
            .snowflake;
        let sf_config = snowflake::Config::for_stack(
            warehouse.base_url.as_deref(),
            &warehouse.user,
            &warehouse.database,
        )?;
        let sf = snowflake::Client::connect(sf_config)
            .await
            .context("connecting to Snowflake")?;
        let mut config = SnapshotConfig::default();
        if let Some(args) = scenario_args {
            config.chunk_rows = args.chunk_rows;
        }
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
