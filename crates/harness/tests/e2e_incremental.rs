//! FCT_ORDERS merged incrementally, as production builds it every hour: the smoke and dirty
//! scenarios streamed through the real pipeline in waves, the models built after each wave,
//! and the marts equal to the oracle over what was delivered so far, and FCT_ORDERS equal to
//! its full refresh, after every wave; the same for random seeds and wave counts. A model that
//! loses its look-back (it re-reads only orders placed after the newest it holds) or its merge
//! key fails.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{RUNS, root};
use harness::prove::RunConfig;
use harness::prove::waves::{WavesReport, orders_revised_across_waves, run_in_waves};
use harness::rig::components::ComponentBinaries;
use harness::rig::publish::Pacing;
use stack::scratch::ScratchStack;

const WAVES: usize = 3;

fn config(stack: &ScratchStack, scenario: synth::Scenario) -> RunConfig {
    let mut config = RunConfig::new(
        scenario,
        stack.root().to_owned(),
        stack.state.stack.clone(),
        ComponentBinaries::beside_current_exe().expect("component binaries"),
    );
    config.quiesce_timeout = Duration::from_secs(90);
    // The question is the merge across waves, not the stream's timing: each wave is published
    // as fast as the broker confirms, in the stream's order (the order revisions, duplicates
    // and late events keep).
    config.pacing = Pacing::Unpaced;
    config
}

async fn waves(config: &RunConfig) -> WavesReport {
    waves_of(config, WAVES).await
}

async fn waves_of(config: &RunConfig, waves: usize) -> WavesReport {
    let report = run_in_waves(config, waves, &mut |line: &str| eprintln!("{line}"))
        .await
        .expect("the run completes");
    eprintln!("{report}");
    report
}

fn scenario(name: &str) -> synth::Scenario {
    synth::Scenario::load(root().join(format!("scenarios/{name}.toml"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_and_dirty_merged_wave_by_wave_equal_the_oracle_and_a_full_refresh() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    // The dirty scenario holds every kind of dirty input (its dead letters are checked exact
    // in every wave, its dbt tests after the last).
    let mut dirty = synth::Generator::new(&scenario("dirty"), None);
    dirty.stream().for_each(drop);
    let p = dirty.stats();
    assert!(
        p.duplicates > 0 && p.late > 0 && p.poison > 0 && p.superseded > 0,
        "dirty data of every kind: {} duplicates, {} late, {} poison, {} superseded revisions",
        p.duplicates,
        p.late,
        p.poison,
        p.superseded
    );
    for name in ["smoke", "dirty"] {
        let config = config(&stack, scenario(name));
        let revised = orders_revised_across_waves(&config, WAVES);
        assert!(
            revised > 10,
            "{name}: orders revised in a later wave than they were built: {revised}"
        );
        let report = waves(&config).await;
        assert!(report.passed(), "{name}: {:#?}", report.problems);
        assert_eq!(report.waves.len(), WAVES);
        let tests = report.tests.as_ref().expect("dbt test after the last wave");
        assert!(tests.tests > 50 && tests.ok(), "{name}: {tests}");
        for wave in &report.waves[1..] {
            assert!(
                wave.merged_rows > 0 && wave.merged_rows < wave.fct_orders_rows,
                "{name}: wave {} merged part of FCT_ORDERS, not none and not all: {} of {}",
                wave.wave,
                wave.merged_rows,
                wave.fct_orders_rows
            );
        }
    }
}

/// Proptest's generator without shrinking (each case is a pipeline run in waves): the smoke
/// scenario with random seeds, cut into 2 to 5 waves, merges to the oracle after every wave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_seed_in_any_number_of_waves_merges_to_the_oracle() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    for case in 1..=2 {
        let (seed, waves) = (any::<u64>(), 2usize..=5)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut config = config(&stack, scenario("smoke"));
        config.seed = Some(seed);
        eprintln!("case {case}: smoke with seed {seed} in {waves} waves");
        let report = waves_of(&config, waves).await;
        assert!(
            report.passed(),
            "case {case}: smoke, seed {seed}, {waves} waves: {:#?}",
            report.problems
        );
    }
}

/// The model with a rule taken out, on the same stack: the waves must find it.
async fn mutant_waves(stack: &ScratchStack, name: &str, from: &str, to: &str) -> WavesReport {
    let dir = stack.state.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    common::copy_dir(&root().join("infra/dbt"), &dir);
    let model = dir.join("models/marts/fct_orders.sql");
    let sql = std::fs::read_to_string(&model).unwrap();
    assert!(sql.contains(from), "the rule moved: {sql}");
    std::fs::write(&model, sql.replace(from, to)).unwrap();
    let mut config = config(stack, scenario("smoke"));
    config.dbt_project = Some(dir);
    // Two waves are enough: the second merges revisions of the first's orders.
    waves_of(&config, 2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_without_its_look_back_or_its_key_is_caught() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;

    // A high-water mark on order time instead of the look-back on load time: an amendment or
    // cancellation of an order built in an earlier wave is never re-read.
    let look_back = lookback_filter(&root().join("infra/dbt/models/marts/fct_orders.sql"));
    let report = mutant_waves(
        &stack,
        "dbt-no-look-back",
        &look_back,
        "where ordered_at > (select max(ordered_at) from {{ this }})\n{% endif %}",
    )
    .await;
    assert!(!report.passed(), "a merge without its look-back is caught");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("FCT_ORDERS") && p.contains("changed")),
        "as FCT_ORDERS rows the merge did not revise: {:#?}",
        report.problems
    );

    // No merge key: the merge appends re-read orders beside their earlier rows.
    let report = mutant_waves(
        &stack,
        "dbt-no-merge-key",
        "    unique_key = ['order_id', 'line_number'],\n",
        "",
    )
    .await;
    assert!(!report.passed(), "a merge without its key is caught");
    assert!(
        report.problems.iter().any(|p| p.contains("repeated")),
        "as repeated FCT_ORDERS keys: {:#?}",
        report.problems
    );
}

/// The incremental filter of the model: from `where order_id in (` to `{% endif %}`.
fn lookback_filter(model: &Path) -> String {
    let sql = std::fs::read_to_string(model).unwrap();
    let start = sql
        .find("where order_id in (")
        .expect("FCT_ORDERS re-reads orders by id");
    let end = start + sql[start..].find("{% endif %}").unwrap() + "{% endif %}".len();
    sql[start..end].to_owned()
}
