//! End to end through the real components on a scratch native stack: the smoke scenario's
//! marts, built by Airflow's DAG as production builds them, equal the oracle and their
//! snapshots, and a broken model fails the DAG with one mail; dbt models without their dedup, or whose
//! "latest wins" keeps the earliest or the last-emitted event, are caught with row-level diffs;
//! and the change log survives a killed cdc. Small random scenarios are in `e2e_properties.rs`
//! (a stack of its own, so the two run at once).
//!
//! The component binaries are the ones `cargo test --workspace` builds beside this test.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Orchestrator, RUNS, copy_dir, e2e, marts_run, root};
use harness::prove::dbt::{Dbt, DbtCommand, DbtConfig};
use harness::prove::diff::diff_marts;
use stack::scratch::ScratchStack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_marts_match_the_oracle_and_the_snapshots() {
    // Take the stack before the lock, so both tests hold it and it stays up between them.
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let scenario = synth::Scenario::load(root().join("scenarios/smoke.toml")).unwrap();
    // History overlapping the stream gives staging copies to drop.
    let report = e2e(&stack, scenario, 40, Orchestrator::Airflow).await;
    assert!(report.passed(), "{:#?}", report.problems);
    let steps: Vec<&str> = report.dbt.iter().map(|r| r.command).collect();
    assert_eq!(
        steps,
        ["run", "test", "source freshness"],
        "each of the DAG's tasks ran its dbt step"
    );
    assert!(report.dbt.iter().all(|r| r.ok()), "{:#?}", report.dbt);
    assert_eq!(
        report.hops.raw_union.rows - report.hops.raw_union.distinct_events,
        40,
        "the overlap is loaded twice and kept once"
    );
    let marts = report.marts.as_ref().expect("marts were read");
    insta::assert_snapshot!("smoke_dim_card", marts.dim_card.to_csv());
    insta::assert_snapshot!("smoke_fct_orders", marts.fct_orders.to_csv());
    insta::assert_snapshot!(
        "smoke_fct_batch_performance",
        marts.fct_batch_performance.to_csv()
    );

    // What the marts' consumers see, before any mutant below rebuilds them.
    consumers_see_the_smoke_marts(&stack).await;

    // RAW as the run left it, so source freshness passes and only the broken model alerts.
    a_broken_model_fails_the_dag_and_mails_once(&stack).await;

    // The same warehouse through a project whose staging keeps every copy: the diff catches it.
    let broken = broken_project(&stack.state.dir.join("dbt-broken"));
    let mut dbt_config =
        DbtConfig::for_stack(&stack.state, stack.state.dir.join("dbt-broken-work"), true);
    dbt_config.project_dir = broken;
    let dbt = Dbt::new(dbt_config).unwrap();
    let [models, tests] = <[_; 2]>::try_from(
        dbt.invoke(&[DbtCommand::RunFullRefresh, DbtCommand::Test])
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(models.ok(), "the broken models still build:\n{models}");
    assert!(
        tests
            .failures
            .iter()
            .any(|f| f.unique_id.contains("unique_stg_events_event_id")),
        "dbt's own unique test fails too:\n{tests}"
    );
    let actual = harness::rig::warehouse::read_marts(&warehouse(&stack).await)
        .await
        .unwrap();
    let diff = diff_marts(marts, &actual);
    assert!(!diff.is_match());
    let orders = &diff.tables[1];
    assert!(
        !orders.repeated.is_empty(),
        "order lines of copied events repeat:\n{diff}"
    );
    assert!(diff.to_string().contains("repeated   ord-"), "{diff}");

    // "Latest wins" reversed (the earliest event per key wins): every mart has rows that
    // revisions changed, so every mart differs from the oracle.
    let diff = mutant_diff(
        &stack,
        marts,
        "dbt-earliest-wins",
        "order by occurred_at asc, produced_at asc, event_id asc",
    )
    .await;
    for table in &diff.tables {
        assert!(
            !table.changed.is_empty() && table.missing.is_empty() && table.unexpected.is_empty(),
            "{}: the earliest events show as changed rows:\n{diff}",
            table.table
        );
    }
    assert!(diff.to_string().contains("changed    card-"), "{diff}");

    // The mutant's folder with its rule put back, built by the dbt process that built the
    // mutant: that process must parse the project again (a file changed), not reuse the
    // mutant's manifest, and the marts equal the oracle again.
    let dir = stack.state.dir.join("dbt-earliest-wins");
    let path = dir.join("macros/latest_per_key.sql");
    let sql = std::fs::read_to_string(&path).unwrap();
    let earliest = "order by occurred_at asc, produced_at asc, event_id asc";
    assert!(sql.contains(earliest), "{sql}");
    std::fs::write(&path, sql.replace(earliest, LATEST_WINS)).unwrap();
    build_project(&stack, "dbt-earliest-wins", dir).await;
    let actual = harness::rig::warehouse::read_marts(&warehouse(&stack).await)
        .await
        .unwrap();
    let diff = diff_marts(marts, &actual);
    assert!(diff.is_match(), "the rule put back, in place:\n{diff}");
}

/// `cargo xtask report`'s analyses on the smoke marts (their CSV snapshotted), its page, and
/// `cargo xtask docs`'s page as headless Chromium renders it: FCT_ORDERS's page lists its
/// columns with the warehouse's types and its lineage.
async fn consumers_see_the_smoke_marts(stack: &ScratchStack) {
    use harness::consumers::{page, run_analyses, write_docs, write_report};

    let analyses = run_analyses(&stack.state).await.unwrap();
    let names: Vec<&str> = analyses.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "batch_yield_per_line",
            "orders_per_channel_and_day",
            "top_selling_cards",
            "units_sold_within_produced"
        ]
    );
    for analysis in &analyses {
        assert!(!analysis.rows.is_empty(), "{} has rows", analysis.name);
        insta::assert_snapshot!(
            format!("smoke_analysis_{}", analysis.name),
            page::csv(analysis)
        );
    }
    let stock = &analyses[3];
    assert_eq!(stock.columns[1], "headroom");
    assert!(
        stock
            .rows
            .iter()
            .all(|r| !matches!(r[1], snowflake::Value::Int(n) if n < 0)),
        "a supply-constrained scenario never sells beyond stock:\n{}",
        page::csv(stock)
    );
    let written = write_report(&stack.state.dir.join("report"), "smoke", &analyses).unwrap();
    let html = std::fs::read_to_string(&written[0]).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "a chart per analysis");
    assert_eq!(html.matches("<table>").count(), 4, "a table per analysis");
    assert_eq!(written.len(), 5, "the page and a CSV per analysis");

    let docs = write_docs(&stack.state, &stack.state.dir.join("docs/index.html"))
        .await
        .unwrap();
    let text = rendered_text(&docs, "#!/model/model.sluice.fct_orders");
    assert!(
        text.contains("fct_orders incremental"),
        "the model's page: {text:.2000}"
    );
    for column in [
        "order_id",
        "line_number",
        "card_id",
        "customer_id",
        "channel",
        "quantity",
        "amount_cents",
        "ordered_at",
        "ordered_date",
        "is_cancelled",
        "cancelled_at",
    ] {
        assert!(
            text.contains(&format!(" {column} ")),
            "FCT_ORDERS's page lists {column}: {text:.3000}"
        );
    }
    assert!(
        text.contains("TIMESTAMP_NTZ"),
        "column types come from the warehouse's catalog: {text:.3000}"
    );
    let lineage = text
        .split("Depends On")
        .last()
        .expect("a Depends On section");
    assert!(
        lineage.contains("int_order_lines") && lineage.contains("stg_events"),
        "its lineage names the models it reads: {lineage:.500}"
    );
}

