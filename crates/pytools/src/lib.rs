//! Python tools in venvs built from the pin files in `infra/python/`.
//!
//! A venv lives in a cache outside the checkout (`$SLUICE_TOOLS_DIR`, else
//! `$XDG_CACHE_HOME/sluice/tools`, else `~/.cache/sluice/tools`) under a name keyed by a hash of
//! its pin files and interpreter, so every clone and every CI run on a machine shares it, and a
//! changed pin file builds a new one. It is built with `uv` (itself pinned in `uv.txt` and
//! installed with pip on first use), under a file lock, and only marked complete at the end: a
//! build that died half-way is started over, never used.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const COMPLETE: &str = ".sluice-complete";

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "no Python interpreter {wanted} found (tried {tried}); install one, or point SLUICE_PYTHON at it"
    )]
    NoPython { wanted: String, tried: String },
    #[error("cannot read pin file {}: {source}", path.display())]
    Pins { path: PathBuf, source: io::Error },
    #[error("{step} failed (full log: {}):\n{tail}", log.display())]
    Step {
        step: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ToolError {
    let context = context.into();
    move |source| ToolError::Io { context, source }
}

/// A set of Python packages installed together into one venv.
#[derive(Clone, Debug)]
pub struct ToolSet {
    /// Short name, part of the venv folder name, e.g. `warehouse-tools`.
    pub name: String,
    /// Requirements file with exact pins.
    pub requirements: PathBuf,
    /// Optional constraints file (`-c`).
    pub constraints: Option<PathBuf>,
    /// Lowest interpreter version that can run the tools, e.g. (3, 11).
    pub min_python: (u32, u32),
}

impl ToolSet {
    /// fakesnow, the Python Snowflake connector and dbt: `infra/python/warehouse-tools.txt`.
    pub fn warehouse(infra_python: &Path) -> Self {
        Self {
            name: "warehouse-tools".into(),
            requirements: infra_python.join("warehouse-tools.txt"),
            constraints: None,
            min_python: (3, 11),
        }
    }

    /// Airflow with the standard and smtp providers, and aiosmtpd: `airflow-tools.txt`.
    pub fn airflow(infra_python: &Path) -> Self {
        Self {
            name: "airflow-tools".into(),
            requirements: infra_python.join("airflow-tools.txt"),
            constraints: None,
            min_python: (3, 11),
        }
    }

    /// checkov, the CloudFormation security checks: `checkov-tools.txt`.
    pub fn checkov(infra_python: &Path) -> Self {
        Self {
            name: "checkov-tools".into(),
            requirements: infra_python.join("checkov-tools.txt"),
            constraints: None,
            min_python: (3, 11),
        }
    }

    /// actionlint (the GitHub workflow) and cfn-lint (CloudFormation): `lint-tools.txt`.
    pub fn lint(infra_python: &Path) -> Self {
        Self {
            name: "lint-tools".into(),
            requirements: infra_python.join("lint-tools.txt"),
            constraints: None,
            min_python: (3, 11),
        }
    }
}

/// A ready venv.
#[derive(Clone, Debug)]
pub struct Venv {
    pub dir: PathBuf,
}

impl Venv {
    /// A program installed in the venv's `bin/`.
    pub fn bin(&self, program: &str) -> PathBuf {
        self.dir.join("bin").join(program)
    }

    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }
}

/// `infra/python/` of this checkout.
pub fn infra_python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/python")
}

/// The shared cache folder for tool venvs.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("sluice").join("tools")
}

/// Returns the tool set's venv, building it first if this machine has none for these pins.
pub fn ensure(tools: &ToolSet) -> Result<Venv, ToolError> {
    ensure_in(&cache_dir(), tools)
}

