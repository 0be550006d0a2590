//! `cargo xtask test`: the workspace's test binaries, several at a time, each timed.
//!
//! `cargo test` runs one test binary after another. Most of ours spend their time waiting on
//! real services (a stream paced at its scenario's rate, a fault's duration, dbt on fakesnow),
//! each binary on a scratch stack of its own, so running a few at once shortens the wall clock
//! without changing what any test does. Each binary runs as `cargo test` runs it (from its
//! package's folder, with cargo's variables); its output goes to a log, printed whole when it
//! ends; the slowest binaries are listed at the end and kept for the next run, which starts the
//! longest first.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct Args {
    /// Test binaries to run at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    jobs: u16,
    /// Only the binaries that start no service: unit, property, contract, tidy and CLI tests
    /// without a stack (the inner-loop tier of `cargo xtask ci --quick`).
    #[arg(long)]
    quick: bool,
    /// Only the binaries whose name (`package` for unit tests, `package/target` otherwise,
    /// e.g. `harness/chaos`) contains this; repeatable.
    #[arg(long, value_name = "TEXT")]
    filter: Vec<String>,
    /// Arguments for every libtest binary, after `--` (e.g. `-- --nocapture`, or a test name).
    #[arg(last = true)]
    test_args: Vec<String>,
}

/// Integration-test binaries that start services (a scratch stack, fakesnow, an engine's
/// containers, a fresh tool venv), with the seconds each took on a 2-core machine with two at
/// a time: left out by `--quick`, and the order of a first run (later runs go by their own
/// timings). A name here that no longer exists is an error, so a renamed test cannot slip into
/// the quick tier unnoticed.
const STARTS_SERVICES: &[(&str, f64)] = &[
    ("backfill/stack", 22.0),
    ("batcher/stack", 13.0),
    ("cdc/stack", 53.0),
    ("harness/chaos", 148.0),
    ("harness/chaos_mixed", 132.0),
    ("harness/e2e", 171.0),
    ("harness/e2e_incremental", 164.0),
    ("harness/e2e_lambda", 60.0),
    ("harness/e2e_properties", 36.0),
    ("pipe/stack", 51.0),
    ("pytools/fresh_cache", 22.0),
    ("relay/stack", 32.0),
    ("snowflake/fakesnow", 10.0),
    ("stack/bad_input", 1.0),
    ("stack/containers", 78.0),
    ("stack/native", 35.0),
    ("testkit/fakesnow", 3.0),
    ("xtask/containers", 31.0),
    ("xtask/load_cli", 84.0),
    ("xtask/sql_cli", 4.0),
    ("xtask/stack_cli", 1.0),
];

fn starts_services(name: &str) -> bool {
    STARTS_SERVICES.iter().any(|(n, _)| *n == name)
}

/// One test executable as cargo built it.
#[derive(Clone, Debug)]
struct Binary {
    name: String,
    exe: PathBuf,
    package_dir: PathBuf,
    package: String,
    /// libtest (takes `test_args`) or a custom harness (criterion in test mode).
    libtest: bool,
}

/// How one binary went.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timing {
    pub name: String,
    pub seconds: f64,
    pub passed: bool,
    /// From libtest's `test result:` line; zero for a custom harness.
    pub tests_passed: u64,
    pub tests_failed: u64,
    pub tests_ignored: u64,
}

/// What a run leaves for `cargo xtask ci`'s summary and the next run's order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub timings: Vec<Timing>,
}

/// `<target>/sluice-ci/`: the xtask binary is `<target>/debug/xtask`.
pub fn records_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the xtask binary is not in <target>/<profile>/")?;
    Ok(target.join("sluice-ci"))
}

pub fn last_run_path() -> anyhow::Result<PathBuf> {
    Ok(records_dir()?.join("last-test-run.json"))
}

