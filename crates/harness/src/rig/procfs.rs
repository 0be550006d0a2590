//! CPU and memory of the processes under test, read from `/proc` (as lading's observer does):
//! a component is one process; a service is its process and every descendant (PostgreSQL's
//! backends, LocalStack's workers), so the figures are what the service costs the machine.

use std::collections::HashMap;
use std::time::Instant;

/// One process, tree or group of processes to watch.
#[derive(Clone, Debug)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
    pub scope: Scope,
}

/// Which processes a [`Watched`] name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The process alone (the harness, whose children are watched on their own).
    Process,
    /// The process and all its descendants (a service, a component).
    Tree,
    /// The process's children running the executable named so (the publisher workers, which
    /// come and go with each run).
    Children(&'static str),
}

/// CPU (cores) and resident memory (bytes) of each watched tree at one sample.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub cpu_cores: f64,
    pub rss_bytes: u64,
}

/// Turns successive readings of CPU ticks into cores used since the previous sample.
#[derive(Debug, Default)]
pub struct Observer {
    /// By name and pid: a restarted process starts its own count.
    last: HashMap<(String, u32), (u64, Instant)>,
}

/// `(pid, parent pid, utime + stime ticks, rss pages)` of every process.
fn table() -> Vec<(u32, u32, u64, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let f = runtime::state::stat_fields(pid)?;
        // Fields after the command name: [0] state, [1] ppid, [11] utime, [12] stime, [21] rss.
        let ppid = f.get(1)?.parse().ok()?;
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        let rss = f.get(21)?.parse().ok()?;
        Some((pid, ppid, ticks, rss))
    })
    .collect()
}

/// The pids of `root` and all its descendants in `table`.
fn tree(root: u32, table: &[(u32, u32, u64, u64)]) -> Vec<usize> {
    let mut members = vec![root];
    let mut out = Vec::new();
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        for (index, (pid, ppid, _, _)) in table.iter().enumerate() {
            if *pid == parent {
                out.push(index);
            }
            if *ppid == parent && !members.contains(pid) {
                members.push(*pid);
            }
        }
        i += 1;
    }
    out
}

/// The executable name the kernel keeps for `pid` (at most 15 bytes).
fn comm(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

impl Observer {
    /// Reads every watched tree. CPU is averaged since this tree's previous reading (0 at the
    /// first); a tree whose root is gone reads as nothing.
    pub fn sample(&mut self, watched: &[Watched]) -> HashMap<String, Usage> {
        let table = table();
        let now = Instant::now();
        let hz = clock_ticks_per_second();
        let page = page_size();
        let mut out = HashMap::new();
        for w in watched {
            let members: Vec<usize> = match w.scope {
                Scope::Tree => tree(w.pid, &table),
                Scope::Process => table
                    .iter()
                    .position(|(pid, ..)| *pid == w.pid)
                    .into_iter()
                    .collect(),
                Scope::Children(exe) => (0..table.len())
                    .filter(|i| table[*i].1 == w.pid && comm(table[*i].0).as_deref() == Some(exe))
                    .collect(),
            };
            if members.is_empty() {
                continue;
            }
            let ticks: u64 = members.iter().map(|i| table[*i].2).sum();
            let rss: u64 = members.iter().map(|i| table[*i].3).sum::<u64>() * page;
            let cpu = match self.last.insert((w.name.clone(), w.pid), (ticks, now)) {
                Some((before, at)) if now > at => {
                    ticks.saturating_sub(before) as f64 / hz / (now - at).as_secs_f64()
                }
                _ => 0.0,
            };
            out.insert(
                w.name.clone(),
                Usage {
                    cpu_cores: cpu,
                    rss_bytes: rss,
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_shows_in_its_parents_tree() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let me = Watched {
            name: "me".into(),
            pid: std::process::id(),
            scope: Scope::Tree,
        };
        let shells = Watched {
            name: "shells".into(),
            pid: std::process::id(),
            scope: Scope::Children("sh"),
        };
        let cats = Watched {
            name: "cats".into(),
            pid: std::process::id(),
            scope: Scope::Children("cat"),
        };
        let mut observer = Observer::default();
        let first = observer.sample(&[me.clone(), shells.clone(), cats.clone()]);
        assert!(first["me"].rss_bytes > 1 << 20, "{first:?}");
        assert!(first["shells"].rss_bytes > 0, "{first:?}");
        assert!(!first.contains_key("cats"), "no cat runs: {first:?}");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let second = observer.sample(&[me, shells]);
        child.kill().ok();
        child.wait().ok();
        assert!(
            second["me"].cpu_cores > 0.0,
            "the shell loop's CPU counts for its parent's tree: {second:?}"
        );
        assert!(second["shells"].cpu_cores > 0.0, "{second:?}");
        let gone = Watched {
            name: "gone".into(),
            pid: u32::MAX - 1,
            scope: Scope::Tree,
        };
        assert!(observer.sample(&[gone]).is_empty());
    }
}
