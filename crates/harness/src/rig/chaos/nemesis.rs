//! The nemesis: carries out a fault schedule against the running pipeline, on time, and heals
//! every fault it started; and the tracker that watches the backlog and RAW meanwhile, from
//! which each fault's recovery time and the duplicates it caused are read afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rawfiles::ObjectNotice;
use stack::{StackName, State};
use synth::Component;
use synth::chaos::{Fault, FaultKind, OutageMode, Target};

use super::proxy::{FaultProxy, Toxic};
use crate::rig::components::{ComponentOptions, Components};
use crate::rig::queues::Queues;
use crate::rig::warehouse;

/// Fault proxies in front of the services the schedule cuts off.
#[derive(Default)]
pub struct Proxies {
    rabbitmq: Option<FaultProxy>,
    localstack: Option<FaultProxy>,
    fakesnow: Option<FaultProxy>,
}

fn address(url: &str) -> Option<std::net::SocketAddr> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    format!("{host}:{port}").parse().ok()
}

/// `url` with its port replaced.
fn through(url: &str, proxy: &FaultProxy) -> String {
    let mut u = url::Url::parse(url).expect("a URL from the stack's state");
    let _ = u.set_port(Some(proxy.addr().port()));
    u.to_string().trim_end_matches('/').to_owned()
}

impl Proxies {
    /// A proxy for each service an outage in `faults` targets.
    pub async fn for_faults(state: &State, faults: &[Fault]) -> std::io::Result<Self> {
        let wanted = |t: Target| {
            faults
                .iter()
                .any(|f| f.kind == FaultKind::Outage && f.target == t)
        };
        let start = |url: Option<&str>| {
            let upstream = url.and_then(address);
            async move {
                match upstream {
                    Some(a) => FaultProxy::start(a).await.map(Some),
                    None => Ok(None),
                }
            }
        };
        Ok(Self {
            rabbitmq: if wanted(Target::Rabbitmq) {
                start(Some(&state.rabbitmq.amqp_url)).await?
            } else {
                None
            },
            localstack: if wanted(Target::Localstack) {
                start(state.aws.endpoint_url.as_deref()).await?
            } else {
                None
            },
            fakesnow: if wanted(Target::Fakesnow) {
                start(state.snowflake.base_url.as_deref()).await?
            } else {
                None
            },
        })
    }

    /// The components' endpoints through the proxies.
    pub fn options(&self, state: &State, mut options: ComponentOptions) -> ComponentOptions {
        if let Some(p) = &self.rabbitmq {
            options.amqp_url = Some(through(&state.rabbitmq.amqp_url, p));
        }
        if let (Some(p), Some(url)) = (&self.localstack, &state.aws.endpoint_url) {
            options.aws_endpoint_url = Some(through(url, p));
        }
        if let (Some(p), Some(url)) = (&self.fakesnow, &state.snowflake.base_url) {
            options.snowflake_url = Some(through(url, p));
        }
        options
    }

    fn get(&self, target: Target) -> Option<&FaultProxy> {
        match target {
            Target::Rabbitmq => self.rabbitmq.as_ref(),
            Target::Localstack => self.localstack.as_ref(),
            Target::Fakesnow => self.fakesnow.as_ref(),
            _ => None,
        }
    }
}

/// One fault as it happened.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultRecord {
    pub fault: Fault,
    pub description: String,
    /// Seconds from the schedule's start.
    pub started_at_s: f64,
    pub healed_at_s: f64,
    /// From the heal until the backlog was back to its level before the fault.
    pub recovered_after_s: Option<f64>,
    /// Messages waiting between the hops just before the fault, and at most during it.
    pub backlog_before: u64,
    pub backlog_peak: u64,
    /// Rows in RAW beyond one per event, added from the fault's start until it recovered.
    pub duplicates_in_raw: u64,
    /// What the fault did, when worth saying (a crash that happened, notices sent).
    pub note: Option<String>,
}

impl std::fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = format!("{:.1}s-{:.1}s", self.started_at_s, self.healed_at_s);
        write!(
            f,
            "{span:>13} {}: backlog {} before, {} at most; ",
            self.description, self.backlog_before, self.backlog_peak
        )?;
        match self.recovered_after_s {
            Some(s) => write!(f, "recovered {s:.1}s after the heal")?,
            None => write!(f, "backlog never back to its level")?,
        }
        write!(f, "; {} duplicate rows in RAW", self.duplicates_in_raw)?;
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// The run's problem lines for faults that could not be applied or healed.
pub fn problems(records: &[FaultRecord]) -> Vec<String> {
    records
        .iter()
        .filter_map(|f| {
            let note = f.note.as_deref()?;
            note.contains("could not")
                .then(|| format!("fault {}: {note}", f.description))
        })
        .collect()
}

