//! The time series of a load test, one point per second: cumulative events through each hop
//! (published, forwarded, written, loaded), the depth of every queue (RabbitMQ's from the
//! management API, SQS's from queue attributes), and CPU and RSS of every component and every
//! service process tree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use stack::State;

use crate::rig::components::{Component, MetricsReader};
use crate::rig::procfs::{Observer, Scope, Usage, Watched};
use crate::rig::publish::PublishProgress;
use crate::rig::queues::Queues;

/// One point of the series.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Seconds since the run's clock started.
    pub t: f64,
    /// Cumulative counts: bodies sent to the broker, events SQS accepted from the relay, events
    /// written into objects by the batcher, rows the pipe loaded into RAW.
    pub published: u64,
    pub forwarded: u64,
    pub written: u64,
    pub loaded: u64,
    /// Messages waiting (ready + unacknowledged, or visible + in flight) per queue.
    pub queues: BTreeMap<String, u64>,
    /// CPU (cores) and resident memory per process tree.
    pub usage: BTreeMap<String, Usage>,
}

/// The RabbitMQ queues the series follows.
const RABBIT_QUEUES: [&str; 4] = ["cards", "orders", "manufacturing", "dead-letter"];

#[derive(serde::Deserialize)]
struct MgmtQueue {
    name: String,
    #[serde(default)]
    messages_ready: u64,
    #[serde(default)]
    messages_unacknowledged: u64,
}

