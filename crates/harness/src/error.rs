//! The one error type of a run, `e2e` or `load-test`: infrastructure that failed (a service that
//! does not answer, a component that will not start). What a run proves or disproves is not an
//! error; it is in the run's report.

use crate::load::baseline::BaselineError;
use crate::prove::airflow::AirflowError;
use crate::prove::changelog::ChangelogError;
use crate::prove::dbt::DbtError;
use crate::rig::components::ComponentError;
use crate::rig::drain::DrainError;
use crate::rig::oltp::{SnapshotWaitError, WorkloadError};
use crate::rig::publish::{PublishError, WorkersError};
use crate::rig::queues::QueueError;
use crate::rig::session::SessionError;
use crate::rig::warehouse::WarehouseError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Drain(#[from] DrainError),
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    #[error("publishing: {0}")]
    Workers(#[from] WorkersError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotWaitError),
    #[error("the cdc slot: {0}")]
    Cdc(#[from] cdc::CdcError),
    #[error(transparent)]
    Dbt(#[from] DbtError),
    #[error("airflow: {0}")]
    Airflow(#[from] AirflowError),
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    #[error(
        "{0} has an [oltp] workload, which runs once per load test: drop --find-max and --repeat"
    )]
    WorkloadOnce(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Names what was being done when an I/O call failed.
pub fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}
