"""Writes what the DAGs in a folder claim, as JSON (to a file: Airflow logs to stdout): import errors, and per DAG its schedule,
catchup, and per task its operator, retries, upstream tasks and on-failure notifiers.

    AIRFLOW_HOME=... python describe_dags.py infra/airflow/dags claims.json

Run with the Airflow venv's Python (`harness/tests/airflow_dag.rs` does, and checks the claims).
"""

import json
import sys

from airflow.dag_processing.dagbag import DagBag


def callbacks(task):
    found = task.on_failure_callback or []
    return found if isinstance(found, list) else [found]


def describe(folder):
    bag = DagBag(dag_folder=folder)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "schedule": str(dag.schedule),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tasks": {
                task.task_id: {
                    "operator": type(task).__name__,
                    "retries": task.retries,
                    "retry_delay_seconds": task.retry_delay.total_seconds(),
                    "retry_exponential_backoff": bool(task.retry_exponential_backoff),
                    "upstream": sorted(task.upstream_task_ids),
                    "bash_command": getattr(task, "bash_command", None),
                    "on_failure": [
                        {
                            "type": type(callback).__name__,
                            "smtp_conn_id": getattr(callback, "smtp_conn_id", None),
                            "subject": getattr(callback, "subject", None),
                            "instance": id(callback),
                        }
                        for callback in callbacks(task)
                    ],
                }
                for task in dag.tasks
            },
        }
    return {
        "import_errors": {path: str(error) for path, error in bag.import_errors.items()},
        "dags": dags,
    }


if __name__ == "__main__":
    with open(sys.argv[2], "w") as out:
        json.dump(describe(sys.argv[1]), out, indent=1)