/// A look at the backlog and RAW.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Look {
    pub t: f64,
    /// Messages waiting in the source queues, the ingest queue and the notify queue.
    pub backlog: u64,
    pub raw_rows: u64,
    pub raw_distinct: u64,
}

/// Looks at the backlog and RAW every half second until told to stop.
#[derive(Default)]
pub struct Tracker {
    pub looks: Vec<Look>,
    /// Its own connection: one connection answers one statement at a time, and the drain's
    /// probes run meanwhile.
    sf: Option<snowflake::Client>,
}

impl Tracker {
    /// A tracker with its own warehouse connection (none, and no looks, without a schedule).
    pub async fn connect(
        config: &snowflake::Config,
        faults: &[Fault],
    ) -> Result<Self, snowflake::Error> {
        if faults.is_empty() {
            return Ok(Self::default());
        }
        let sf = snowflake::Client::connect(config.clone()).await?;
        Ok(Self {
            looks: Vec::new(),
            sf: Some(sf),
        })
    }

    async fn look(&mut self, started: Instant, queues: &Queues) {
        let Some(sf) = &self.sf else { return };
        // Both landing tables (the change log's copies count too), one statement at a time.
        let raw = async {
            let stream = warehouse::raw_count(sf, "EVENTS_STREAM").await?;
            let changes = warehouse::raw_count(sf, "CDC_CHANGES").await?;
            Ok::<_, warehouse::WarehouseError>(warehouse::RawCount {
                rows: stream.rows + changes.rows,
                distinct_events: stream.distinct_events + changes.distinct_events,
            })
        };
        let (depths, raw) = tokio::join!(queues.depths(), raw);
        // A probe that does not answer (the broker restarting) is left out.
        if let (Ok(d), Ok(raw)) = (depths, raw) {
            self.looks.push(Look {
                t: started.elapsed().as_secs_f64(),
                backlog: d.rabbit_ready
                    + d.ingest.visible
                    + d.ingest.in_flight
                    + d.notify.visible
                    + d.notify.in_flight,
                raw_rows: raw.rows,
                raw_distinct: raw.distinct_events,
            });
        }
    }

    pub async fn run_until(
        &mut self,
        done: &tokio::sync::Notify,
        started: Instant,
        queues: &Queues,
    ) {
        if self.sf.is_none() {
            return;
        }
        let stop = done.notified();
        tokio::pin!(stop);
        loop {
            self.look(started, queues).await;
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Fills in what the looks say about each fault: the backlog before and at its peak, how
    /// long after the heal it was back, and the duplicate rows RAW gained meanwhile.
    pub fn complete(&self, records: &mut [FaultRecord]) {
        for r in records {
            let before = self
                .looks
                .iter()
                .rev()
                .find(|l| l.t <= r.started_at_s)
                .copied()
                .unwrap_or_default();
            r.backlog_before = before.backlog;
            r.backlog_peak = self
                .looks
                .iter()
                .filter(|l| {
                    l.t >= r.started_at_s && l.t <= r.healed_at_s.max(r.started_at_s) + 30.0
                })
                .map(|l| l.backlog)
                .max()
                .unwrap_or(0);
            let settled = before.backlog + (before.backlog / 2).max(10);
            let back = self
                .looks
                .iter()
                .find(|l| l.t >= r.healed_at_s && l.backlog <= settled);
            r.recovered_after_s = back.map(|l| (l.t - r.healed_at_s).max(0.0));
            if let Some(back) = back {
                let dupes = |l: &Look| l.raw_rows.saturating_sub(l.raw_distinct);
                r.duplicates_in_raw = dupes(back).saturating_sub(dupes(&before));
            }
        }
    }
}

/// How long past its scheduled end a crash-after-put waits for the armed batcher's crash, a
/// partial-failure for its first failed records, and a duplicate-notice for enough loaded files.
const CRASH_WAIT: Duration = Duration::from_secs(20);

/// What the nemesis needs to reach, from the run's session. `root` and `stack` name the state
/// file for what changes while the run goes on: a killed and restarted broker's PID, which the
/// stack records there as it spawns the new node.
pub struct Targets<'a> {
    pub root: PathBuf,
    pub stack: StackName,
    pub state: &'a State,
    pub warehouse: &'a snowflake::Config,
    pub proxies: &'a Proxies,
    pub sqs: &'a aws_sdk_sqs::Client,
}

fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) on the negated PID of a service's process group, which the stack started
    // in a group of its own; the pid comes from the stack's state.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

