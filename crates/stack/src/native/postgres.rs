//! A PostgreSQL 15 cluster of the stack's own, run as the `postgres` user (initdb refuses root).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, StackError, io_err};
use crate::process;
use runtime::state::ProcessInfo;

pub(crate) struct Plan {
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Plan {
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/postgres",
            self.user, self.password, self.port
        )
    }
}

/// Server settings every provider that starts PostgreSQL uses: logical replication for the cdc
/// component, commit timestamps for the harness's SCD2 check (when each workload transaction
/// committed), and bounds on what a slot may hold back and how long a silent reader is kept.
pub const SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "logical"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    ("track_commit_timestamp", "on"),
    // A slot nobody reads (a stack left up without the cdc) cannot fill the disk.
    ("max_slot_wal_keep_size", "1GB"),
    // A reader that stops answering is dropped after this; keepalives ask for its position
    // every half of it, which also keeps the slot's confirmed position fresh when idle.
    ("wal_sender_timeout", "10s"),
];

/// [`SETTINGS`] as `postgres` arguments.
pub fn settings_args() -> Vec<String> {
    SETTINGS
        .iter()
        .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")])
        .collect()
}

pub(crate) fn find_bindir(configured: Option<&Path>) -> Result<PathBuf> {
    let ok = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let missing = |looked: String| StackError::MissingBinary {
        what: "PostgreSQL server (initdb, postgres)",
        looked,
        package: "postgresql",
    };
    if let Some(dir) = configured {
        return if ok(dir) {
            Ok(dir.to_owned())
        } else {
            Err(missing(dir.display().to_string()))
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && ok(&dir) {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| ok(p))
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| missing("pg_config --bindir, /usr/lib/postgresql/*/bin".into()))
}

fn postgres_ids() -> Result<(u32, u32)> {
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam with a valid C string; the result is read at once, before any other call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(StackError::MissingBinary {
            what: "the `postgres` system user",
            looked: "getpwnam(\"postgres\")".into(),
            package: "postgresql",
        });
    }
    // SAFETY: non-null pointer returned by getpwnam.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program` as the `postgres` system user when we are root (initdb refuses root), else as
/// ourselves (a developer's laptop, a CI runner).
fn as_postgres(program: &Path) -> Command {
    if !running_as_root() {
        return Command::new(program);
    }
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(program);
    c
}

/// Hands `path` to the `postgres` user when the server will run as that user.
fn give_to_postgres(path: &Path) -> Result<()> {
    if !running_as_root() {
        return Ok(());
    }
    let (uid, gid) = postgres_ids()?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err("chown to postgres"))
}

pub(crate) fn start(plan: &Plan, bindir: &Path) -> Result<ProcessInfo> {
    let data = plan.dir.join("data");
    std::fs::create_dir_all(&plan.dir)
        .map_err(io_err(format!("creating {}", plan.dir.display())))?;
    give_to_postgres(&plan.dir)?;
    let pwfile = plan.dir.join("pwfile");
    std::fs::write(&pwfile, &plan.password).map_err(io_err("writing the password file"))?;
    give_to_postgres(&pwfile)?;
    let log = plan.dir.join("postgres.log");
    if !data.join("PG_VERSION").exists() {
        let out = as_postgres(&bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                &plan.user,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(io_err("running initdb"))?;
        std::fs::write(
            plan.dir.join("initdb.log"),
            [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
        )
        .ok();
        if !out.status.success() {
            return Err(StackError::Exited {
                service: "postgres",
                status: format!("initdb {}", out.status),
                log: plan.dir.join("initdb.log"),
                tail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
    }
    std::fs::remove_file(&pwfile).ok();
    let mut server = as_postgres(&bindir.join("postgres"));
    server
        .arg("-D")
        .arg(&data)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            &plan.port.to_string(),
            "-c",
            "fsync=off",
        ])
        .args(settings_args())
        .arg("-k")
        .arg(&plan.dir);
    process::spawn(server, &log)
}