/// The stack's service processes, by the names the series use.
fn services(state: &State) -> [(&'static str, Option<&stack::ProcessInfo>); 4] {
    [
        ("rabbitmq", state.rabbitmq.process.as_ref()),
        ("postgres", state.postgres.process.as_ref()),
        ("localstack", state.aws.process.as_ref()),
        ("fakesnow", state.snowflake.process.as_ref()),
    ]
}

pub struct Sampler {
    http: reqwest::Client,
    management_url: String,
    user: String,
    password: String,
    observer: Observer,
    watched: Vec<Watched>,
    /// The stack's state file, read again before each point: a restarted service (the broker
    /// after a restart fault) has a new PID there, and its series goes on under its name.
    state_file: std::path::PathBuf,
    started: Instant,
    pub samples: Vec<Sample>,
}

impl Sampler {
    /// Watches the stack's service processes; components are added with [`Sampler::watch`].
    pub fn new(state: &State, started: Instant) -> Self {
        let mut watched = Vec::new();
        for (name, process) in services(state) {
            if let Some(p) = process {
                watched.push(Watched {
                    name: name.into(),
                    pid: p.pid,
                    scope: Scope::Tree,
                });
            }
        }
        // The load generator itself (publisher, consumers of the baselines, this sampler), and
        // its publisher workers when the stream is split across processes.
        watched.push(Watched {
            name: "harness".into(),
            pid: std::process::id(),
            scope: Scope::Process,
        });
        watched.push(Watched {
            name: "publishers".into(),
            pid: std::process::id(),
            scope: Scope::Children("publisher"),
        });
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client"),
            management_url: state.rabbitmq.management_url.clone(),
            user: state.rabbitmq.user.clone(),
            password: state.rabbitmq.password.clone(),
            observer: Observer::default(),
            watched,
            state_file: state.dir.join("state.json"),
            started,
            samples: Vec::new(),
        }
    }

    /// Seconds on the series' clock.
    /// The instant the series' clock started.
    pub fn clock(&self) -> Instant {
        self.started
    }

    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn watch(&mut self, components: &[(Component, u32)]) {
        self.watched
            .retain(|w| !Component::ALL.iter().any(|c| c.name() == w.name));
        for (component, pid) in components {
            self.watched.push(Watched {
                name: component.name().into(),
                pid: *pid,
                scope: Scope::Tree,
            });
        }
    }

    /// Points the watched names at the processes running now: the components' from their
    /// reader, the services' from the state file. A name whose process is down has no usage in
    /// the points meanwhile (the gap in its series).
    fn follow_restarts(&mut self, metrics: &MetricsReader) {
        let components = metrics.pids();
        if !components.is_empty() {
            self.watch(&components);
        }
        let Some(state) = std::fs::read(&self.state_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<State>(&bytes).ok())
        else {
            return;
        };
        for (name, process) in services(&state) {
            if let (Some(p), Some(w)) = (process, self.watched.iter_mut().find(|w| w.name == name))
            {
                w.pid = p.pid;
            }
        }
    }

    /// Takes one point. A probe that fails (a queue API that does not answer in time) leaves
    /// its values out of this point rather than stopping the run.
    pub async fn sample(
        &mut self,
        published: &PublishProgress,
        metrics: &MetricsReader,
        queues: &Queues,
    ) -> &Sample {
        let (rabbit, sqs) = tokio::join!(self.rabbit_depths(), queues.sqs_depths());
        let m = metrics.read();
        let mut depths = rabbit;
        if let Ok(sqs) = sqs {
            depths.insert(
                "sqs ingest".into(),
                sqs.ingest.visible + sqs.ingest.in_flight,
            );
            depths.insert(
                "sqs ingest-dlq".into(),
                sqs.ingest_dead_letter.visible + sqs.ingest_dead_letter.in_flight,
            );
            depths.insert(
                "sqs snowpipe-notify".into(),
                sqs.notify.visible + sqs.notify.in_flight,
            );
        }
        self.follow_restarts(metrics);
        let usage = self.observer.sample(&self.watched).into_iter().collect();
        self.samples.push(Sample {
            t: self.started.elapsed().as_secs_f64(),
            published: published.sent.load(Relaxed),
            forwarded: m.relay.as_ref().map_or(0, |r| r.forwarded),
            written: m.batcher.as_ref().map_or(0, |b| b.events_written),
            loaded: m.pipe.as_ref().map_or(0, |p| p.rows_loaded),
            queues: depths,
            usage,
        });
        self.samples.last().expect("just pushed")
    }

    async fn rabbit_depths(&self) -> BTreeMap<String, u64> {
        let url = format!(
            "{}/api/queues/%2F?columns=name,messages_ready,messages_unacknowledged",
            self.management_url
        );
        let response = self
            .http
            .get(url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await;
        let Ok(response) = response else {
            return BTreeMap::new();
        };
        let Ok(queues) = response.json::<Vec<MgmtQueue>>().await else {
            return BTreeMap::new();
        };
        queues
            .into_iter()
            .filter(|q| RABBIT_QUEUES.contains(&q.name.as_str()))
            .map(|q| {
                (
                    format!("rabbitmq {}", q.name),
                    q.messages_ready + q.messages_unacknowledged,
                )
            })
            .collect()
    }

    /// Samples once a second until `done` is notified.
    pub async fn run_until(
        &mut self,
        done: &tokio::sync::Notify,
        published: &Arc<PublishProgress>,
        metrics: &MetricsReader,
        queues: &Queues,
        mut on_sample: impl FnMut(&Sample),
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = done.notified();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return,
                _ = tick.tick() => {
                    let sample = self.sample(published, metrics, queues).await;
                    on_sample(sample);
                }
            }
        }
    }

    /// The highest RSS each process tree reached.
    pub fn peak_rss(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for s in &self.samples {
            for (name, u) in &s.usage {
                let peak = out.entry(name.clone()).or_default();
                *peak = (*peak).max(u.rss_bytes);
            }
        }
        out
    }

    /// The mean CPU (cores) of each process tree over the samples.
    pub fn mean_cpu(&self) -> BTreeMap<String, f64> {
        let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
        for s in self.samples.iter().skip(1) {
            for (name, u) in &s.usage {
                let e = sums.entry(name.clone()).or_default();
                e.0 += u.cpu_cores;
                e.1 += 1;
            }
        }
        sums.into_iter()
            .map(|(k, (sum, n))| (k, sum / f64::from(n.max(1))))
            .collect()
    }
}