/// [`ensure`] with an explicit cache folder.
pub fn ensure_in(cache: &Path, tools: &ToolSet) -> Result<Venv, ToolError> {
    let python = find_python(tools.min_python)?;
    let cache = cache.to_owned();
    fs::create_dir_all(&cache).map_err(io_err(format!("creating {}", cache.display())))?;

    let key = &venv_key(tools, &python.version)?;
    let venv = Venv {
        dir: cache.join(format!("{}-{key}", tools.name)),
    };

    if venv.dir.join(COMPLETE).exists() {
        return Ok(venv);
    }
    let lock_path = cache.join(format!("{}-{key}.lock", tools.name));
    let lock =
        File::create(&lock_path).map_err(io_err(format!("creating {}", lock_path.display())))?;
    lock.lock()
        .map_err(io_err(format!("locking {}", lock_path.display())))?;
    // Another process may have built it while we waited for the lock.
    if venv.dir.join(COMPLETE).exists() {
        return Ok(venv);
    }

    let started = Instant::now();
    let progress = Progress::new(format!(
        "installing Python tools `{}` into {} (once per machine and pin file)",
        tools.name,
        venv.dir.display()
    ));
    let log = cache.join(format!("{}-{key}.log", tools.name));
    let mut log_file = File::create(&log).map_err(io_err(format!("creating {}", log.display())))?;

    let uv = ensure_uv(&cache, &python, &progress, &mut log_file, &log)?;
    if venv.dir.exists() {
        fs::remove_dir_all(&venv.dir).map_err(io_err(format!(
            "removing half-built {}",
            venv.dir.display()
        )))?;
    }
    progress.step("creating venv");
    run(
        Command::new(&uv)
            .arg("venv")
            .arg("--python")
            .arg(&python.path)
            .arg(&venv.dir),
        "uv venv",
        &mut log_file,
        &log,
    )?;
    progress.step("installing pinned packages");
    let mut install = Command::new(&uv);
    install
        .args(["pip", "install", "--python"])
        .arg(venv.python())
        .arg("-r")
        .arg(&tools.requirements)
        // Where PYTHONDONTWRITEBYTECODE is set (CI), nothing is ever cached at import time, and
        // every start would compile the imports again (2.9 s vs 1.6 s for dbt's adapter).
        .arg("--compile-bytecode");
    if let Some(c) = &tools.constraints {
        install.arg("-c").arg(c);
    }
    run(&mut install, "uv pip install", &mut log_file, &log)?;
    File::create(venv.dir.join(COMPLETE)).map_err(io_err("marking the venv complete"))?;
    progress.finish(format!(
        "Python tools `{}` ready in {:.1?}",
        tools.name,
        started.elapsed()
    ));
    tracing::info!(venv = %venv.dir.display(), elapsed = ?started.elapsed(), "python tools installed");
    Ok(venv)
}

/// How venvs are built; a change here (a new install flag) must not reuse venvs built before it.
const LAYOUT: &str = "compile-bytecode";

/// What names a venv: its pin files' contents, the interpreter's version and how it is built.
fn venv_key(tools: &ToolSet, python_version: &str) -> Result<String, ToolError> {
    let mut hasher = Sha256::new();
    hasher.update(LAYOUT.as_bytes());
    for file in std::iter::once(&tools.requirements).chain(tools.constraints.as_ref()) {
        let text = fs::read(file).map_err(|source| ToolError::Pins {
            path: file.clone(),
            source,
        })?;
        hasher.update(&text);
    }
    hasher.update(python_version.as_bytes());
    Ok(hex::encode(hasher.finalize())[..12].to_owned())
}

struct Python {
    path: PathBuf,
    version: String,
}

fn find_python(min: (u32, u32)) -> Result<Python, ToolError> {
    let candidates: Vec<String> = match std::env::var("SLUICE_PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec![format!("python{}.{}", min.0, min.1), "python3".into()],
    };
    find_python_among(&candidates, min)
}

fn find_python_among(candidates: &[String], min: (u32, u32)) -> Result<Python, ToolError> {
    for candidate in candidates {
        let out = Command::new(candidate)
            .args([
                "-c",
                "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])",
            ])
            .output();
        let Ok(out) = out else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(path), Some(version)) = (lines.next(), lines.next()) else {
            continue;
        };
        let parsed: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        if out.status.success() && parsed.len() == 2 && (parsed[0], parsed[1]) >= min {
            return Ok(Python {
                path: path.into(),
                version: version.into(),
            });
        }
    }
    Err(ToolError::NoPython {
        wanted: format!(">= {}.{}", min.0, min.1),
        tried: candidates.join(", "),
    })
}

