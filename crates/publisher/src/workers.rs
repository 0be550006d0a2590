//! Publishers in several processes: the schedule split by key across `publisher` workers that
//! share one start time, each keeping the open-model timing and its own publish-delay
//! histogram, merged here into one report (as OpenMessaging Benchmark's workers and Locust's
//! do).
//!
//! A worker prints JSON lines on stdout: [`Line::Progress`] while it publishes, then one
//! [`Line::Done`] with its report (the histogram in HdrHistogram's V2 encoding) or one
//! [`Line::Failed`].

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use runtime::latency::{new_histogram, unix_micros};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::publish::{Pacing, PublishConfig, PublishProgress, PublishReport};

/// Environment variables a worker reads its shard from (set per task by an ECS RunTask
/// override, or from a Kubernetes Indexed Job's completion index).
pub const SHARD_ENV: &str = "SLUICE_SHARD";
pub const SHARDS_ENV: &str = "SLUICE_SHARDS";
pub const AMQP_URL_ENV: &str = "SLUICE_AMQP_URL";

/// How long after the workers are started their schedule begins: time to start and connect.
const LEAD: Duration = Duration::from_millis(500);

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum Line {
    Progress {
        sent: u64,
        confirmed: u64,
        events: u64,
    },
    Done {
        report: Box<PublishReport>,
        /// The publish-delay histogram, V2-encoded, base64.
        delay: String,
    },
    Failed {
        error: String,
    },
}

impl Line {
    pub fn done(report: PublishReport) -> Self {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&report.delay, &mut bytes)
            .expect("a histogram encodes into memory");
        Line::Done {
            delay: base64::engine::general_purpose::STANDARD.encode(bytes),
            report: Box::new(report),
        }
    }

    pub fn progress(observed: &PublishProgress) -> Self {
        Line::Progress {
            sent: observed.sent.load(Relaxed),
            confirmed: observed.confirmed.load(Relaxed),
            events: observed.events.load(Relaxed),
        }
    }
}

fn decode_delay(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("the delay histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("the delay histogram does not decode: {e:?}"))
}

/// One report from the shards' reports: counts added, histograms merged, the span from the
/// shared start to the last shard's end.
pub fn merge(parts: Vec<PublishReport>) -> PublishReport {
    let mut merged = PublishReport::default();
    let mut delay = new_histogram();
    for part in parts {
        merged.published += part.published;
        merged.events += part.events;
        merged.duplicates += part.duplicates;
        merged.poison += part.poison;
        for (total, n) in merged
            .events_by_source
            .iter_mut()
            .zip(part.events_by_source)
        {
            *total += n;
        }
        merged.bytes += part.bytes;
        merged.elapsed = merged.elapsed.max(part.elapsed);
        merged.scheduled = merged.scheduled.max(part.scheduled);
        merged.behind += part.behind;
        delay
            .add(&part.delay)
            .expect("histograms of one precision add");
        if part.published > 0 {
            merged.first_sent_us = match merged.first_sent_us {
                0 => part.first_sent_us,
                t => t.min(part.first_sent_us),
            };
        }
        merged.last_sent_us = merged.last_sent_us.max(part.last_sent_us);
        merged.schedule_start_us = match merged.schedule_start_us {
            0 => part.schedule_start_us,
            t => t.min(part.schedule_start_us),
        };
        merged.republished += part.republished;
        merged.reconnects += part.reconnects;
    }
    merged.delay = delay;
    merged
}

/// Where the worker binary is, how many to run, and the folder for their scenario and logs.
#[derive(Clone, Debug)]
pub struct Workers {
    pub exe: PathBuf,
    pub count: NonZeroU32,
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "publisher worker {shard} of {count} {problem} (its log: {})",
        log.display()
    )]
    Worker {
        shard: u32,
        count: u32,
        problem: String,
        log: PathBuf,
    },
}

