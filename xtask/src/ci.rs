//! `cargo xtask ci`: everything CI checks, in order, with a timing line per step.
//!
//! `.ci/run` and `.github/workflows/ci.yml` call this, and it is the README's test command, so
//! what a contributor runs locally and what CI runs are one thing. Every cargo step builds with
//! the same dependency features (the workspace-hack crate), so the dependencies compile once.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::stack_args::root;

#[derive(clap::Args)]
pub struct Args {
    /// Steps to leave out, by name (repeatable); `--list` shows them.
    #[arg(long, value_name = "STEP")]
    skip: Vec<String>,
    /// Run only these steps, by name (repeatable).
    #[arg(long, value_name = "STEP")]
    only: Vec<String>,
    /// List the steps and exit.
    #[arg(long)]
    list: bool,
    /// The inner loop: formatting, the tests that start no service (unit, property, contract,
    /// tidy, CLI without a stack), and the smoke scenario end to end.
    #[arg(long)]
    quick: bool,
}

/// How a step's command is made: only when it runs (a lint step installs its tools first).
type MakeCommand = Box<dyn FnOnce() -> anyhow::Result<Command>>;

/// One CI step: a name and the command it runs from the checkout.
struct Step {
    name: &'static str,
    what: &'static str,
    command: MakeCommand,
}

fn cargo(args: &'static [&'static str]) -> MakeCommand {
    Box::new(move || {
        let mut cmd = crate::cargo::command();
        cmd.args(args);
        Ok(cmd)
    })
}

fn xtask(args: &'static [&'static str]) -> MakeCommand {
    Box::new(move || {
        let mut cmd = Command::new(std::env::current_exe().context("locating the xtask binary")?);
        cmd.args(args);
        Ok(cmd)
    })
}

