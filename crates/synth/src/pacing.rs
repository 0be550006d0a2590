//! Pacing a live run.
//!
//! A token bucket whose tokens accrue along the scenario's rate profile. Earned tokens are
//! computed from the elapsed time since the start with the profile's closed-form integral,
//! never summed up tick by tick, so timer granularity and late wake-ups cause no drift: a
//! publisher that falls a little behind catches up, and the rate over the whole run holds.
//! The capacity bounds that catch-up: after a stall longer than `capacity / rate` the surplus
//! is forfeited (and the achieved rate, measured by the caller, shows the shortfall).

use std::time::Duration;

use crate::rate::RateProfile;

#[derive(Clone, Debug)]
pub struct TokenBucket {
    profile: RateProfile,
    capacity: f64,
    tokens: f64,
    /// Tokens the profile had earned at the last refill.
    earned: f64,
}

impl TokenBucket {
    /// An empty bucket at the start of the run. `capacity` must allow the largest single take.
    pub fn new(profile: RateProfile, capacity: u32) -> Self {
        assert!(capacity > 0, "a token bucket needs room for one token");
        Self {
            profile,
            capacity: f64::from(capacity),
            tokens: 0.0,
            earned: 0.0,
        }
    }

    /// Takes `n` tokens at `now` (time since the start of the run), or says how long to wait
    /// before they are there.
    pub fn try_take(&mut self, now: Duration, n: u32) -> Result<(), Duration> {
        let n = f64::from(n);
        assert!(
            n <= self.capacity,
            "cannot take {n} tokens from a bucket of {}",
            self.capacity
        );
        let earned = self.profile.events_by(now.as_secs_f64());
        self.tokens = (self.tokens + (earned - self.earned)).min(self.capacity);
        self.earned = earned;
        if self.tokens >= n {
            self.tokens -= n;
            return Ok(());
        }
        let due = self.profile.time_of(self.earned + (n - self.tokens));
        Err(Duration::from_secs_f64((due - now.as_secs_f64()).max(0.0)) + Duration::from_nanos(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::ResolvedShape;
    use rand::{Rng, SeedableRng};

    /// Drives a publisher on a virtual clock: each publish costs some time, each wait oversleeps
    /// a little as real timers do. Returns the events published within `run`.
    fn simulate(
        profile: RateProfile,
        batch: u32,
        run: Duration,
        stall: Option<(Duration, Duration)>,
    ) -> u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut bucket = TokenBucket::new(profile, 1_000);
        let mut now = Duration::ZERO;
        let mut sent = 0u64;
        let mut stalled = false;
        while now < run {
            if let Some((at, length)) = stall
                && !stalled
                && now >= at
            {
                stalled = true;
                now += length;
                continue;
            }
            match bucket.try_take(now, batch) {
                Ok(()) => {
                    sent += u64::from(batch);
                    now += Duration::from_micros(rng.random_range(1..20)) * batch.min(5);
                }
                Err(wait) => now += wait + Duration::from_micros(rng.random_range(0..2_000)),
            }
        }
        sent
    }

    #[test]
    fn holds_the_rate_over_a_run_despite_oversleeping() {
        let shapes = [
            ResolvedShape::Constant,
            ResolvedShape::Ramp {
                from: 0.2,
                to: 3.0,
                over: 60.0,
            },
            ResolvedShape::Burst {
                every: 10.0,
                length: 3.0,
                factor: 6.0,
            },
        ];
        for shape in shapes {
            for batch in [1, 10, 100] {
                let profile = RateProfile::new(2_000.0, shape);
                let run = Duration::from_secs(120);
                let target = profile.events_by(run.as_secs_f64());
                let sent = simulate(profile, batch, run, None) as f64;
                let error = (sent - target).abs() / target;
                assert!(
                    error < 0.01,
                    "{shape:?} batch {batch}: sent {sent}, target {target}"
                );
            }
        }
    }

    #[test]
    fn catches_up_after_a_short_stall_but_not_a_long_one() {
        let profile = RateProfile::constant(1_000.0);
        let run = Duration::from_secs(60);
        // 0.5 s behind at 1000/s is 500 tokens: within the capacity of 1000, fully caught up.
        let short = simulate(
            profile,
            10,
            run,
            Some((Duration::from_secs(10), Duration::from_millis(500))),
        );
        assert!((short as f64 - 60_000.0).abs() < 600.0, "{short}");
        // 5 s behind is 5000 tokens: only 1000 can be made up.
        let long = simulate(
            profile,
            10,
            run,
            Some((Duration::from_secs(10), Duration::from_secs(5))),
        );
        assert!((long as f64 - 56_000.0).abs() < 600.0, "{long}");
    }

    #[test]
    fn an_empty_bucket_says_how_long_to_wait() {
        let mut bucket = TokenBucket::new(RateProfile::constant(100.0), 10);
        let wait = bucket.try_take(Duration::ZERO, 5).unwrap_err();
        assert!((wait.as_secs_f64() - 0.05).abs() < 1e-6, "{wait:?}");
        assert!(bucket.try_take(wait, 5).is_ok());
    }
}
