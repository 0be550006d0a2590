//! Rate shapes and their closed-form integrals.
//!
//! A source emitting at base rate `r` under shape factor `m(t)` has produced `r * M(t)` events by
//! time `t`, where `M` is the integral of `m`. Event `k` of a source is placed at `M⁻¹((k + ½) / r)`,
//! so event times follow the rate exactly, with no accumulated stepping error; the pacer uses the
//! same integral to decide how many tokens a run has earned at a given instant.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::Span;

/// How the rate varies over the run, as a factor on each source's base rate.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Shape {
    /// The base rate throughout.
    #[default]
    Constant,
    /// A linear change of the factor from `from` to `to` over `over` (default: the duration),
    /// then `to` for the rest of the run.
    Ramp {
        from: Factor,
        to: Factor,
        #[serde(default)]
        over: Option<Span>,
    },
    /// The base rate, except the last `length` of every `every`, which runs at `factor` times it.
    Burst {
        every: Span,
        length: Span,
        factor: Factor,
    },
}

/// A positive, finite multiplier of the base rate.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, PartialOrd)]
#[serde(try_from = "f64")]
pub struct Factor(f64);

impl Factor {
    pub fn new(value: f64) -> Result<Self, String> {
        if value.is_finite() && value > 0.0 {
            Ok(Self(value))
        } else {
            Err(format!("a rate factor must be greater than 0, got {value}"))
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Factor {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        Self::new(value)
    }
}

/// A shape with every parameter known, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResolvedShape {
    Constant,
    Ramp {
        from: f64,
        to: f64,
        over: f64,
    },
    Burst {
        every: f64,
        length: f64,
        factor: f64,
    },
}

impl Shape {
    pub(crate) fn validate(
        &self,
        duration: Option<Duration>,
    ) -> Result<(), (&'static str, String)> {
        match *self {
            Shape::Constant => Ok(()),
            Shape::Ramp { over, .. } => match over.map(Span::get).or(duration) {
                None => Err((
                    "shape.over",
                    "a ramp needs `over` (e.g. \"60s\") when the scenario has no `duration`".into(),
                )),
                Some(d) if d.is_zero() => Err(("shape.over", "must be greater than 0".into())),
                Some(_) => Ok(()),
            },
            Shape::Burst { every, length, .. } => {
                if length.get().is_zero() {
                    Err(("shape.length", "must be greater than 0".into()))
                } else if length >= every {
                    Err((
                        "shape.length",
                        format!("must be shorter than `every` ({every}), got {length}"),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Fills in defaults; call only on a validated shape.
    pub fn resolved(&self, duration: Option<Duration>) -> ResolvedShape {
        match *self {
            Shape::Constant => ResolvedShape::Constant,
            Shape::Ramp { from, to, over } => ResolvedShape::Ramp {
                from: from.get(),
                to: to.get(),
                over: over
                    .map(Span::get)
                    .or(duration)
                    .expect("validated: a ramp has a length")
                    .as_secs_f64(),
            },
            Shape::Burst {
                every,
                length,
                factor,
            } => ResolvedShape::Burst {
                every: every.as_secs_f64(),
                length: length.as_secs_f64(),
                factor: factor.get(),
            },
        }
    }
}

impl ResolvedShape {
    /// The factor m(t).
    pub fn factor_at(&self, t: f64) -> f64 {
        match *self {
            ResolvedShape::Constant => 1.0,
            ResolvedShape::Ramp { from, to, over } => {
                if t < over {
                    from + (to - from) * t / over
                } else {
                    to
                }
            }
            ResolvedShape::Burst {
                every,
                length,
                factor,
            } => {
                if t.rem_euclid(every) >= every - length {
                    factor
                } else {
                    1.0
                }
            }
        }
    }

    /// M(t), the integral of m over [0, t].
    pub fn integral(&self, t: f64) -> f64 {
        match *self {
            ResolvedShape::Constant => t,
            ResolvedShape::Ramp { from, to, over } => {
                let within = t.min(over);
                let ramp = from * within + (to - from) * within * within / (2.0 * over);
                ramp + to * (t - over).max(0.0)
            }
            ResolvedShape::Burst {
                every,
                length,
                factor,
            } => {
                let calm = every - length;
                let per_period = calm + factor * length;
                let periods = (t / every).floor();
                let r = t - periods * every;
                periods * per_period + r.min(calm) + factor * (r - calm).max(0.0)
            }
        }
    }

    /// M⁻¹(m): the time at which the integral reaches `m` (m >= 0).
    pub fn inverse(&self, m: f64) -> f64 {
        match *self {
            ResolvedShape::Constant => m,
            ResolvedShape::Ramp { from, to, over } => {
                let at_end = (from + to) * over / 2.0;
                if m <= at_end {
                    // Root of a t² + b t - m = 0 in a form that stays exact when a is tiny.
                    let a = (to - from) / (2.0 * over);
                    2.0 * m / (from + (from * from + 4.0 * a * m).max(0.0).sqrt())
                } else {
                    over + (m - at_end) / to
                }
            }
            ResolvedShape::Burst {
                every,
                length,
                factor,
            } => {
                let calm = every - length;
                let per_period = calm + factor * length;
                let periods = (m / per_period).floor();
                let rem = m - periods * per_period;
                let within = if rem <= calm {
                    rem
                } else {
                    calm + (rem - calm) / factor
                };
                periods * every + within
            }
        }
    }
}

/// A base rate (events per second) under a shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateProfile {
    base: f64,
    shape: ResolvedShape,
}

impl RateProfile {
    pub fn new(base: f64, shape: ResolvedShape) -> Self {
        assert!(base > 0.0 && base.is_finite(), "rate must be positive");
        Self { base, shape }
    }

    pub fn constant(base: f64) -> Self {
        Self::new(base, ResolvedShape::Constant)
    }

    /// Events per second at `t` seconds into the run.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.base * self.shape.factor_at(t)
    }

    /// Events due in [0, t].
    pub fn events_by(&self, t: f64) -> f64 {
        self.base * self.shape.integral(t)
    }

    /// When the `n`-th (fractional) event is due.
    pub fn time_of(&self, n: f64) -> f64 {
        self.shape.inverse(n / self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<ResolvedShape> {
        vec![
            ResolvedShape::Constant,
            ResolvedShape::Ramp {
                from: 0.5,
                to: 4.0,
                over: 30.0,
            },
            ResolvedShape::Ramp {
                from: 3.0,
                to: 0.25,
                over: 10.0,
            },
            ResolvedShape::Ramp {
                from: 1.0,
                to: 1.0 + 1e-12,
                over: 10.0,
            },
            ResolvedShape::Burst {
                every: 10.0,
                length: 2.0,
                factor: 8.0,
            },
        ]
    }

    #[test]
    fn inverse_undoes_integral() {
        for shape in shapes() {
            for i in 0..2000 {
                let t = i as f64 * 0.037;
                let back = shape.inverse(shape.integral(t));
                assert!((back - t).abs() < 1e-9, "{shape:?} at {t}: got {back}");
            }
        }
    }

    #[test]
    fn integral_matches_numeric_integration_of_the_factor() {
        for shape in shapes() {
            let dt = 1e-4;
            let mut sum = 0.0;
            for i in 0..400_000 {
                sum += shape.factor_at((i as f64 + 0.5) * dt) * dt;
            }
            let exact = shape.integral(40.0);
            assert!(
                (sum - exact).abs() / exact < 1e-4,
                "{shape:?}: {sum} vs {exact}"
            );
        }
    }

    #[test]
    fn burst_runs_at_factor_in_the_last_part_of_each_period() {
        let shape = ResolvedShape::Burst {
            every: 10.0,
            length: 2.0,
            factor: 5.0,
        };
        assert_eq!(shape.factor_at(7.9), 1.0);
        assert_eq!(shape.factor_at(8.0), 5.0);
        assert_eq!(shape.factor_at(10.0), 1.0);
        assert_eq!(shape.integral(10.0), 18.0);
    }
}