/// `uv` in its own small venv, installed with pip from `uv.txt`.
fn ensure_uv(
    cache: &Path,
    python: &Python,
    progress: &Progress,
    log_file: &mut File,
    log: &Path,
) -> Result<PathBuf, ToolError> {
    let pins = infra_python_dir().join("uv.txt");
    let text = fs::read(&pins).map_err(|source| ToolError::Pins {
        path: pins.clone(),
        source,
    })?;
    let key = &hex::encode(Sha256::digest(&text))[..12];
    let dir = cache.join(format!("uv-{key}"));
    let uv = dir.join("bin").join("uv");
    if dir.join(COMPLETE).exists() {
        return Ok(uv);
    }
    // Tool sets are installed concurrently (during `up`), and they share this uv.
    let lock_path = cache.join(format!("uv-{key}.lock"));
    let lock =
        File::create(&lock_path).map_err(io_err(format!("creating {}", lock_path.display())))?;
    lock.lock()
        .map_err(io_err(format!("locking {}", lock_path.display())))?;
    if dir.join(COMPLETE).exists() {
        return Ok(uv);
    }
    progress.step("installing uv");
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .map_err(io_err(format!("removing half-built {}", dir.display())))?;
    }
    run(
        Command::new(&python.path).args(["-m", "venv"]).arg(&dir),
        "python -m venv (for uv)",
        log_file,
        log,
    )?;
    run(
        Command::new(dir.join("bin").join("pip"))
            .args(["install", "--disable-pip-version-check", "-r"])
            .arg(&pins),
        "pip install uv",
        log_file,
        log,
    )?;
    File::create(dir.join(COMPLETE)).map_err(io_err("marking uv complete"))?;
    Ok(uv)
}

fn run(cmd: &mut Command, step: &str, log_file: &mut File, log: &Path) -> Result<(), ToolError> {
    writeln!(log_file, "$ {cmd:?}").ok();
    let out = cmd
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("starting {step}")))?;
    log_file.write_all(&out.stdout).ok();
    log_file.write_all(&out.stderr).ok();
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::new();
    File::open(log)
        .and_then(|mut f| f.read_to_string(&mut text))
        .ok();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    Err(ToolError::Step {
        step: step.into(),
        log: log.to_owned(),
        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// A spinner on a terminal, plain log lines elsewhere (CI, tests).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(message: String) -> Self {
        if io::IsTerminal::is_terminal(&io::stderr()) {
            let bar = indicatif::ProgressBar::new_spinner().with_message(message);
            bar.enable_steady_tick(Duration::from_millis(120));
            Self(Some(bar))
        } else {
            eprintln!("{message}");
            Self(None)
        }
    }

    fn step(&self, what: &str) {
        match &self.0 {
            Some(bar) => bar.set_prefix(what.to_owned()),
            None => eprintln!("  {what}"),
        }
    }

    fn finish(&self, message: String) {
        match &self.0 {
            Some(bar) => bar.finish_with_message(message),
            None => eprintln!("{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_names_what_was_tried_and_what_to_do() {
        let err = find_python_among(&["/nonexistent/python3.11".into()], (3, 11))
            .err()
            .expect("no such python");
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/python3.11") && text.contains("SLUICE_PYTHON"),
            "{text}"
        );
    }

    #[test]
    fn too_old_an_interpreter_is_not_taken() {
        let err = find_python_among(&["python3".into()], (3, 99))
            .err()
            .expect("no python 3.99 here");
        assert!(err.to_string().contains(">= 3.99"), "{err}");
    }

    #[test]
    fn the_venv_key_follows_the_pins_and_the_interpreter() {
        let dir = std::env::temp_dir().join(format!("pytools-key-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let pins = dir.join("pins.txt");
        fs::write(&pins, "fakesnow==0.12.1\n").unwrap();
        let tools = ToolSet {
            name: "t".into(),
            requirements: pins.clone(),
            constraints: None,
            min_python: (3, 11),
        };
        let a = venv_key(&tools, "3.11").unwrap();
        assert_eq!(a, venv_key(&tools, "3.11").unwrap(), "stable");
        assert_ne!(
            a,
            venv_key(&tools, "3.12").unwrap(),
            "another interpreter, another venv"
        );
        fs::write(&pins, "fakesnow==0.12.2\n").unwrap();
        assert_ne!(
            a,
            venv_key(&tools, "3.11").unwrap(),
            "changed pins, another venv"
        );
        fs::remove_file(&pins).unwrap();
        assert!(matches!(
            venv_key(&tools, "3.11"),
            Err(ToolError::Pins { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