/// Seconds each binary took when it last passed: the next run starts the longest first.
fn history_path() -> anyhow::Result<PathBuf> {
    Ok(records_dir()?.join("test-times.json"))
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut binaries = build()?;
        let known: Vec<String> = binaries.iter().map(|b| b.name.clone()).collect();
        if let Some((gone, _)) = STARTS_SERVICES
            .iter()
            .find(|(n, _)| !known.iter().any(|k| k == n))
        {
            bail!(
                "xtask/src/test.rs names `{gone}` among the tests that start services, and cargo \
                 built no such test binary; update STARTS_SERVICES"
            );
        }
        if self.quick {
            binaries.retain(|b| !starts_services(&b.name));
        }
        if !self.filter.is_empty() {
            binaries.retain(|b| self.filter.iter().any(|f| b.name.contains(f.as_str())));
        }
        if binaries.is_empty() {
            bail!(
                "no test binary matches; the names are: {}",
                known.join(", ")
            );
        }
        let history: BTreeMap<String, f64> = std::fs::read(history_path()?)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // Longest first (by the last whole run, else the prior above), so the slowest do not
        // start last.
        let expected = |b: &Binary| {
            history.get(&b.name).copied().unwrap_or_else(|| {
                STARTS_SERVICES
                    .iter()
                    .find(|(n, _)| *n == b.name)
                    .map_or(1.0, |(_, s)| *s)
            })
        };
        binaries.sort_by(|a, b| expected(b).total_cmp(&expected(a)));
        let logs = records_dir()?.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let jobs = usize::from(self.jobs).min(binaries.len());
        eprintln!(
            "running {} test binaries, {jobs} at a time (logs in {})",
            binaries.len(),
            logs.display()
        );

        let queue = Mutex::new(VecDeque::from(binaries));
        let done: Mutex<Vec<Timing>> = Mutex::new(Vec::new());
        let running: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let finished = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            // A line a minute while binaries run, so a long wait is not silence.
            scope.spawn(|| {
                let mut last = Instant::now();
                while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= Duration::from_secs(60) {
                        last = Instant::now();
                        eprintln!(
                            "    [{:.0}s] running: {}",
                            started.elapsed().as_secs_f64(),
                            running.lock().expect("running").join(", ")
                        );
                    }
                }
            });
            let workers: Vec<_> = (0..jobs)
                .map(|_| {
                    scope.spawn(|| {
                        loop {
                            let Some(binary) = queue.lock().expect("queue").pop_front() else {
                                return;
                            };
                            running.lock().expect("running").push(binary.name.clone());
                            let timing = run_one(&binary, &self.test_args, &logs);
                            let mut running = running.lock().expect("running");
                            running.retain(|n| *n != binary.name);
                            let mut done = done.lock().expect("done");
                            done.push(timing);
                            eprintln!(
                                "    [{} done{}]",
                                done.len(),
                                if running.is_empty() {
                                    String::new()
                                } else {
                                    format!("; running: {}", running.join(", "))
                                }
                            );
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.join().expect("a test worker panicked");
            }
            finished.store(true, std::sync::atomic::Ordering::Relaxed);
        });

        let mut timings = done.into_inner().expect("done");
        timings.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        // A run of some tests by name is no measure of the binary.
        if self.test_args.is_empty() {
            let mut history = history;
            for t in timings.iter().filter(|t| t.passed) {
                history.insert(t.name.clone(), t.seconds);
            }
            write_json(&history_path()?, &history)?;
        }
        let record = RunRecord { timings };
        write_json(&last_run_path()?, &record)?;

        eprintln!("slowest test binaries:");
        print_slowest(&record, 10);
        let failed: Vec<&str> = record
            .timings
            .iter()
            .filter(|t| !t.passed)
            .map(|t| t.name.as_str())
            .collect();
        let sum = |f: fn(&Timing) -> u64| record.timings.iter().map(f).sum::<u64>();
        eprintln!(
            "{} binaries in {:.1}s wall; {} tests ignored",
            record.timings.len(),
            started.elapsed().as_secs_f64(),
            sum(|t| t.tests_ignored)
        );
        // The closing line, in the plain form CI reads.
        println!(
            "tests: {} passed, {} failed",
            sum(|t| t.tests_passed),
            sum(|t| t.tests_failed)
        );
        if !failed.is_empty() {
            bail!(
                "{} test binaries failed: {} (their output is above, and in {})",
                failed.len(),
                failed.join(", "),
                logs.display()
            );
        }
        Ok(())
    }
}

