//! The marts' Airflow DAG (`infra/airflow/dags/sluice_marts.py`) imports with no errors and has
//! the schedule, retries, order and failure alert it claims. Read by Airflow itself (its DagBag,
//! through `infra/airflow/describe_dags.py`), with no stack: the run against a stack and the
//! alert's mail are in `e2e.rs`.

use std::path::PathBuf;

use harness::prove::airflow::{DAG_ID, TASKS};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn claims() -> Value {
    let venv = pytools::ensure(&pytools::ToolSet::airflow(&root().join("infra/python"))).unwrap();
    // Cargo's scratch folder for integration tests: an AIRFLOW_HOME of this test's own.
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("airflow-dag-claims");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let out = home.join("claims.json");
    let output = std::process::Command::new(venv.python())
        .arg(root().join("infra/airflow/describe_dags.py"))
        .arg(root().join("infra/airflow/dags"))
        .arg(&out)
        .env("AIRFLOW_HOME", &home)
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        // The DAG's defaults, not whatever a harness run of this shell set.
        .env_remove("SLUICE_MARTS_RETRIES")
        .env_remove("SLUICE_MARTS_RETRY_DELAY_SECONDS")
        .env_remove("SLUICE_STACK")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "describe_dags.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

#[test]
fn the_dag_has_the_schedule_retries_order_and_alert_it_claims() {
    let claims = claims();
    assert_eq!(
        claims["import_errors"],
        serde_json::json!({}),
        "the DAG folder imports"
    );
    let dag = &claims["dags"][DAG_ID];
    assert!(dag.is_object(), "{DAG_ID} is found: {claims:#}");
    assert_eq!(dag["schedule"], "@hourly");
    assert_eq!(dag["catchup"], false, "no backfill of missed hours");
    assert_eq!(dag["max_active_runs"], 1, "runs never overlap");

    let tasks = dag["tasks"].as_object().unwrap();
    let mut names: Vec<&str> = tasks.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = TASKS.to_vec();
    expected.sort_unstable();
    assert_eq!(
        names, expected,
        "one task per dbt step, so an alert names it"
    );

    let mut notifiers = Vec::new();
    for (name, command) in [
        ("dbt_run", "run"),
        ("dbt_test", "test"),
        ("dbt_source_freshness", "'source freshness'"),
    ] {
        let task = &tasks[name];
        assert_eq!(task["operator"], "BashOperator", "{name}");
        assert_eq!(task["retries"], 2, "{name}");
        assert_eq!(task["retry_delay_seconds"], 300.0, "{name}");
        assert_eq!(task["retry_exponential_backoff"], true, "{name}");
        let bash = task["bash_command"].as_str().unwrap();
        assert!(
            bash.contains("infra/dbt/invoke.py") && bash.ends_with(&format!(" {command}")),
            "{name} runs dbt {command} through invoke.py: {bash}"
        );
        let alerts = task["on_failure"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{name}: one alert on failure");
        assert_eq!(alerts[0]["type"], "SmtpNotifier", "{name}");
        assert_eq!(alerts[0]["smtp_conn_id"], "sluice_smtp", "{name}");
        let subject = alerts[0]["subject"].as_str().unwrap();
        assert!(
            subject.contains(DAG_ID) && subject.contains("{{ ti.task_id }}"),
            "{name}: the subject names the DAG and the task: {subject}"
        );
        assert!(
            subject.ends_with("stack production"),
            "{name}: and the stack: {subject}"
        );
        notifiers.push(alerts[0]["instance"].as_u64().unwrap());
    }
    notifiers.sort_unstable();
    notifiers.dedup();
    assert_eq!(
        notifiers.len(),
        3,
        "each task has its own notifier (one shared renders the first failure's subject for all)"
    );

    assert_eq!(tasks["dbt_run"]["upstream"], serde_json::json!([]));
    assert_eq!(
        tasks["dbt_test"]["upstream"],
        serde_json::json!(["dbt_run"]),
        "the tests run on the models just built"
    );
    assert_eq!(
        tasks["dbt_source_freshness"]["upstream"],
        serde_json::json!([]),
        "a stale source alerts without holding the marts back"
    );
}