fn service_pid(targets: &Targets<'_>, target: Target) -> Option<u32> {
    let state = State::load(&targets.root, &targets.stack).ok()?;
    let p = match target {
        Target::Rabbitmq => state.rabbitmq.process,
        Target::Postgres => state.postgres.process,
        Target::Localstack => state.aws.process,
        Target::Fakesnow => state.snowflake.process,
        _ => None,
    }?;
    p.is_alive().then_some(p.pid)
}

/// Runs the schedule (offsets from `started`): each fault applied at its start and healed at
/// its end, faults on different targets overlapping as scheduled. Actions run one at a time in
/// time order, so one that takes long (a broker start, waiting for a crash) delays the next;
/// the records say when each really happened. Every fault it started is healed.
pub async fn run(
    faults: &[Fault],
    started: Instant,
    components: &mut Components,
    targets: &Targets<'_>,
    progress: &mut dyn FnMut(&str),
) -> Vec<FaultRecord> {
    let steps = timeline(faults);
    let mut records: Vec<FaultRecord> = faults
        .iter()
        .map(|fault| FaultRecord {
            fault: fault.clone(),
            description: fault.describe(),
            started_at_s: 0.0,
            healed_at_s: 0.0,
            recovered_after_s: None,
            backlog_before: 0,
            backlog_peak: 0,
            duplicates_in_raw: 0,
            note: None,
        })
        .collect();
    let mut applied = vec![false; faults.len()];
    for Step {
        at,
        heal: is_heal,
        fault: i,
    } in steps
    {
        let fault = &faults[i];
        tokio::time::sleep_until((started + at).into()).await;
        let record = &mut records[i];
        let outcome = if is_heal {
            if !applied[i] {
                continue;
            }
            let r = heal(fault, components, targets).await;
            record.healed_at_s = started.elapsed().as_secs_f64();
            if fault.end > fault.start {
                progress(&format!("chaos: healed {} {}", fault.kind, fault.target));
            }
            r.map_err(|e| format!("could not heal: {e}"))
        } else {
            record.started_at_s = started.elapsed().as_secs_f64();
            progress(&format!("chaos: {}", fault.describe()));
            components.disturb();
            applied[i] = true;
            apply(fault, components, targets)
                .await
                .map_err(|e| format!("could not apply: {e}"))
        };
        let more = match outcome {
            Ok(more) => more,
            Err(e) => Some(e),
        };
        if let Some(more) = more {
            record.note = Some(match record.note.take() {
                Some(n) => format!("{n}; {more}"),
                None => more,
            });
        }
    }
    records
}

/// One action of the schedule: apply or heal fault number `fault` at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    at: Duration,
    heal: bool,
    fault: usize,
}

/// The schedule as actions in time order. At equal times: heals of lasting faults first (a
/// target is then free for its next fault), then applies, then the heals of instant faults
/// (after their own apply).
fn timeline(faults: &[Fault]) -> Vec<Step> {
    let mut steps: Vec<(u8, Step)> = Vec::with_capacity(faults.len() * 2);
    for (i, f) in faults.iter().enumerate() {
        let apply = Step {
            at: f.start,
            heal: false,
            fault: i,
        };
        let heal = Step {
            at: f.end,
            heal: true,
            fault: i,
        };
        steps.push((1, apply));
        steps.push((if f.end > f.start { 0 } else { 2 }, heal));
    }
    steps.sort_by_key(|&(order, s)| (s.at, order, s.fault));
    steps.into_iter().map(|(_, s)| s).collect()
}

fn component(fault: &Fault) -> Component {
    fault
        .target
        .component()
        .expect("validated: this kind targets a component")
}