/// The scenario's stream (seed `seed`) published by `workers.count` worker processes, each
/// sending the keys of its shard from one shared start; `observed` is the sum of their
/// progress lines.
pub async fn publish_split(
    workers: &Workers,
    config: &PublishConfig,
    scenario: &synth::Scenario,
    seed: u64,
    observed: &PublishProgress,
    mut progress: impl FnMut(u64),
) -> Result<PublishReport, WorkersError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| WorkersError::Io { what, path, source }
    };
    std::fs::create_dir_all(&workers.dir).map_err(io("creating", &workers.dir))?;
    let scenario_file = workers.dir.join("scenario.toml");
    std::fs::write(&scenario_file, scenario.to_toml()).map_err(io("writing", &scenario_file))?;
    let count = workers.count.get();
    let start_at_us = config
        .start_at_us
        .unwrap_or_else(|| unix_micros() + LEAD.as_micros() as u64);
    let mut children = Vec::new();
    for shard in 0..count {
        let log = workers.dir.join(format!("publisher-{shard}.log"));
        let stderr = std::fs::File::create(&log).map_err(io("creating", &log))?;
        let mut command = Command::new(&workers.exe);
        command
            .arg("--scenario")
            .arg(&scenario_file)
            .args(["--seed", &seed.to_string()])
            .args(["--start-at-us", &start_at_us.to_string()])
            .args(["--confirm-window", &config.confirm_window.to_string()])
            .args(["--warm-up", &format!("{}ms", config.warm_up.as_millis())])
            .args(["--exchange", &config.exchange])
            .env(SHARD_ENV, shard.to_string())
            .env(SHARDS_ENV, count.to_string())
            // In the environment, not on the command line: it holds the password.
            .env(AMQP_URL_ENV, &config.amqp_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        if config.pacing == Pacing::Unpaced {
            command.arg("--unpaced");
        }
        if !config.stamp_publish_time {
            command.arg("--no-publish-time");
        }
        let child = command.spawn().map_err(io("starting", &workers.exe))?;
        children.push((shard, log, child));
    }

    let sent: Vec<[u64; 3]> = vec![[0; 3]; children.len()];
    let sent = std::cell::RefCell::new(sent);
    let publish_one = |(shard, log, mut child): (u32, PathBuf, tokio::process::Child)| {
        let sent = &sent;
        async move {
            let failed = |problem: String| WorkersError::Worker {
                shard,
                count,
                problem,
                log: log.clone(),
            };
            let stdout = child.stdout.take().expect("piped");
            let mut lines = BufReader::new(stdout).lines();
            let mut done = None;
            while let Some(line) = lines
                .next_line()
                .await
                .map_err(|e| failed(format!("could not be read: {e}")))?
            {
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line::Progress {
                        sent: s,
                        confirmed,
                        events,
                    }) => sent.borrow_mut()[shard as usize] = [s, confirmed, events],
                    Ok(Line::Done { mut report, delay }) => {
                        report.delay = decode_delay(&delay).map_err(&failed)?;
                        done = Some(*report);
                    }
                    Ok(Line::Failed { error }) => return Err(failed(format!("failed: {error}"))),
                    Err(e) => return Err(failed(format!("printed {line:?}: {e}"))),
                }
            }
            let status = child
                .wait()
                .await
                .map_err(|e| failed(format!("could not be waited for: {e}")))?;
            match done {
                Some(report) if status.success() => Ok(report),
                _ => Err(failed(format!("ended ({status}) without its report"))),
            }
        }
    };
    let all = futures::future::join_all(children.into_iter().map(publish_one));
    tokio::pin!(all);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let reports = loop {
        tokio::select! {
            reports = &mut all => break reports,
            _ = tick.tick() => {
                let [s, c, e] = sum(&sent.borrow());
                observed.sent.store(s, Relaxed);
                observed.confirmed.store(c, Relaxed);
                observed.events.store(e, Relaxed);
                progress(s);
            }
        }
    };
    let reports = reports.into_iter().collect::<Result<Vec<_>, _>>()?;
    let merged = merge(reports);
    observed.sent.store(merged.published, Relaxed);
    observed.confirmed.store(merged.published, Relaxed);
    observed.events.store(merged.events, Relaxed);
    progress(merged.published);
    Ok(merged)
}

fn sum(parts: &[[u64; 3]]) -> [u64; 3] {
    parts
        .iter()
        .fold([0; 3], |[a, b, c], [x, y, z]| [a + x, b + y, c + z])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(published: u64, first: u64, last: u64, delays_us: &[u64]) -> PublishReport {
        let mut report = PublishReport {
            published,
            events: published - 1,
            poison: 1,
            events_by_source: [1, published - 2, 0],
            bytes: published * 100,
            elapsed: Duration::from_millis(published),
            scheduled: Duration::from_millis(published / 2),
            behind: 1,
            first_sent_us: first,
            last_sent_us: last,
            schedule_start_us: 1_000,
            republished: 2,
            reconnects: 1,
            ..PublishReport::default()
        };
        for d in delays_us {
            report.delay.record(*d).unwrap();
        }
        report
    }

    /// A worker's report crosses the process boundary whole: its histogram included.
    #[test]
    fn a_done_line_carries_the_histogram() {
        let report = part(10, 5_000, 9_000, &[10, 20, 4_000_000]);
        let text = serde_json::to_string(&Line::done(report.clone())).unwrap();
        let Line::Done {
            report: back,
            delay,
        } = serde_json::from_str(&text).unwrap()
        else {
            panic!("{text}")
        };
        let back = PublishReport {
            delay: decode_delay(&delay).unwrap(),
            ..*back
        };
        assert_eq!(back, report);
    }

    /// Counts add up, the histograms merge (so the merged p99 is the stream's, not an average
    /// of the workers'), and the span runs from the earliest send to the latest.
    #[test]
    fn shard_reports_merge_into_the_whole_stream() {
        let slow = part(100, 5_000, 90_000, &[50_000; 10]);
        let fast = part(300, 2_000, 80_000, &[100; 990]);
        let merged = merge(vec![slow, fast]);
        assert_eq!(merged.published, 400);
        assert_eq!(merged.events, 398);
        assert_eq!(merged.poison, 2);
        assert_eq!(merged.events_by_source, [2, 396, 0]);
        assert_eq!(merged.bytes, 40_000);
        assert_eq!(merged.elapsed, Duration::from_millis(300));
        assert_eq!(merged.scheduled, Duration::from_millis(150));
        assert_eq!(
            (merged.behind, merged.republished, merged.reconnects),
            (2, 4, 2)
        );
        assert_eq!((merged.first_sent_us, merged.last_sent_us), (2_000, 90_000));
        assert_eq!(merged.schedule_start_us, 1_000);
        assert_eq!(merged.delay.len(), 1_000);
        // 1 % of the sends were 50 ms late: p99 lies at the fast ones, p99.5 at the slow.
        assert!(merged.delay.value_at_quantile(0.99) < 200);
        assert!(merged.delay.value_at_quantile(0.995) > 40_000);
    }
}
