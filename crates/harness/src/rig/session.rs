//! The run pipeline `e2e` and `load-test` share: connect to a running stack, reset it, backfill
//! the history, start the components. Publishing ([`crate::rig::publish`]) and draining
//! ([`crate::rig::drain`]) come next; what each command adds (dbt and the oracle, or measurement)
//! lives in its own module.

use std::path::{Path, PathBuf};

use backfill::history::HistoryReport;
use backfill::snapshot::{SnapshotConfig, SnapshotReport};
use events::Event;
use stack::{StackName, State};
use synth::Scenario;

use crate::rig::components::{ComponentBinaries, ComponentError, ComponentOptions, Components};
use crate::rig::queues::{QueueError, Queues};
use crate::rig::warehouse::{self, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("reading the stack's state: {0}")]
    State(#[from] stack::StateError),
    #[error("connecting to Snowflake: {0}")]
    Snowflake(#[source] snowflake::Error),
    #[error("PostgreSQL ({what}): {source}")]
    Postgres {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("backfill: {0}")]
    Backfill(#[from] backfill::BackfillError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Component(#[from] ComponentError),
}

fn pg_err(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> SessionError {
    move |source| SessionError::Postgres { what, source }
}

/// Connections to a running stack.
pub struct Session {
    pub root: PathBuf,
    pub stack: StackName,
    pub state: State,
    pub sf: snowflake::Client,
    pub pg: tokio_postgres::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queues: Queues,
}

impl Session {
    pub async fn open(root: &Path, stack: &StackName) -> Result<Self, SessionError> {
        let state = State::load(root, stack)?;
        let sf_config =
            snowflake::Config::from_state(&state.snowflake).map_err(SessionError::Snowflake)?;
        let sf = snowflake::Client::connect(sf_config)
            .await
            .map_err(SessionError::Snowflake)?;
        let (pg, connection) = tokio_postgres::connect(&state.postgres.url, tokio_postgres::NoTls)
            .await
            .map_err(pg_err("connecting"))?;
        tokio::spawn(connection);
        let sdk = runtime::aws::sdk_config(&state.aws).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queues = Queues::connect(&state, sqs.clone()).await?;
        Ok(Self {
            root: root.to_owned(),
            stack: stack.clone(),
            state,
            sf,
            pg,
            sqs,
            queues,
        })
    }

    /// A clean slate: RAW, the load history and `history.events` emptied, every queue purged,
    /// the marts dropped. The warehouse then holds exactly what the next run delivers.
    pub async fn reset(&self) -> Result<(), SessionError> {
        warehouse::reset(&self.sf).await?;
        crate::rig::source::empty_history(&self.pg)
            .await
            .map_err(pg_err("emptying history.events"))?;
        self.queues.purge().await?;
        Ok(())
    }

    /// The history into PostgreSQL, then the snapshot into RAW.EVENTS_BACKFILL.
    pub async fn backfill(
        &mut self,
        history: impl Iterator<Item = Event>,
        snapshot_id: String,
    ) -> Result<(HistoryReport, SnapshotReport), SessionError> {
        let loaded = backfill::history::load(&mut self.pg, history).await?;
        let snapshot = backfill::snapshot::copy(
            &self.pg,
            &self.sf,
            &SnapshotConfig {
                snapshot_id,
                ..SnapshotConfig::default()
            },
        )
        .await?;
        Ok((loaded, snapshot))
    }

    /// Relay, batcher and pipe as processes against this stack, configured from the scenario's
    /// `[pipeline]`, with logs and metrics files in `work_dir`.
    pub fn start_components(
        &self,
        binaries: &ComponentBinaries,
        scenario: &Scenario,
        work_dir: &Path,
        options: &ComponentOptions,
    ) -> Result<Components, SessionError> {
        Ok(Components::start(
            binaries,
            &self.root,
            &self.stack,
            scenario,
            work_dir,
            options,
        )?)
    }

    pub async fn close(self) {
        self.queues.close().await;
        let _ = self.sf.close().await;
    }
}
