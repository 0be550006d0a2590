//! The fault schedule of a scenario (`[[chaos]]`), or of its own file (`--chaos FILE`): which
//! fault, on what, when, for how long. Validated with the rest of a scenario, before anything
//! starts; resolved into concrete fault windows for the run's nemesis.

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::units::Span;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL a component; restart it after `duration`.
    Kill,
    /// SIGSTOP a component or a service; SIGCONT after `duration`.
    Pause,
    /// kill -9 the RabbitMQ node; start it again on its data after `duration`.
    BrokerRestart,
    /// The batcher dies between an S3 put and its SNS notice; restarted after `duration`.
    CrashAfterPut,
    /// `count` notices of objects already loaded delivered again to the pipe.
    DuplicateNotice,
    /// The TCP proxy in front of a service refuses, resets, blackholes or delays for `duration`.
    Outage,
    /// For `duration` the batcher reports every second record of each batch failed without
    /// writing it (an error on part of a batch); those records must come back, not be deleted.
    PartialFailure,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::BrokerRestart,
        FaultKind::CrashAfterPut,
        FaultKind::DuplicateNotice,
        FaultKind::Outage,
        FaultKind::PartialFailure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::BrokerRestart => "broker-restart",
            FaultKind::CrashAfterPut => "crash-after-put",
            FaultKind::DuplicateNotice => "duplicate-notice",
            FaultKind::Outage => "outage",
            FaultKind::PartialFailure => "partial-failure",
        }
    }

    /// The targets this kind may name; the first is its default.
    pub fn targets(self) -> &'static [Target] {
        use Target::*;
        match self {
            FaultKind::Kill => &[Relay, Batcher, Pipe, Cdc],
            FaultKind::Pause => &[
                Relay, Batcher, Pipe, Cdc, Rabbitmq, Postgres, Localstack, Fakesnow,
            ],
            FaultKind::BrokerRestart => &[Rabbitmq],
            FaultKind::CrashAfterPut => &[Batcher],
            FaultKind::DuplicateNotice => &[Pipe],
            FaultKind::Outage => &[Localstack, Fakesnow, Rabbitmq],
            FaultKind::PartialFailure => &[Batcher],
        }
    }

    /// Whether the fault lasts (needs a `duration`) or happens at an instant.
    fn lasts(self) -> bool {
        self != FaultKind::DuplicateNotice
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a fault hits: a component or a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Relay,
    Batcher,
    Pipe,
    /// Only in scenarios with an `[oltp]` workload (the cdc runs only there).
    Cdc,
    Rabbitmq,
    Postgres,
    Localstack,
    Fakesnow,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Relay => "relay",
            Target::Batcher => "batcher",
            Target::Pipe => "pipe",
            Target::Cdc => "cdc",
            Target::Rabbitmq => "rabbitmq",
            Target::Postgres => "postgres",
            Target::Localstack => "localstack",
            Target::Fakesnow => "fakesnow",
        }
    }

    /// The pipeline component, when it is one.
    pub fn component(self) -> Option<crate::Component> {
        match self {
            Target::Relay => Some(crate::Component::Relay),
            Target::Batcher => Some(crate::Component::Batcher),
            Target::Pipe => Some(crate::Component::Pipe),
            Target::Cdc => Some(crate::Component::Cdc),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an outage breaks the connections to its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageMode {
    /// The port refuses connections; open ones are closed.
    Refuse,
    /// Every connection is reset.
    Reset,
    /// Connections are accepted and never answered.
    Blackhole,
    /// Every answer is delayed by `latency`.
    Latency,
}

/// `repeat = { every = "20s", times = 3 }`: the fault again, `every` after each start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    pub every: Span,
    pub times: u32,
}

/// One `[[chaos]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When, from the start of the stream.
    pub at: Span,
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    /// Outages: how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutageMode>,
    /// Outages in `latency` mode: by how much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Span>,
    /// Duplicate notices: how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// A fault as the run carries it out: one occurrence, its target resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The `[[chaos]]` entry it comes from (0-based), and which repetition.
    pub entry: usize,
    pub occurrence: u32,
    pub kind: FaultKind,
    pub target: Target,
    pub start: Duration,
    /// When it is healed (the start, for an instant fault).
    pub end: Duration,
    pub mode: Option<OutageMode>,
    pub latency: Option<Duration>,
    pub count: u32,
}

