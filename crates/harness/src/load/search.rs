//! `--find-max`: the highest rate the pipeline sustains. Like OpenMessaging Benchmark's rate
//! controller, it offers a rate for a while and looks at the backlog: the rate doubles while
//! the pipeline keeps up, then the interval between the last rate it kept up with and the first
//! it did not is halved until it is narrow enough.

use std::future::Future;

/// What one step at one offered rate showed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepOutcome {
    /// Events per second offered (the scenario's schedule, scaled).
    pub offered: f64,
    /// Events per second that reached RAW over the step and its drain.
    pub delivered: f64,
    /// Freshness percentiles of the step's events, in milliseconds.
    pub freshness_p50_ms: f64,
    pub freshness_p99_ms: f64,
    /// How long after the step's last publish its last event was visible in RAW.
    pub drain_ms: f64,
    /// Whether the pipeline kept up: the backlog stayed bounded and freshness within its limit.
    pub sustainable: bool,
    /// Why not, when it did not.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct SearchConfig {
    /// The first rate offered.
    pub start: f64,
    /// The factor the rate grows by while the pipeline keeps up.
    pub growth: f64,
    /// Stop when the last good and the first bad rate are within this relative distance.
    pub precision: f64,
    /// At most this many steps in all.
    pub max_steps: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            start: 100.0,
            growth: 2.0,
            precision: 0.08,
            max_steps: 14,
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchResult {
    /// The highest rate the pipeline sustained (0 if not even the first).
    pub max_sustainable: f64,
    /// The lowest rate it did not (None if it kept up with every rate tried).
    pub first_unsustainable: Option<f64>,
    /// Every step, in the order run: the rate-vs-freshness curve.
    pub steps: Vec<StepOutcome>,
}

/// Runs steps through `trial` (one offered rate each) until the knee is found.
pub async fn find_max<F, Fut, E>(config: SearchConfig, mut trial: F) -> Result<SearchResult, E>
where
    F: FnMut(f64) -> Fut,
    Fut: Future<Output = Result<StepOutcome, E>>,
{
    let mut steps = Vec::new();
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut rate = config.start;
    while steps.len() < config.max_steps {
        let outcome = trial(rate).await?;
        let sustainable = outcome.sustainable;
        steps.push(outcome);
        if sustainable {
            good = Some(good.map_or(rate, |g: f64| g.max(rate)));
        } else {
            bad = Some(bad.map_or(rate, |b: f64| b.min(rate)));
        }
        rate = match (good, bad) {
            (Some(g), None) => g * config.growth,
            (None, Some(b)) => b / config.growth,
            (Some(g), Some(b)) => {
                if (b - g) / g <= config.precision {
                    break;
                }
                (g + b) / 2.0
            }
            (None, None) => unreachable!("a step was just recorded"),
        };
        if rate < 1e-3 {
            break;
        }
    }
    Ok(SearchResult {
        max_sustainable: good.unwrap_or(0.0),
        first_unsustainable: bad,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A pipeline with a fixed capacity: below it the backlog stays empty and freshness is the
    /// service time; above it the backlog grows by the excess every second of the step.
    fn simulated(
        capacity: f64,
        step_secs: f64,
    ) -> impl FnMut(f64) -> std::future::Ready<Result<StepOutcome, ()>> {
        move |rate| {
            let backlog = ((rate - capacity) * step_secs).max(0.0);
            let drain_ms = 1000.0 * backlog / capacity;
            let outcome = StepOutcome {
                offered: rate,
                delivered: rate.min(capacity),
                freshness_p50_ms: 50.0 + drain_ms / 2.0,
                freshness_p99_ms: 50.0 + drain_ms,
                drain_ms,
                // The harness's rule: drained within a second of the last publish.
                sustainable: drain_ms <= 1000.0 * 0.02 * step_secs,
                reason: None,
            };
            std::future::ready(Ok(outcome))
        }
    }

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest! {
        /// Whatever the capacity, from a first rate within a factor 50 of it, the search ends
        /// within 10% of the capacity.
        #[test]
        fn the_knee_of_a_simulated_pipeline_is_found_within_ten_percent(
            capacity in 20.0f64..200_000.0,
            start_factor in 0.02f64..50.0,
        ) {
            let config = SearchConfig { start: capacity * start_factor, ..SearchConfig::default() };
            let result = run(find_max(config, simulated(capacity, 20.0))).unwrap();
            let found = result.max_sustainable;
            prop_assert!(
                (found - capacity).abs() / capacity <= 0.10,
                "capacity {capacity}, found {found} in {} steps", result.steps.len()
            );
            prop_assert!(result.steps.len() <= config.max_steps);
            prop_assert!(result.first_unsustainable.is_some_and(|b| b > found));
        }
    }

    #[test]
    fn a_pipeline_that_keeps_up_with_everything_reports_the_last_rate() {
        let config = SearchConfig {
            start: 100.0,
            max_steps: 4,
            ..SearchConfig::default()
        };
        let result = run(find_max(config, simulated(1e12, 20.0))).unwrap();
        assert_eq!(result.max_sustainable, 800.0);
        assert_eq!(result.first_unsustainable, None);
        assert_eq!(result.steps.len(), 4);
    }
}
