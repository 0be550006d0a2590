"""The marts, as production builds them: an Airflow DAG that runs dbt every hour.

Three BashOperator tasks run dbt through `infra/dbt/invoke.py` (one parse per task), so a failure
names its step: `dbt_run` (every model), then `dbt_test` (dbt's data tests on what was built), and
beside them `dbt_source_freshness` (RAW's load times), which alerts without holding the marts back.
A task that fails after its retries sends one mail over SMTP (Airflow 3's SmtpNotifier; the
connection `sluice_smtp`, e.g. from AIRFLOW_CONN_SLUICE_SMTP) naming the DAG, the task and the
stack.

Where things are comes from the worker's environment, so the same file runs in production and
under `cargo xtask e2e --orchestrator airflow`:

    SLUICE_DBT_PYTHON        the Python that has dbt-snowflake (default: python3)
    SLUICE_DBT_PROJECT_DIR   the dbt project (default: ../../dbt from this file)
    SLUICE_DBT_WORK_DIR      dbt's target and log folders, one per task (default: /tmp/sluice-dbt)
    SLUICE_DBT_VARS          dbt --vars (default: {})
    SLUICE_STACK             the stack named in the alert (default: production)
    SLUICE_ALERT_TO          who gets the alert (default: data-platform-alerts@example.com)
    SLUICE_MARTS_RETRIES, SLUICE_MARTS_RETRY_DELAY_SECONDS
                             retries before the alert (default: 2, after 300 s, doubling)

dbt's own variables (SLUICE_DBT_TARGET, SNOWFLAKE_*, SLUICE_FAKESNOW_PORT) pass through.
"""

import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

DAG_ID = "sluice_marts"
SMTP_CONN_ID = "sluice_smtp"

PROJECT_DIR = os.environ.get(
    "SLUICE_DBT_PROJECT_DIR", str(Path(__file__).resolve().parents[2] / "dbt")
)
WORK_DIR = os.environ.get("SLUICE_DBT_WORK_DIR", "/tmp/sluice-dbt")
STACK = os.environ.get("SLUICE_STACK", "production")

# Task id -> the dbt command it runs.
STEPS = {
    "dbt_run": "run",
    "dbt_test": "test",
    "dbt_source_freshness": "source freshness",
}


def dbt_command(task_id: str) -> str:
    """The shell line of one step: its own target folder, summary and log, and exit status."""
    work = Path(WORK_DIR) / task_id
    q = shlex.quote
    return " ".join([
        f"mkdir -p {q(str(work))} &&",
        f"DBT_LOG_PATH={q(str(work / 'logs'))}",
        '"${SLUICE_DBT_PYTHON:-python3}"',
        q(str(Path(PROJECT_DIR) / "invoke.py")),
        "--project-dir", q(PROJECT_DIR),
        "--profiles-dir", q(PROJECT_DIR),
        "--target-path", q(str(work / "target")),
        '${SLUICE_DBT_VARS:+--vars "$SLUICE_DBT_VARS"}',
        "--out", q(str(work / "summary.json")),
        q(STEPS[task_id]),
    ])


def alert() -> SmtpNotifier:
    """A task's own notifier: a notifier renders its templates in place, so one shared by every
    task would mail the first failed task's subject for all of them."""
    return SmtpNotifier(
        smtp_conn_id=SMTP_CONN_ID,
        from_email="sluice-airflow@localhost",
        to=os.environ.get("SLUICE_ALERT_TO", "data-platform-alerts@example.com"),
        subject="[sluice] " + DAG_ID + ": task {{ ti.task_id }} failed on stack " + STACK,
        html_content=(
            "<p>DAG <b>{{ dag.dag_id }}</b>, task <b>{{ ti.task_id }}</b>, run {{ run_id }}, "
            "failed on stack <b>" + STACK + "</b> after {{ ti.try_number }} tries.</p>"
            "<p>dbt's results for the step are under " + WORK_DIR + "/{{ ti.task_id }}.</p>"
        ),
    )


def step(task_id: str) -> BashOperator:
    # Only the last try alerts: a retry that succeeds is not worth a mail.
    return BashOperator(
        task_id=task_id, bash_command=dbt_command(task_id), on_failure_callback=alert()
    )


default_args = {
    "owner": "data-platform",
    "retries": int(os.environ.get("SLUICE_MARTS_RETRIES", "2")),
    "retry_delay": timedelta(seconds=int(os.environ.get("SLUICE_MARTS_RETRY_DELAY_SECONDS", "300"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}

with DAG(
    dag_id=DAG_ID,
    description="dbt run, test and source freshness on the Sluice warehouse, hourly",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["sluice", "dbt"],
) as dag:
    run, test, freshness = (step(t) for t in STEPS)
    run >> test