impl Fault {
    /// `kill relay at 10s for 3s`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} {} at {:.1}s",
            self.kind,
            self.target,
            self.start.as_secs_f64()
        );
        if self.end > self.start {
            text.push_str(&format!(
                " for {:.1}s",
                (self.end - self.start).as_secs_f64()
            ));
        }
        if let Some(mode) = self.mode {
            text.push_str(
                &format!(
                    " ({mode:?}{})",
                    self.latency.map(|l| format!(" {l:?}")).unwrap_or_default()
                )
                .to_lowercase(),
            );
        }
        if self.kind == FaultKind::DuplicateNotice {
            text.push_str(&format!(" ({} notices)", self.count));
        }
        text
    }
}

/// Checks every entry and lays the schedule out in time. `stream` is the stream's length: every
/// fault must be over before it ends, so the run heals, then drains. The error is the entry's
/// key (`chaos[2].target`) and what is wrong.
pub fn resolve(specs: &[FaultSpec], stream: Duration) -> Result<Vec<Fault>, (String, String)> {
    let mut faults = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let key = |field: &str| format!("chaos[{i}].{field}");
        let allowed = spec.kind.targets();
        let target = spec.target.unwrap_or(allowed[0]);
        if !allowed.contains(&target) {
            return Err((
                key("target"),
                format!(
                    "a {} cannot hit {target}; it takes {}",
                    spec.kind,
                    allowed
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let duration = match (spec.kind.lasts(), spec.duration) {
            (true, Some(d)) if !d.get().is_zero() => d.get(),
            (true, _) => {
                return Err((
                    key("duration"),
                    format!(
                        "a {} needs a duration greater than 0, e.g. \"3s\"",
                        spec.kind
                    ),
                ));
            }
            (false, Some(_)) => {
                return Err((
                    key("duration"),
                    format!(
                        "a {} happens at an instant; leave `duration` out",
                        spec.kind
                    ),
                ));
            }
            (false, None) => Duration::ZERO,
        };
        match (spec.kind, spec.mode, spec.latency) {
            (FaultKind::Outage, None, _) => {
                return Err((
                    key("mode"),
                    "an outage needs a mode: refuse, reset, blackhole or latency".into(),
                ));
            }
            (FaultKind::Outage, Some(OutageMode::Latency), None) => {
                return Err((
                    key("latency"),
                    "a latency outage needs `latency`, e.g. \"200ms\"".into(),
                ));
            }
            (FaultKind::Outage, Some(OutageMode::Latency), Some(_))
            | (FaultKind::Outage, Some(_), None) => {}
            (FaultKind::Outage, Some(_), Some(_)) => {
                return Err((
                    key("latency"),
                    "only a latency outage takes `latency`".into(),
                ));
            }
            (_, Some(_), _) => {
                return Err((
                    key("mode"),
                    format!("only an outage takes `mode`, not a {}", spec.kind),
                ));
            }
            (_, _, Some(_)) => {
                return Err((
                    key("latency"),
                    format!("only an outage takes `latency`, not a {}", spec.kind),
                ));
            }
            _ => {}
        }
        let count = match (spec.kind, spec.count) {
            (FaultKind::DuplicateNotice, Some(n)) if n > 0 => n,
            (FaultKind::DuplicateNotice, _) => {
                return Err((
                    key("count"),
                    "duplicate notices need `count` of at least 1".into(),
                ));
            }
            (_, Some(_)) => {
                return Err((
                    key("count"),
                    format!("only duplicate-notice takes `count`, not a {}", spec.kind),
                ));
            }
            (_, None) => 0,
        };
        let (times, every) = match spec.repeat {
            None => (1, Duration::ZERO),
            Some(r) if r.times == 0 => {
                return Err((key("repeat.times"), "must be at least 1".into()));
            }
            Some(r) if r.every.get() <= duration => {
                return Err((
                    key("repeat.every"),
                    format!(
                        "{} is not longer than the fault ({:?}); the repetitions would overlap",
                        r.every, duration
                    ),
                ));
            }
            Some(r) => (r.times, r.every.get()),
        };
        for occurrence in 0..times {
            let start = spec.at.get() + every * occurrence;
            let end = start + duration;
            if end >= stream {
                return Err((
                    key("at"),
                    format!(
                        "occurrence {} ends at {:.1}s, not before the stream ends at {:.1}s: the run must heal before it drains",
                        occurrence + 1,
                        end.as_secs_f64(),
                        stream.as_secs_f64()
                    ),
                ));
            }
            faults.push(Fault {
                entry: i,
                occurrence,
                kind: spec.kind,
                target,
                start,
                end,
                mode: spec.mode,
                latency: spec.latency.map(Span::get),
                count,
            });
        }
    }
    // Two faults on one target at once: which one healed it would be anyone's guess. A broker
    // restart and an outage of the broker both hold RabbitMQ.
    for (a_index, a) in faults.iter().enumerate() {
        for b in &faults[a_index + 1..] {
            let same = a.target == b.target;
            let overlap = a.start <= b.end && b.start <= a.end;
            if same && overlap && a.entry != b.entry {
                return Err((
                    format!("chaos[{}]", b.entry),
                    format!(
                        "overlaps chaos[{}] on {} ({} and {})",
                        a.entry,
                        a.target,
                        a.describe(),
                        b.describe()
                    ),
                ));
            }
        }
    }
    faults.sort_by_key(|f| f.start);
    Ok(faults)
}

/// Jepsen's staggered mix: one fault every 6 to 10 s, each kind in turn (from a kind the seed
/// draws, so that short runs of different seeds meet different kinds) then at random, a
/// target and a duration (2 to 4 s) drawn for it, none in the first 3 s or the last 5 s. Same
/// seed, same schedule; print it with [`to_toml`] to replay it with `--chaos FILE`. Faults on
/// components only hit those in `running` (the cdc runs only with an `[oltp]` workload).
pub fn random(stream: Duration, seed: u64, running: &[crate::Component]) -> Vec<FaultSpec> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc4a0_5eed);
    let mut out = Vec::new();
    let mut at = Duration::from_secs(3);
    let modes = [
        OutageMode::Refuse,
        OutageMode::Reset,
        OutageMode::Blackhole,
        OutageMode::Latency,
    ];
    let first = rng.random_range(0..FaultKind::ALL.len());
    let mut n = 0usize;
    loop {
        let kind = if n < FaultKind::ALL.len() {
            FaultKind::ALL[(first + n) % FaultKind::ALL.len()]
        } else {
            FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())]
        };
        let duration = Duration::from_millis(rng.random_range(2000..=4000));
        let end = at
            + if kind.lasts() {
                duration
            } else {
                Duration::ZERO
            };
        if end + Duration::from_secs(5) > stream {
            break;
        }
        let targets: Vec<Target> = kind
            .targets()
            .iter()
            .copied()
            .filter(|t| t.component().is_none_or(|c| running.contains(&c)))
            .collect();
        let mode = (kind == FaultKind::Outage).then(|| modes[rng.random_range(0..modes.len())]);
        out.push(FaultSpec {
            at: Span::new(Duration::from_millis(at.as_millis() as u64)),
            kind,
            target: Some(targets[rng.random_range(0..targets.len())]),
            duration: kind.lasts().then_some(Span::new(duration)),
            repeat: None,
            mode,
            latency: (mode == Some(OutageMode::Latency))
                .then(|| Span::new(Duration::from_millis(rng.random_range(100..=500)))),
            count: (kind == FaultKind::DuplicateNotice).then(|| rng.random_range(3..=10)),
        });
        at = end + Duration::from_millis(rng.random_range(4000..=6000));
        n += 1;
    }
    out
}

