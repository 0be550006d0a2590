//! `--baseline OLD/report.json`: each headline figure beside the old one, the change in
//! percent, and a verdict. A change is flagged only beyond the tolerance and beyond the
//! run-to-run noise `--repeat N` measured (in either report), as Vector's regression detector
//! does with its effect-size tolerance.

/// Which way is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// One headline figure of a report, with the spread of its repeats.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub better: Better,
    /// Relative run-to-run spread ((max - min) / mean) over `--repeat` runs; 0 for one run.
    #[serde(default)]
    pub noise: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    Regressed,
    /// Beyond the tolerance but inside the measured noise.
    WithinNoise,
    Unchanged,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub name: String,
    pub unit: String,
    pub old: f64,
    pub new: f64,
    /// (new - old) / old, in percent.
    pub change_pct: f64,
    pub verdict: Verdict,
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = match self.verdict {
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::WithinNoise => "within noise",
            Verdict::Unchanged => "unchanged",
        };
        write!(
            f,
            "{:<32} {:>12.2} -> {:>12.2} {:<8} {:>+8.1}%  {verdict}",
            self.name, self.old, self.new, self.unit, self.change_pct
        )
    }
}

/// Compares the figures both reports have, by name. `tolerance` is relative (0.05 = 5%).
pub fn compare(old: &[Figure], new: &[Figure], tolerance: f64) -> Vec<Comparison> {
    let mut out = Vec::new();
    for n in new {
        let Some(o) = old.iter().find(|o| o.name == n.name) else {
            continue;
        };
        let change = if o.value == 0.0 {
            if n.value == 0.0 { 0.0 } else { f64::INFINITY }
        } else {
            (n.value - o.value) / o.value.abs()
        };
        let noise = o.noise.max(n.noise);
        let worse = match n.better {
            Better::Higher => change < 0.0,
            Better::Lower => change > 0.0,
        };
        let verdict = if change.abs() <= tolerance {
            Verdict::Unchanged
        } else if change.abs() <= noise {
            Verdict::WithinNoise
        } else if worse {
            Verdict::Regressed
        } else {
            Verdict::Improved
        };
        out.push(Comparison {
            name: n.name.clone(),
            unit: n.unit.clone(),
            old: o.value,
            new: n.value,
            change_pct: change * 100.0,
            verdict,
        });
    }
    out
}

/// The relative spread of repeated measurements: (max - min) / mean.
pub fn noise(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    if mean == 0.0 {
        return 0.0;
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    (max - min) / mean.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(name: &str, value: f64, better: Better, noise: f64) -> Figure {
        Figure {
            name: name.into(),
            unit: "x".into(),
            value,
            better,
            noise,
        }
    }

    fn verdict(old: Figure, new: Figure) -> Verdict {
        compare(&[old], &[new], 0.05)[0].verdict
    }

    #[test]
    fn a_worse_figure_beyond_tolerance_is_a_regression() {
        use Better::*;
        assert_eq!(
            verdict(
                fig("rate", 100.0, Higher, 0.0),
                fig("rate", 90.0, Higher, 0.0)
            ),
            Verdict::Regressed
        );
        assert_eq!(
            verdict(fig("p99", 100.0, Lower, 0.0), fig("p99", 110.0, Lower, 0.0)),
            Verdict::Regressed
        );
    }

    #[test]
    fn a_better_figure_beyond_tolerance_is_an_improvement() {
        use Better::*;
        assert_eq!(
            verdict(
                fig("rate", 100.0, Higher, 0.0),
                fig("rate", 120.0, Higher, 0.0)
            ),
            Verdict::Improved
        );
        assert_eq!(
            verdict(fig("p99", 100.0, Lower, 0.0), fig("p99", 50.0, Lower, 0.0)),
            Verdict::Improved
        );
    }

    #[test]
    fn small_changes_and_changes_inside_the_noise_are_not_flagged() {
        use Better::*;
        assert_eq!(
            verdict(
                fig("rate", 100.0, Higher, 0.0),
                fig("rate", 96.0, Higher, 0.0)
            ),
            Verdict::Unchanged
        );
        // 15% worse, but the repeats of either run spread by 20%.
        assert_eq!(
            verdict(
                fig("rate", 100.0, Higher, 0.2),
                fig("rate", 85.0, Higher, 0.0)
            ),
            Verdict::WithinNoise
        );
        assert_eq!(
            verdict(
                fig("rate", 100.0, Higher, 0.0),
                fig("rate", 85.0, Higher, 0.2)
            ),
            Verdict::WithinNoise
        );
        let c = &compare(
            &[fig("rate", 100.0, Higher, 0.0)],
            &[fig("rate", 85.0, Higher, 0.0)],
            0.05,
        )[0];
        assert!((c.change_pct + 15.0).abs() < 1e-9);
        assert!(c.to_string().contains("REGRESSED"), "{c}");
    }

    #[test]
    fn figures_only_one_report_has_are_left_out() {
        let out = compare(
            &[fig("a", 1.0, Better::Higher, 0.0)],
            &[fig("b", 1.0, Better::Higher, 0.0)],
            0.05,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn noise_is_the_relative_spread() {
        assert_eq!(noise(&[10.0]), 0.0);
        assert!((noise(&[90.0, 100.0, 110.0]) - 0.2).abs() < 1e-12);
    }
}