/// The visible text of `page` at `fragment`, as headless Chromium renders it (scripts run),
/// without scripts and styles, whitespace collapsed.
fn rendered_text(page: &Path, fragment: &str) -> String {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a Chromium to render the docs page: install Debian's `chromium` (apt-get install chromium; .ci/run does)");
    let output = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg("--virtual-time-budget=15000")
        .arg("--dump-dom")
        .arg(format!("file://{}{fragment}", page.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{chromium} --dump-dom failed");
    let dom = String::from_utf8_lossy(&output.stdout);
    let mut text = String::new();
    let mut rest = dom.as_ref();
    // Drop <script> and <style> elements (the docs page inlines its manifest in one), then tags.
    while let Some(start) = rest.find(['<']) {
        text.push_str(&rest[..start]);
        let tag = &rest[start..];
        let skip_to = ["script", "style"].into_iter().find_map(|name| {
            tag[1..]
                .starts_with(name)
                .then(|| {
                    tag.find(&format!("</{name}>"))
                        .map(|end| end + name.len() + 3)
                })
                .flatten()
        });
        let end = skip_to.unwrap_or_else(|| tag.find('>').map_or(tag.len(), |e| e + 1));
        text.push(' ');
        rest = &tag[end..];
    }
    text.push_str(rest);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The DAG on a copy of the project whose FCT_ORDERS names a column that does not exist, with
/// one retry and an SMTP sink on 127.0.0.1: the run fails at `dbt_run`, `dbt_test` never runs,
/// freshness passes, and exactly one mail arrives, after the retry, naming the DAG, the task and
/// the stack.
async fn a_broken_model_fails_the_dag_and_mails_once(stack: &ScratchStack) {
    use harness::prove::airflow::{Airflow, AirflowConfig, Retries, TaskOutcome};

    let dir = stack.state.dir.join("dbt-airflow-broken");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("infra/dbt"), &dir);
    let model = dir.join("models/marts/fct_orders.sql");
    let sql = std::fs::read_to_string(&model).unwrap();
    let amount = "quantity * unit_price_cents as amount_cents";
    assert!(sql.contains(amount), "{sql}");
    std::fs::write(
        &model,
        sql.replace(amount, "quantity * no_such_column as amount_cents"),
    )
    .unwrap();

    let sink = MailSink::start(&stack.state.dir.join("mail"));
    let mut dbt = DbtConfig::for_stack(
        &stack.state,
        stack.state.dir.join("dbt-airflow-broken-work"),
        true,
    );
    dbt.project_dir = dir;
    let mut config = AirflowConfig::for_stack(
        &stack.state,
        dbt,
        stack.state.dir.join("airflow-broken-run"),
    );
    config.retries = Retries {
        count: 1,
        delay: Duration::from_secs(1),
    };
    config.smtp = Some(sink.addr);
    let airflow = std::sync::Arc::new(Airflow::new(config).unwrap());
    let run = airflow.run().await.unwrap();
    let shown = std::fs::read_to_string(&run.log).unwrap_or_default();
    assert!(
        !run.succeeded,
        "the DAG run fails (log: {})",
        run.log.display()
    );
    let outcome = |name: &str| &run.tasks.iter().find(|(t, _)| *t == name).unwrap().1;
    match outcome("dbt_run") {
        TaskOutcome::Ran(report) => assert!(
            report
                .failures
                .iter()
                .any(|f| f.unique_id.ends_with(".fct_orders")),
            "dbt_run fails on fct_orders:\n{report}"
        ),
        other => panic!("dbt_run left no results: {other:?}"),
    }
    assert!(
        matches!(outcome("dbt_test"), TaskOutcome::NoResults(_)),
        "dbt_test does not run on a failed build: {:?}",
        outcome("dbt_test")
    );
    assert!(
        matches!(outcome("dbt_source_freshness"), TaskOutcome::Ran(r) if r.ok()),
        "freshness passes on the loaded RAW: {:?}",
        outcome("dbt_source_freshness")
    );

    let mails = sink.mails(Duration::from_secs(10));
    assert_eq!(
        mails.len(),
        1,
        "one mail, for the last try only:\n{mails:#?}\n(log: {})",
        run.log.display()
    );
    let mail = &mails[0];
    let stack_name = stack.state.stack.as_str();
    let subject = mail
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or_default();
    for word in ["sluice_marts", "dbt_run", stack_name] {
        assert!(
            subject.contains(word),
            "the subject names {word}: {subject}"
        );
    }
    let body = html_body(mail);
    assert!(
        body.contains("<b>dbt_run</b>") && body.contains(&format!("<b>{stack_name}</b>")),
        "the body names the task and the stack:\n{body}"
    );
    assert!(
        body.contains("after 2 tries"),
        "the alert came after the retry:\n{body}"
    );
    assert!(
        shown.contains("dbt_run"),
        "the run's log has the task's output"
    );
}

/// The base64 HTML part of a mail as Airflow's SmtpNotifier writes it.
fn html_body(mail: &str) -> String {
    use base64::Engine as _;
    let start = mail
        .find("Content-Transfer-Encoding: base64")
        .unwrap_or_else(|| panic!("an encoded part:\n{mail}"));
    let encoded: String = mail[start..]
        .lines()
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("--"))
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// aiosmtpd on 127.0.0.1, keeping each mail it receives in a maildir; stopped on drop.
struct MailSink {
    addr: std::net::SocketAddr,
    maildir: PathBuf,
    child: std::process::Child,
}

impl MailSink {
    fn start(maildir: &Path) -> Self {
        let _ = std::fs::remove_dir_all(maildir);
        let venv =
            pytools::ensure(&pytools::ToolSet::airflow(&root().join("infra/python"))).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let child = std::process::Command::new(venv.python())
            .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string()])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let sink = Self {
            addr,
            maildir: maildir.to_owned(),
            child,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the SMTP sink listens on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sink
    }

    /// The mails received so far, after waiting up to `wait` for the first.
    fn mails(&self, wait: Duration) -> Vec<String> {
        let new = self.maildir.join("new");
        let deadline = std::time::Instant::now() + wait;
        loop {
            let mails: Vec<String> = std::fs::read_dir(&new)
                .map(|entries| {
                    entries
                        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                        .collect()
                })
                .unwrap_or_default();
            if !mails.is_empty() || std::time::Instant::now() >= deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The latest-per-key rule of infra/dbt/macros/latest_per_key.sql.
const LATEST_WINS: &str = "order by occurred_at desc, produced_at desc, event_id desc";

/// Builds a copy of the models whose `macro_file` orders by `to` instead of `from` (a rule
/// taken out), on the same warehouse.
async fn build_mutant(stack: &ScratchStack, name: &str, macro_file: &str, from: &str, to: &str) {
    let dir = stack.state.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("infra/dbt"), &dir);
    let path = dir.join(macro_file);
    let sql = std::fs::read_to_string(&path).unwrap();
    assert!(sql.contains(from), "the rule moved: {sql}");
    std::fs::write(&path, sql.replace(from, to)).unwrap();
    build_project(stack, name, dir).await;
}

/// `dbt run` of the project in `dir` on the stack's warehouse (dbt's folders in `<name>-work`).
async fn build_project(stack: &ScratchStack, name: &str, dir: PathBuf) {
    let mut dbt_config = DbtConfig::for_stack(
        &stack.state,
        stack.state.dir.join(format!("{name}-work")),
        true,
    );
    dbt_config.project_dir = dir;
    let dbt = Dbt::new(dbt_config).unwrap();
    // Built whole: FCT_ORDERS would otherwise be merged into the marts already there.
    let reports = dbt.invoke(&[DbtCommand::RunFullRefresh]).await.unwrap();
    assert!(
        reports[0].ok(),
        "the models of {name} build:\n{}",
        reports[0]
    );
}

async fn warehouse(stack: &ScratchStack) -> snowflake::Client {
    snowflake::Client::connect(snowflake::Config::from_state(&stack.state.snowflake).unwrap())
        .await
        .unwrap()
}

/// The marts of a copy of the models whose "latest wins" orders by `ordering`, against the
/// oracle's (`expected`).
async fn mutant_diff(
    stack: &ScratchStack,
    expected: &harness::prove::mart::Marts,
    name: &str,
    ordering: &str,
) -> harness::prove::diff::MartsDiff {
    build_mutant(
        stack,
        name,
        "macros/latest_per_key.sql",
        LATEST_WINS,
        ordering,
    )
    .await;
    let actual = harness::rig::warehouse::read_marts(&warehouse(stack).await)
        .await
        .unwrap();
    let diff = diff_marts(expected, &actual);
    eprintln!("{name}:\n{diff}");
    assert!(!diff.is_match(), "{name}: the mutant's marts must differ");
    diff
}

/// Late revisions arrive after the revision that supersedes them (the generator counts them):
/// the marts keep the latest by event time, and a model that lets the last-emitted event win
/// is caught with changed rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_arrives_after_its_successor_loses() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let toml = r#"name = "late-revisions"
seed = 5
start = "2026-04-01T12:00:00Z"
duration = "8s"
[rates]
cards = 4
orders = 60
manufacturing = 12
[faults]
out_of_order_ratio = 0.3
max_lateness = "10s"
[revisions]
card_updates = 0.5
order_amendments = 0.2
order_cancellations = 0.05
batch_corrections = 0.4
[history]
events = 200
span = "2d"
[supply]
constrained = true
[pipeline]
batch_size = 50
batch_window = "300ms"
"#;
    let scenario = synth::Scenario::parse("late-revisions.toml", toml).unwrap();
    let report = marts_run(&stack, scenario, 0, Duration::from_secs(90)).await;
    assert!(report.passed(), "{:#?}", report.problems);
    assert!(
        report.produced.superseded >= 10,
        "the data must exercise the rule: {} revisions arrive superseded",
        report.produced.superseded
    );
    let marts = report.marts.as_ref().expect("marts were read");
    let diff = mutant_diff(
        &stack,
        marts,
        "dbt-last-emitted-wins",
        "order by produced_at desc, occurred_at desc, event_id desc",
    )
    .await;
    let changed: usize = diff.tables.iter().map(|t| t.changed.len()).sum();
    assert!(
        changed > 0,
        "superseded revisions show as changed rows:\n{diff}"
    );
}

/// The change log through the real stack, with the cdc SIGKILLed mid-stream and started again:
/// the current-state models equal the PostgreSQL tables, DIM_CUSTOMER the workload's history,
/// no transaction is in RAW in part; and a model whose current state keeps each key's earliest
/// change is caught with changed rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_survives_a_killed_cdc_and_equals_the_source() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let toml = r#"name = "cdc-kill"
seed = 9
start = "2026-04-02T10:00:00Z"
duration = "10s"
[rates]
cards = 2
orders = 30
manufacturing = 5
[history]
events = 50
span = "1d"
[oltp]
customers = 60
orders = 40
transactions = 25
rows_per_transaction = 4
[[chaos]]
at = "4s"
kind = "kill"
target = "cdc"
duration = "2s"
"#;
    let scenario = synth::Scenario::parse("cdc-kill.toml", toml).unwrap();
    let report = e2e(&stack, scenario, 0, Orchestrator::Dbt).await;
    assert!(report.passed(), "{:#?}", report.problems);
    let cdc = report.cdc.as_ref().expect("a workload ran");
    let stats = &cdc.applied.stats;
    assert!(
        stats.inserts > 0 && stats.updates > 0 && stats.deletes > 0,
        "every kind of change: {stats:?}"
    );
    let check = cdc.check.as_ref().expect("the change log was checked");
    assert!(check.diff.is_match(), "{}", check.diff);
    assert!(check.partial.is_empty());
    assert_eq!(check.raw.distinct_events, cdc.applied.row_changes());
    assert_eq!(report.faults.len(), 1);
    let dim = &check.actual[2];
    assert!(
        dim.rows
            .values()
            .any(|r| r[8] == harness::prove::mart::Cell::Bool(true)),
        "erased customers keep their closed history"
    );

    // Current state by the earliest change per key: updated and erased customers differ.
    build_mutant(
        &stack,
        "dbt-earliest-change-wins",
        "macros/latest_change_per_key.sql",
        "order by commit_lsn desc, change_lsn desc",
        "order by commit_lsn asc, change_lsn asc",
    )
    .await;
    let mutant = harness::rig::warehouse::read_table(
        &warehouse(&stack).await,
        &harness::prove::mart::CUSTOMERS_CURRENT,
    )
    .await
    .unwrap();
    let diff = harness::prove::diff::diff_table(&check.actual[0], &mutant);
    eprintln!("earliest change wins:\n{diff}");
    assert!(
        !diff.changed.is_empty(),
        "updated customers show their first version"
    );
    assert!(!diff.unexpected.is_empty(), "erased customers come back");
}

/// infra/dbt with the dedup taken out of stg_events.
fn broken_project(dir: &Path) -> PathBuf {
    let source = root().join("infra/dbt");
    let _ = std::fs::remove_dir_all(dir);
    copy_dir(&source, dir);
    let model = dir.join("models/staging/stg_events.sql");
    let sql = std::fs::read_to_string(&model).unwrap();
    let cut = sql.find("qualify").expect("stg_events dedups with QUALIFY");
    std::fs::write(&model, &sql[..cut]).unwrap();
    dir.to_owned()
}