#[derive(Serialize)]
struct ChaosFile<'a> {
    chaos: &'a [FaultSpec],
}

/// A schedule as a `--chaos` file.
pub fn to_toml(specs: &[FaultSpec]) -> String {
    toml::to_string(&ChaosFile { chaos: specs }).expect("a schedule serializes")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChaosFileIn {
    #[serde(default)]
    chaos: Vec<FaultSpec>,
}

/// Reads a `--chaos` file's entries (validated against the scenario by [`resolve`]).
pub fn parse_file(
    path: &std::path::Path,
    text: &str,
) -> Result<Vec<FaultSpec>, crate::ScenarioError> {
    let de = toml::Deserializer::parse(text).map_err(|e| crate::ScenarioError::Invalid {
        path: path.to_owned(),
        key: "(file)".into(),
        reason: e.message().trim().to_owned(),
        location: None,
    })?;
    let file: ChaosFileIn =
        serde_path_to_error::deserialize(de).map_err(|e| crate::ScenarioError::Invalid {
            path: path.to_owned(),
            key: e.path().to_string(),
            reason: e.into_inner().message().trim().to_owned(),
            location: None,
        })?;
    Ok(file.chaos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: &str) -> Span {
        Span::try_from(s.to_owned()).unwrap()
    }

    fn spec(at: &str, kind: FaultKind) -> FaultSpec {
        FaultSpec {
            at: span(at),
            kind,
            target: None,
            duration: kind.lasts().then(|| span("2s")),
            repeat: None,
            mode: (kind == FaultKind::Outage).then_some(OutageMode::Reset),
            latency: None,
            count: (kind == FaultKind::DuplicateNotice).then_some(3),
        }
    }

    #[test]
    fn every_kind_resolves_with_its_default_target() {
        let specs: Vec<FaultSpec> = FaultKind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| spec(&format!("{}s", 1 + 4 * i), *k))
            .collect();
        let faults = resolve(&specs, Duration::from_secs(60)).unwrap();
        assert_eq!(faults.len(), FaultKind::ALL.len());
        assert_eq!(faults[0].target, Target::Relay);
        assert_eq!(faults[2].target, Target::Rabbitmq);
        assert_eq!(
            faults[4].end, faults[4].start,
            "duplicate notices are instant"
        );
    }

    #[test]
    fn repeats_are_laid_out_every_period() {
        let mut s = spec("5s", FaultKind::Kill);
        s.repeat = Some(Repeat {
            every: span("10s"),
            times: 3,
        });
        let faults = resolve(&[s], Duration::from_secs(60)).unwrap();
        let starts: Vec<u64> = faults.iter().map(|f| f.start.as_secs()).collect();
        assert_eq!(starts, [5, 15, 25]);
    }

    /// A short run has room for two or three faults: were every seed to start at the same kind,
    /// short runs would never meet the others.
    #[test]
    fn short_random_schedules_of_different_seeds_start_at_every_kind() {
        let pipeline = &crate::Component::PIPELINE;
        let firsts: std::collections::HashSet<FaultKind> = (0..60)
            .map(|seed| random(Duration::from_secs(24), seed, pipeline)[0].kind)
            .collect();
        assert_eq!(firsts.len(), FaultKind::ALL.len(), "{firsts:?}");
    }

    #[test]
    fn a_random_schedule_is_valid_replayable_and_has_every_kind() {
        let stream = Duration::from_secs(90);
        let pipeline = &crate::Component::PIPELINE;
        let a = random(stream, 7, pipeline);
        assert_eq!(a, random(stream, 7, pipeline), "same seed, same schedule");
        assert_ne!(a, random(stream, 8, pipeline));
        assert!(
            a.iter().all(|f| f.target != Some(Target::Cdc)),
            "no fault on a component that does not run"
        );
        resolve(&a, stream).expect("valid");
        let kinds: std::collections::HashSet<_> = a.iter().map(|s| s.kind).collect();
        assert_eq!(kinds.len(), FaultKind::ALL.len(), "{a:?}");
        let text = to_toml(&a);
        assert_eq!(
            parse_file(std::path::Path::new("r.toml"), &text).unwrap(),
            a,
            "{text}"
        );
    }
}
