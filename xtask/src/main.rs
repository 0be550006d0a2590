//! `cargo xtask`: the Sluice command line. Each task lives in its own module with a clap `Args`
//! struct (whose doc comments are the `--help`) and a `run` that hands over to library code.

mod cargo;
mod ci;
mod deploy;
mod docs;
mod down;
mod e2e;
mod engine;
mod env;
mod generate;
mod images;
mod load_test;
mod report;
mod sql;
mod stack_args;
mod status;
mod test;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: provision, drive and prove an event-ingestion pipeline
/// (RabbitMQ -> relay -> SQS -> batcher -> S3/SNS -> pipe -> Snowflake -> dbt marts).
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a scenario's history and stream to a file or stdout, without any service.
    Gen(generate::Args),
    /// Provision RabbitMQ, PostgreSQL, LocalStack and fakesnow (or point at external ones) and apply infra/.
    Up(up::Args),
    /// Stop exactly the processes a stack's state names and remove the state.
    Down(down::Args),
    /// Probe each service of a stack and report its health (exit 1 if any is unhealthy).
    Status(status::Args),
    /// Build Sluice's service images (RabbitMQ, PostgreSQL, LocalStack, fakesnow) for the
    /// container provider, from infra/containers/ and the pins, on a Debian base made here.
    ///
    /// Each image is tagged by a hash of its inputs: an unchanged image is never rebuilt, a
    /// changed pin rebuilds only the images that copy it. Uses DOCKER_HOST, else the system's
    /// engine, else starts Sluice's own (`cargo xtask engine`); installs docker.io and
    /// debootstrap with apt-get when missing and run as root (--no-install: never). Build logs
    /// are under ~/.cache/sluice/engine/builds/.
    Images(images::Args),
    /// Start, stop or show the Docker engine the container provider uses.
    Engine(engine::Args),
    /// Print `export` lines for using a running stack from a shell.
    Env(env::Args),
    /// Deploy infra/cloudformation/pipeline.yaml to an account as one change set: target `aws`
    /// (the whole pipeline: Amazon MQ, the relay on ECS Fargate, the batcher as a Lambda with
    /// its SQS event-source mapping, Snowpipe's role) or `local` (the data resources).
    ///
    /// The parameters are checked first (names, bounds, what target aws needs, the ingest
    /// visibility timeout over six times the batcher's timeout). `--dry-run` writes the change
    /// set it would create to target/sluice/deploy/<stack>/ and sends nothing.
    Deploy(deploy::Args),
    /// Run one SQL statement against fakesnow or a real Snowflake account and print the result.
    Sql(sql::Args),
    /// What the marts' consumers see: run the example queries of infra/dbt/analyses (top-selling
    /// cards, orders per channel and day, batch yield and defect rate per line, units sold
    /// within units produced; declared as dbt exposures) against a running stack's marts, and
    /// write one CSV per query and an HTML page with a chart and a table per query.
    ///
    /// The stack must hold marts: run `cargo xtask e2e --keep --stack NAME ...` first.
    Report(report::Args),
    /// dbt's docs site for a running stack: `dbt docs generate --static` with the catalog read
    /// from the stack's warehouse (columns, types, lineage), written as one HTML file that opens
    /// in a browser without a server.
    ///
    /// The stack must hold the models: run `cargo xtask e2e --keep --stack NAME ...` first.
    Docs(docs::Args),
    /// Drive a scenario through the real pipeline and check the marts against the oracle.
    ///
    /// Stands the stack up if it is not running; empties its RAW tables, history and queues
    /// and drops the marts (use a stack meant for tests); runs the backfill; starts relay,
    /// batcher and pipe as processes; publishes the scenario; waits until every queue is drained
    /// and every event is in RAW; runs `dbt run`, `dbt test` and `dbt source freshness` (itself,
    /// or with --orchestrator airflow through Airflow's sluice_marts DAG, as production does);
    /// and diffs the marts against the oracle row by row.
    ///
    /// With an [oltp] workload (scenarios/cdc.toml), it also drops and recreates the cdc slot,
    /// empties PostgreSQL's shop tables and writes their first rows, starts the cdc, waits for
    /// its snapshot, runs the workload's transactions beside the stream, waits for every row
    /// change in RAW.CDC_CHANGES, and checks the change log against the source: the
    /// current-state models against the PostgreSQL tables row by row, DIM_CUSTOMER against the
    /// history the workload wrote, and no transaction in RAW in part.
    ///
    /// With a fault schedule (the scenario's [[chaos]] or --chaos), the faults are carried out
    /// while the stream runs (kill, pause, broker-restart, crash-after-put, duplicate-notice,
    /// outage through a TCP fault proxy), every one healed, and the report lists each with its
    /// recovery time and the duplicates it caused.
    ///
    /// Prints a summary per hop and per phase. Exits non-zero on any mismatch, failed dbt test,
    /// misplaced partition, miscounted dead letter, lost or unexpected event (named), file loaded
    /// twice, change-log row that differs from the source, or quiescence timeout (which says
    /// where the events are stuck). A stack this command started is taken down at the end unless
    /// --keep; one that was already running is left running.
    E2e(e2e::Args),
    /// Measure the real pipeline at a scenario's rates: throughput, freshness, backlog, cost.
    ///
    /// Stands the stack up if it is not running (and takes down one it started, unless --keep);
    /// builds the components (release unless --dev); measures the broker alone and SQS alone on
    /// the same stack; resets it, runs the backfill and starts relay, batcher and pipe; publishes
    /// the scenario open-model (every body at its intended time; lateness recorded as publish
    /// delay) while sampling rates per hop, queue depths, CPU and RSS once a second; drains;
    /// then reports freshness per event (intended publish to visible in RAW) and per hop, drain
    /// time per hop, every event accounted for per source, and the scenario's [expect] gates.
    /// With an [oltp] workload (scenarios/cdc-steady.toml; once per run, so no --repeat or
    /// --find-max) it also runs the workload beside the stream and reports the cdc's row
    /// changes per second, commit-to-broker-confirm and commit-to-RAW latency, and the slot's
    /// retained and unconfirmed WAL each second.
    /// With a fault schedule (--chaos or the scenario's [[chaos]]), the faults run during each
    /// measured run; the report lists them, shades them on the charts and splits freshness into
    /// during and outside the faults.
    ///
    /// Writes report.json, report.md and report.html (charts) to --out. Exit codes: 0 pass,
    /// 99 a gate failed (each named, with the measured value and the limit), 1 anything else
    /// (lost events, a drain that timed out, a service that does not answer).
    LoadTest(load_test::Args),
    /// Run the workspace's test binaries, several at a time, each timed.
    ///
    /// Builds what `cargo test --workspace --all-targets --locked` builds, then runs its test
    /// binaries `--jobs` at a time (longest first, by the last run), each as cargo runs it, with
    /// its output in a log printed when it ends; lists the slowest at the end. Every binary
    /// runs even when one fails; exits non-zero if any failed. Most binaries wait on a scratch
    /// stack of their own, so running a few at once shortens the wall clock without changing
    /// what a test does. `--quick`: only the binaries that start no service.
    Test(test::Args),
    /// What CI runs, in order, with a timing line per step (`--list` shows the steps).
    ///
    /// Formatting; the container provider's images; the workspace's tests (`cargo xtask
    /// test`: unit, property, tidy, and the real-stack tests on both providers: every fault
    /// kind, the change log, the load test's CLI); the smoke and dirty scenarios end to end, and
    /// the smoke one on the container provider; the Lambda build (with the same compiled
    /// dependencies as everything else); then the GitHub workflow against its schema and
    /// cfn-lint on the CloudFormation template, from pinned Python tools. The container steps
    /// need a Docker engine: DOCKER_HOST (as `.ci/run` sets), the system's, or Sluice's own,
    /// which `images` starts where none answers. Ends with every step's time and the ten
    /// slowest test binaries. Stops at the first failing step and exits non-zero.
    ///
    /// `--quick` is the inner loop: formatting, the tests that start no service, and the smoke
    /// scenario end to end.
    Ci(ci::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // lapin logs every channel the broker closes at ERROR, including the expected 404
            // of readiness probes; the errors that matter reach us as Results.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,lapin::channels=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // SAFETY: no other thread exists yet.
    unsafe { stack::engine::point_docker_host_at_own_engine() };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gen(args) => args.run(),
        Command::Up(args) => args.run(),
        Command::Down(args) => args.run(),
        Command::Status(args) => args.run(),
        Command::Env(args) => args.run(),
        Command::Deploy(args) => args.run(),
        Command::Images(args) => args.run(),
        Command::Engine(args) => args.run(),
        Command::Sql(args) => args.run(),
        Command::Report(args) => args.run(),
        Command::Docs(args) => args.run(),
        Command::E2e(args) => args.run(),
        Command::LoadTest(args) => return exit(args.run()),
        Command::Test(args) => args.run(),
        Command::Ci(args) => args.run(),
    };
    exit(result.map(|()| ExitCode::SUCCESS))
}

fn exit(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
