//! dbt processes kept between runs: `infra/dbt/invoke.py --serve`, one per warehouse, so a test
//! binary or a load test that runs dbt after every run imports dbt once and parses a project
//! only when it changed, rather than both every time (6 s of a 17 s dbt step on a 2-core
//! machine). Another project on the same warehouse (a test's mutant) is parsed by the same
//! process.
//!
//! A request is one JSON line on the worker's stdin, the answer one line on its stdout once the
//! summary file is written; dbt's own output goes to the request's log. A worker that dies or
//! answers nonsense is dropped (killed) and the next request starts a new one.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

/// What a worker is started with: a request for another warehouse needs a worker of its own.
#[derive(Clone, Debug)]
pub(crate) struct WorkerSpec {
    pub python: PathBuf,
    pub script: PathBuf,
    /// The warehouse's connection (the profile reads it from the environment).
    pub env: Vec<(&'static str, String)>,
    /// Where the process's own output goes (a request's goes to the request's log): the first
    /// requester's folder.
    pub log: PathBuf,
}

impl WorkerSpec {
    fn same_worker(&self, other: &WorkerSpec) -> bool {
        (&self.python, &self.script, &self.env) == (&other.python, &other.script, &other.env)
    }
}

pub(crate) struct Request<'a> {
    pub project_dir: &'a Path,
    pub target_path: &'a Path,
    pub log_dir: &'a Path,
    pub commands: &'a [&'a str],
    pub vars: &'a str,
    pub summary: &'a Path,
    pub log: &'a Path,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum WorkerFailure {
    /// Starting the worker, or waiting for the one that died, failed.
    Io(std::io::Error),
    /// The worker exited (or was killed after a garbled answer); its stderr is in `log`.
    Died { status: ExitStatus, log: PathBuf },
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Workers kept at once (a process that uses more stacks stops the least recently used).
const KEPT: usize = 2;

type Slot = Arc<Mutex<Option<Worker>>>;

static WORKERS: Mutex<Vec<(WorkerSpec, Slot)>> = Mutex::new(Vec::new());

/// Sends `request` to the worker for `spec` (starting it if there is none) and waits for its
/// answer. Blocking: call it from `spawn_blocking`.
pub(crate) fn call(spec: &WorkerSpec, request: &Request<'_>) -> Result<(), WorkerFailure> {
    let slot = slot_for(spec);
    let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
    // A kept worker that exited while idle is replaced, so its death fails no request.
    if let Some(idle) = guard.as_mut()
        && !matches!(idle.child.try_wait(), Ok(None))
    {
        *guard = None;
    }
    if guard.is_none() {
        *guard = Some(start(spec).map_err(WorkerFailure::Io)?);
    }
    let worker = guard.as_mut().expect("started above");
    let line = serde_json::json!({
        "project_dir": request.project_dir,
        "target_path": request.target_path,
        "log_dir": request.log_dir,
        "commands": request.commands,
        "vars": request.vars,
        "out": request.summary,
        "log": request.log,
    });
    let sent = writeln!(worker.stdin, "{line}").and_then(|()| worker.stdin.flush());
    let mut answer = String::new();
    let answered = sent.and_then(|()| worker.stdout.read_line(&mut answer));
    match answered {
        Ok(n) if n > 0 && answer.contains("\"done\"") => Ok(()),
        _ => {
            let mut dead = guard.take().expect("present");
            let _ = dead.child.kill();
            let status = dead.child.wait().map_err(WorkerFailure::Io)?;
            Err(WorkerFailure::Died {
                status,
                log: dead.log.clone(),
            })
        }
    }
}

fn slot_for(spec: &WorkerSpec) -> Slot {
    let mut workers = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = workers.iter().position(|(s, _)| s.same_worker(spec)) {
        // Most recently used last.
        let entry = workers.remove(i);
        let slot = entry.1.clone();
        workers.push(entry);
        return slot;
    }
    while workers.len() >= KEPT {
        // Dropping the last handle stops the worker; one in use finishes its request first.
        workers.remove(0);
    }
    let slot: Slot = Arc::new(Mutex::new(None));
    workers.push((spec.clone(), slot.clone()));
    slot
}

fn start(spec: &WorkerSpec) -> std::io::Result<Worker> {
    if let Some(dir) = spec.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let stderr = std::fs::File::create(&spec.log)?;
    let mut child = Command::new(&spec.python)
        .arg(&spec.script)
        .arg("--serve")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    Ok(Worker {
        child,
        stdin,
        stdout,
        log: spec.log.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in worker that answers one request, then exits (a dbt process that died idle).
    fn one_shot_worker(dir: &Path) -> WorkerSpec {
        let script = dir.join("one-shot.sh");
        std::fs::write(&script, "read line\necho '{\"done\": \"x\"}'\n").unwrap();
        WorkerSpec {
            python: PathBuf::from("/bin/sh"),
            script,
            env: vec![("SLUICE_TEST_WORKER", dir.display().to_string())],
            log: dir.join("worker.log"),
        }
    }

    #[test]
    fn a_worker_that_died_idle_is_replaced_and_fails_no_request() {
        let dir = std::env::temp_dir().join(format!("sluice-dbt-worker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = one_shot_worker(&dir);
        let log = dir.join("request.log");
        let request = Request {
            project_dir: &dir,
            target_path: &dir,
            log_dir: &dir,
            commands: &["run"],
            vars: "{}",
            summary: &dir.join("summary.json"),
            log: &log,
        };
        call(&spec, &request).expect("the first request is answered");
        std::thread::sleep(std::time::Duration::from_millis(300));
        call(&spec, &request).expect("a new worker answers the second");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
