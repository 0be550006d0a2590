//! What a run shows while it goes on, and how long each of its phases took.

use std::time::{Duration, Instant};

use crate::rig::sampler::Sample;

/// What the caller shows while a run goes on: `e2e` prints lines, `load-test` a progress bar
/// on a terminal. A closure taking a line is a `Progress` that prints every line.
pub trait Progress {
    /// A step of the run (reset, backfill, a fault applied, a search step, ...).
    fn step(&mut self, line: &str);
    /// A periodic line while something long runs (bodies published, workload transactions,
    /// what the drain waits for): a display that shows the samples (a bar) may leave them out.
    fn detail(&mut self, line: &str) {
        self.step(line);
    }
    /// One sample of the time series (load-test), with the bodies the current run will publish.
    fn tick(&mut self, _sample: &Sample, _total: u64) {}
}

impl<F: FnMut(&str)> Progress for F {
    fn step(&mut self, line: &str) {
        self(line);
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub elapsed: Duration,
}

/// The phases of a run, each timed from the end of the one before.
pub struct Clock {
    pub phases: Vec<Phase>,
    started: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Self {
            phases: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Ends a phase here; returns how long it took.
    pub fn lap(&mut self, name: &'static str) -> Duration {
        let elapsed = self.started.elapsed();
        self.phases.push(Phase { name, elapsed });
        self.started = Instant::now();
        elapsed
    }

    /// Phases timed elsewhere (a round's stream and drain), ending here.
    pub fn record(&mut self, parts: &[(&'static str, Duration)]) {
        for (name, elapsed) in parts {
            self.phases.push(Phase {
                name,
                elapsed: *elapsed,
            });
        }
        self.started = Instant::now();
    }
}