/// A tool from the pinned lint venv (`infra/python/lint-tools.txt`), installed on first use.
fn lint(tool: &'static str, args: &'static [&'static str]) -> MakeCommand {
    Box::new(move || {
        let venv = pytools::ensure(&pytools::ToolSet::lint(&root().join("infra/python")))?;
        let mut cmd = Command::new(venv.bin(tool));
        cmd.args(args);
        Ok(cmd)
    })
}

/// checkov evaluates a template's Conditions with its parameters' defaults, so on the template
/// as it is (target `local`) it never sees the `aws` target's resources: it scans this copy too,
/// whose `Target` defaults to `aws`.
fn target_aws_rendering() -> anyhow::Result<std::path::PathBuf> {
    let template = root().join("infra/cloudformation/pipeline.yaml");
    let text = std::fs::read_to_string(&template)
        .with_context(|| format!("reading {}", template.display()))?;
    let local = "  Target:\n    Type: String\n    Default: local\n";
    anyhow::ensure!(
        text.contains(local),
        "{}: the `Target` parameter no longer defaults to `local` as written here; update \
         xtask/src/ci.rs",
        template.display()
    );
    let dir = root().join("target/sluice/lint");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("pipeline-target-aws.yaml");
    std::fs::write(
        &path,
        text.replace(local, "  Target:\n    Type: String\n    Default: aws\n"),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn fmt_step() -> Step {
    Step {
        name: "fmt",
        what: "formatting",
        command: cargo(&["fmt", "--all", "--check"]),
    }
}

fn e2e_smoke_step() -> Step {
    Step {
        name: "e2e-smoke",
        what: "the smoke scenario end to end, marts against the oracle (the README's first command)",
        command: xtask(&["e2e", "--scenario", "scenarios/smoke.toml"]),
    }
}

/// `cargo xtask ci --quick`: minutes, for the inner loop.
fn quick_steps() -> Vec<Step> {
    vec![
        fmt_step(),
        Step {
            name: "test-quick",
            what: "the tests that start no service: unit, property, contract, tidy, CLI without a stack",
            command: xtask(&["test", "--quick"]),
        },
        e2e_smoke_step(),
    ]
}

/// What `.ci/run` runs. Each check lives in one place: every fault kind is proven by
/// `harness/tests/chaos.rs` and `chaos_mixed.rs` (one run per kind, and random mixes), the
/// change log with a killed cdc by `harness/tests/e2e.rs`, the smoke and dirty scenarios' marts
/// by `harness/tests/e2e.rs` and `e2e_properties.rs`, the load test's reports and gates by
/// `xtask/tests/load_cli.rs`; the steps after `test` are what no test binary runs: the
/// commands as a user types them (`e2e` once, on the container provider).
fn steps() -> Vec<Step> {
    vec![
        fmt_step(),
        Step {
            name: "images",
            what: "the container provider's images, built from infra/containers and the pins (reused when unchanged); the tests use them",
            command: xtask(&["images"]),
        },
        Step {
            name: "test",
            what: "the workspace's tests, a few binaries at a time (unit, property, tidy, and the real-stack tests on both providers: every fault kind, the change log, the marts through Airflow's DAG and its failure mail, incremental marts in waves, the consumers' report and docs, load-test's CLI)",
            // Two binaries at a time: the cores are the limit. With three, every binary ran
            // slower (harness/e2e 158 -> 235 s), the step took as long, and RabbitMQ took 25 s
            // to start; with four, batches outlived the test profile's visibility timeout and
            // management calls timed out. Chromium first: a test renders dbt's docs page.
            command: Box::new(|| {
                crate::images::ensure_chromium()?;
                xtask(&["test", "--jobs", "2"])()
            }),
        },
        Step {
            name: "e2e-containers",
            what: "`cargo xtask e2e` as a user types it: the smoke scenario end to end on the container provider",
            command: xtask(&[
                "e2e",
                "--provider",
                "containers",
                "--stack",
                "ci-containers",
                "--scenario",
                "scenarios/smoke.toml",
            ]),
        },
        Step {
            name: "lint-workflow",
            what: "the GitHub workflow, against its schema (check-jsonschema)",
            command: lint(
                "check-jsonschema",
                &[
                    "--builtin-schema",
                    "vendor.github-workflows",
                    ".github/workflows/ci.yml",
                ],
            ),
        },
        Step {
            name: "lint-k8s",
            what: "the publisher's Kubernetes Job, against the project's rules for it (check-jsonschema)",
            command: lint(
                "check-jsonschema",
                &[
                    "--schemafile",
                    "infra/k8s/publisher-job.schema.json",
                    "infra/k8s/publisher-job.yaml",
                ],
            ),
        },
        Step {
            name: "lint-checkov",
            what: "the CloudFormation templates against checkov's security checks and the project's own (infra/checkov), offline, pipeline.yaml for both targets: none may fail (a check that does not apply is skipped in the template, with its reason)",
            command: Box::new(|| {
                let venv =
                    pytools::ensure(&pytools::ToolSet::checkov(&root().join("infra/python")))?;
                let aws = target_aws_rendering()?;
                let mut cmd = Command::new(venv.bin("checkov"));
                cmd.args([
                    "--skip-download",
                    "--compact",
                    "--quiet",
                    "--framework",
                    "cloudformation",
                    // The project's own rules (every queue encrypted, whatever checkov's own
                    // SQS check, which the template skips, would say).
                    "--external-checks-dir",
                    "infra/checkov",
                    "-f",
                    "infra/cloudformation/pipeline.yaml",
                    "-f",
                    "infra/cloudformation/publisher.yaml",
                    "-f",
                ]);
                cmd.arg(aws);
                Ok(cmd)
            }),
        },
        Step {
            name: "lint-cloudformation",
            what: "the CloudFormation templates, with cfn-lint and the project's own rules (infra/cfn-lint: least-privilege component roles, AWS-only resources behind IsAws, the outputs `up` reads in both targets, the ingest visibility timeout over six times the batcher's)",
            command: lint(
                "cfn-lint",
                &[
                    "--append-rules",
                    "infra/cfn-lint",
                    "--",
                    "infra/cloudformation/pipeline.yaml",
                    "infra/cloudformation/publisher.yaml",
                ],
            ),
        },
    ]
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let root = root();
        let all = if self.quick { quick_steps() } else { steps() };
        let names: Vec<&str> = all.iter().map(|s| s.name).collect();
        for name in self.skip.iter().chain(&self.only) {
            if !names.contains(&name.as_str()) {
                bail!("no CI step `{name}`; the steps are: {}", names.join(", "));
            }
        }
        if self.list {
            for step in &all {
                println!("{:<20} {}", step.name, step.what);
            }
            return Ok(());
        }
        let chosen: Vec<Step> = all
            .into_iter()
            .filter(|s| self.only.is_empty() || self.only.iter().any(|o| o == s.name))
            .filter(|s| !self.skip.iter().any(|k| k == s.name))
            .collect();
        let total = chosen.len();
        let started = Instant::now();
        let mut done: Vec<(&str, Duration, bool)> = Vec::new();
        let mut failed = None;
        for (i, step) in chosen.into_iter().enumerate() {
            let began = Instant::now();
            let mut command = (step.command)()?;
            eprintln!(
                "==> [{}/{total}] {}: {} ({})",
                i + 1,
                step.name,
                step.what,
                shown(&command)
            );
            // A Docker engine this run started (`images` starts Sluice's own where none answers)
            // for the steps after it.
            if std::env::var_os("DOCKER_HOST").is_none()
                && let Some(engine) = stack::engine::Engine::detect()
            {
                command.env("DOCKER_HOST", engine.host);
            }
            let status = command
                .current_dir(&root)
                .status()
                .with_context(|| format!("starting step {}", step.name))?;
            let elapsed = began.elapsed();
            eprintln!(
                "<== {} {} in {:.1}s",
                step.name,
                if status.success() { "passed" } else { "FAILED" },
                elapsed.as_secs_f64()
            );
            done.push((step.name, elapsed, status.success()));
            if !status.success() {
                failed = Some((step.name, status));
                break;
            }
        }
        eprintln!("ci steps:");
        for (name, elapsed, ok) in &done {
            eprintln!(
                "  {name:<20} {:>7.1}s  {}",
                elapsed.as_secs_f64(),
                if *ok { "ok" } else { "FAILED" }
            );
        }
        eprintln!(
            "  {:<20} {:>7.1}s",
            "total",
            started.elapsed().as_secs_f64()
        );
        // The slowest test binaries of this run's test step, so a slow test is seen when it
        // lands.
        if done.iter().any(|(name, ..)| name.starts_with("test"))
            && let Ok(path) = crate::test::last_run_path()
            && let Ok(bytes) = std::fs::read(&path)
            && let Ok(record) = serde_json::from_slice::<crate::test::RunRecord>(&bytes)
        {
            eprintln!("slowest test binaries:");
            crate::test::print_slowest(&record, 10);
        }
        match failed {
            Some((name, status)) => bail!("CI step `{name}` failed ({status})"),
            None => Ok(()),
        }
    }
}

/// The command line, for the log.
fn shown(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::iter::once(program)
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}