/// The `n` slowest binaries of a run, one line each.
pub fn print_slowest(record: &RunRecord, n: usize) {
    for t in record.timings.iter().take(n) {
        eprintln!(
            "  {:<28} {:>7.1}s  {}",
            t.name,
            t.seconds,
            if t.passed {
                format!("{} passed", t.tests_passed)
            } else {
                "FAILED".into()
            }
        );
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
}

/// `cargo test --workspace --all-targets --locked --no-run`: builds what `cargo test` would and
/// returns its test executables.
fn build() -> anyhow::Result<Vec<Binary>> {
    eprintln!("building the workspace's tests (cargo test --workspace --all-targets --no-run)...");
    let mut cmd = crate::cargo::command();
    cmd.args([
        "test",
        "--workspace",
        "--all-targets",
        "--locked",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(crate::stack_args::root())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("running cargo test --no-run")?;
    let stdout = child.stdout.take().expect("piped");
    let mut out = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(m) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if m["reason"] != "compiler-artifact" || m["profile"]["test"] != true {
            continue;
        }
        let (Some(exe), Some(target), Some(manifest)) = (
            m["executable"].as_str(),
            m["target"]["name"].as_str(),
            m["manifest_path"].as_str(),
        ) else {
            continue;
        };
        let package_dir = Path::new(manifest)
            .parent()
            .context("a manifest path has a folder")?
            .to_owned();
        // Folder name = package name in this workspace (tidy checks it).
        let package = package_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kinds: Vec<&str> = m["target"]["kind"]
            .as_array()
            .map(|k| k.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let name = match kinds.first().copied() {
            Some("lib" | "rlib" | "proc-macro") => package.clone(),
            Some("bin") => format!("{package}/bin:{target}"),
            Some("bench") => format!("{package}/bench:{target}"),
            Some("example") => format!("{package}/example:{target}"),
            _ => format!("{package}/{target}"),
        };
        out.push(Binary {
            name,
            exe: PathBuf::from(exe),
            package_dir,
            package,
            // Benches are criterion's, run in its test mode without libtest's arguments.
            libtest: !kinds.contains(&"bench"),
        });
    }
    let status = child.wait().context("waiting for cargo test --no-run")?;
    if !status.success() {
        bail!("building the tests failed ({status})");
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// Runs one binary as `cargo test` would, its output to `<logs>/<name>.log`, then printed.
fn run_one(binary: &Binary, test_args: &[String], logs: &Path) -> Timing {
    let log_path = logs.join(format!("{}.log", binary.name.replace(['/', ':'], "-")));
    let began = Instant::now();
    eprintln!("==> {}", binary.name);
    let outcome = (|| -> anyhow::Result<bool> {
        // A new file, not the old one truncated: a process an earlier run left behind may still
        // hold that one open.
        let _ = std::fs::remove_file(&log_path);
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(&binary.exe);
        if binary.libtest {
            cmd.args(test_args);
        }
        let status = cmd
            .current_dir(&binary.package_dir)
            .env("CARGO_MANIFEST_DIR", &binary.package_dir)
            .env("CARGO_MANIFEST_PATH", binary.package_dir.join("Cargo.toml"))
            .env("CARGO_PKG_NAME", &binary.package)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("starting {}", binary.exe.display()))?;
        Ok(status.success())
    })();
    let seconds = began.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let (tests_passed, tests_failed, tests_ignored) = libtest_counts(&text);
    let passed = match outcome {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("{}: {e:#}", binary.name);
            false
        }
    };
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "---- {} ({}) ----\n{}",
            binary.name,
            binary.exe.display(),
            text.trim_end()
        );
        let _ = writeln!(
            err,
            "<== {} {} in {:.1}s",
            binary.name,
            if passed { "passed" } else { "FAILED" },
            seconds
        );
    }
    Timing {
        name: binary.name.clone(),
        seconds,
        passed,
        tests_passed,
        tests_failed,
        tests_ignored,
    }
}

/// Sums libtest's `test result: ok. 7 passed; 0 failed; 1 ignored; ...` lines.
fn libtest_counts(log: &str) -> (u64, u64, u64) {
    let mut counts = (0, 0, 0);
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => counts.0 += n,
                "failed" => counts.1 += n,
                "ignored" => counts.2 += n,
                _ => {}
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::libtest_counts;

    #[test]
    fn libtest_result_lines_are_summed() {
        let log = "running 3 tests\n\
                   test a ... ok\n\
                   test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.50s\n";
        assert_eq!(libtest_counts(log), (6, 1, 1));
        assert_eq!(libtest_counts("Benchmarking x: Success\n"), (0, 0, 0));
    }
}