async fn apply(
    fault: &Fault,
    components: &mut Components,
    targets: &Targets<'_>,
) -> Result<Option<String>, String> {
    match fault.kind {
        FaultKind::Kill => {
            components.kill(component(fault)).await;
            Ok(None)
        }
        FaultKind::Pause => {
            match fault.target.component() {
                Some(c) => components.freeze(c, true),
                None => {
                    let pid = service_pid(targets, fault.target).ok_or_else(|| {
                        format!("no running {} in the stack's state", fault.target)
                    })?;
                    signal_group(pid, libc::SIGSTOP);
                }
            }
            Ok(None)
        }
        FaultKind::BrokerRestart => {
            let (root, stack) = (targets.root.clone(), targets.stack.clone());
            tokio::task::spawn_blocking(move || stack::kill_broker(&root, &stack))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
        FaultKind::CrashAfterPut => {
            components.kill(Component::Batcher).await;
            components
                .restart(Component::Batcher, &["--fault", "crash-after-put"], true)
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
        FaultKind::PartialFailure => {
            components.kill(Component::Batcher).await;
            components
                .restart(Component::Batcher, &["--fault", "fail-part"], false)
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
        FaultKind::DuplicateNotice => duplicate_notices(fault.count, targets).await.map(Some),
        FaultKind::Outage => {
            let proxy = targets
                .proxies
                .get(fault.target)
                .ok_or_else(|| format!("no proxy in front of {}", fault.target))?;
            proxy.set(match (fault.mode, fault.latency) {
                (Some(OutageMode::Refuse), _) => Toxic::Refuse,
                (Some(OutageMode::Reset), _) => Toxic::Reset,
                (Some(OutageMode::Blackhole), _) => Toxic::Blackhole,
                (Some(OutageMode::Latency), Some(l)) => Toxic::Latency(l),
                _ => return Err("an outage without its mode".into()),
            });
            Ok(None)
        }
    }
}

async fn heal(
    fault: &Fault,
    components: &mut Components,
    targets: &Targets<'_>,
) -> Result<Option<String>, String> {
    match fault.kind {
        FaultKind::Kill => components
            .restart(component(fault), &[], false)
            .map(|()| None)
            .map_err(|e| e.to_string()),
        FaultKind::Pause => {
            match fault.target.component() {
                Some(c) => components.freeze(c, false),
                None => {
                    if let Some(pid) = service_pid(targets, fault.target) {
                        signal_group(pid, libc::SIGCONT);
                    }
                }
            }
            Ok(None)
        }
        FaultKind::BrokerRestart => stack::start_broker_again(&targets.root, &targets.stack)
            .await
            .map(|_| None)
            .map_err(|e| e.to_string()),
        FaultKind::CrashAfterPut => {
            // The armed batcher crashes at its first put; give it time to make one (a batcher
            // just started, or one facing an empty queue, may not have yet).
            let deadline = Instant::now() + CRASH_WAIT;
            while !components.batcher_crashed() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let crashed = components.batcher_crashed();
            components.kill(Component::Batcher).await;
            components
                .restart(Component::Batcher, &[], false)
                .map_err(|e| e.to_string())?;
            Ok(Some(if crashed {
                "the batcher crashed after a put, before its notice".into()
            } else {
                "the batcher made no put while armed; restarted unarmed".into()
            }))
        }
        FaultKind::PartialFailure => {
            // Armed until it has failed part of a batch (a batcher just started, or one facing
            // an empty queue, may not have yet): its counters reach its file within seconds.
            let deadline = Instant::now() + CRASH_WAIT;
            let failed = |c: &mut Components| {
                c.own_metrics(Component::Batcher)
                    .batcher
                    .map_or(0, |b| b.failed_records)
            };
            while failed(components) == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let failed = failed(components);
            components.kill(Component::Batcher).await;
            components
                .restart(Component::Batcher, &[], false)
                .map_err(|e| e.to_string())?;
            Ok(Some(format!(
                "the batcher reported {failed} records failed, unwritten; restarted unarmed"
            )))
        }
        FaultKind::DuplicateNotice => Ok(None),
        FaultKind::Outage => {
            if let Some(p) = targets.proxies.get(fault.target) {
                p.set(Toxic::Pass);
            }
            Ok(None)
        }
    }
}

/// Sends `count` notices again for files the pipe has already loaded, as SNS would on a
/// redelivery: the pipe must skip every one.
async fn duplicate_notices(count: u32, targets: &Targets<'_>) -> Result<String, String> {
    let output = |key: &str| {
        targets
            .state
            .aws
            .outputs
            .get(key)
            .cloned()
            .ok_or_else(|| format!("no CloudFormation output {key}"))
    };
    let (bucket, queue) = (output("BucketName")?, output("SnowpipeNotifyQueueUrl")?);
    // A connection of its own: the drain and the tracker use theirs meanwhile.
    let sf = snowflake::Client::connect(targets.warehouse.clone())
        .await
        .map_err(|e| e.to_string())?;
    // The fault resends `count` notices of loaded files: on a slow machine fewer may be loaded
    // when it fires, so it waits (bounded) for as many as it was asked for.
    let deadline = tokio::time::Instant::now() + CRASH_WAIT;
    let files = loop {
        let files = warehouse::first_loaded_files(&sf, count)
            .await
            .map_err(|e| e.to_string())?;
        if files.len() >= count as usize || tokio::time::Instant::now() >= deadline {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut sent = 0;
    for (key, etag) in files {
        let notice = ObjectNotice {
            bucket: bucket.clone(),
            key,
            size: 0,
            etag,
            event_time: Some(chrono::Utc::now()),
        };
        targets
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(rawfiles::notice::s3_event_json(&notice, chrono::Utc::now()))
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        sent += 1;
    }
    Ok(format!("{sent} notices of loaded files sent again"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: f64, heal: f64) -> FaultRecord {
        FaultRecord {
            fault: Fault {
                entry: 0,
                occurrence: 0,
                kind: FaultKind::Kill,
                target: Target::Relay,
                start: Duration::from_secs_f64(start),
                end: Duration::from_secs_f64(heal),
                mode: None,
                latency: None,
                count: 0,
            },
            description: String::new(),
            started_at_s: start,
            healed_at_s: heal,
            recovered_after_s: None,
            backlog_before: 0,
            backlog_peak: 0,
            duplicates_in_raw: 0,
            note: None,
        }
    }

    fn look(t: f64, backlog: u64, rows: u64, distinct: u64) -> Look {
        Look {
            t,
            backlog,
            raw_rows: rows,
            raw_distinct: distinct,
        }
    }

    #[test]
    fn faults_overlap_as_scheduled_and_a_target_is_healed_before_its_next_fault() {
        let fault = |kind, target, start: u64, end: u64| Fault {
            start: Duration::from_secs(start),
            end: Duration::from_secs(end),
            kind,
            target,
            ..record(0.0, 0.0).fault
        };
        let faults = [
            fault(FaultKind::Kill, Target::Relay, 2, 5),
            fault(FaultKind::Pause, Target::Batcher, 3, 4),
            fault(FaultKind::DuplicateNotice, Target::Pipe, 5, 5),
            fault(FaultKind::Kill, Target::Relay, 5, 7),
        ];
        let order: Vec<(u64, bool, usize)> = timeline(&faults)
            .into_iter()
            .map(|s| (s.at.as_secs(), s.heal, s.fault))
            .collect();
        assert_eq!(
            order,
            [
                (2, false, 0),
                (3, false, 1),
                (4, true, 1),
                (5, true, 0),
                (5, false, 2),
                (5, false, 3),
                (5, true, 2),
                (7, true, 3),
            ],
            "the pause runs inside the kill; the relay is restarted before it is killed again; \
             an instant fault is healed after it is applied"
        );
    }

    #[test]
    fn a_fault_not_carried_out_fails_the_run() {
        let mut ok = record(1.0, 2.0);
        ok.note = Some("5 notices of loaded files sent again".into());
        let mut failed = record(3.0, 4.0);
        failed.description = "pause fakesnow at 3.0s for 1.0s".into();
        failed.note = Some("could not apply: no running fakesnow in the stack's state".into());
        let mut unhealed = record(5.0, 6.0);
        unhealed.note = Some("crashed; could not heal: broker start timed out".into());
        let lines = problems(&[ok, failed, unhealed]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("fault pause fakesnow at 3.0s for 1.0s: could not apply"));
    }

    #[test]
    fn recovery_is_the_time_from_the_heal_to_the_backlog_back_at_its_level() {
        let tracker = Tracker {
            sf: None,
            looks: vec![
                look(0.5, 20, 100, 100),
                look(1.5, 25, 150, 150),
                look(3.0, 400, 160, 160),
                look(4.0, 600, 170, 170),
                look(5.0, 300, 400, 390),
                look(6.0, 30, 700, 680),
                look(7.0, 20, 800, 780),
            ],
        };
        let mut records = [record(2.0, 4.0), record(6.5, 6.5)];
        tracker.complete(&mut records);
        let r = &records[0];
        assert_eq!((r.backlog_before, r.backlog_peak), (25, 600));
        assert_eq!(r.recovered_after_s, Some(2.0), "back under 25 + 12 at 6 s");
        assert_eq!(r.duplicates_in_raw, 20);
        assert_eq!(records[1].recovered_after_s, Some(0.5));
        let mut never = [record(2.0, 4.0)];
        Tracker {
            sf: None,
            looks: vec![look(1.0, 5, 0, 0), look(5.0, 900, 0, 0)],
        }
        .complete(&mut never);
        assert_eq!(never[0].recovered_after_s, None);
    }
}
