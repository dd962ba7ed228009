//! Experiment statistics: pure functions from per-arm sufficient statistics to effects,
//! intervals, p-values and Bayesian summaries. No I/O, so experiment-service can call them
//! on aggregates it keeps up to date, and tests can check them against GrowthBook.
//!
//! Every figure agrees with gbstats 0.8.0 (`TwoSidedTTest`, `SequentialTwoSidedTTest`,
//! `EffectBayesianABTest`, `check_srm`) on the same sums to 1e-6 relative; the vectors in
//! `vectors/gbstats-0.8.0.json` prove it and `scripts/gbstats-vectors.sh` regenerates them. Each
//! module documents its formulas and their sources.
//!
//! A comparison reads an [`Estimate`] per arm; [`estimate_pair`] makes the two from the
//! arms' [`ArmStatistic`]s (so CUPED's θ is pooled over both).

mod bayesian;
pub mod distribution;
mod frequentist;
mod health;
mod multiple;
mod power;
mod statistic;

pub use bayesian::{BayesianResult, BayesianSettings, EffectPrior, effect_bayesian_test};
pub use frequentist::{
    DEFAULT_SEQUENTIAL_TUNING, FrequentistResult, FrequentistSettings, sequential_t_test, welch_dof, welch_t_test,
};
pub use health::{SRM_THRESHOLD, srm_p_value};
pub use multiple::{benjamini_hochberg, holm_bonferroni};
pub use power::{Plan, minimum_detectable_effect, power};
pub use statistic::{ArmStatistic, Estimate, Moments, ValueKind, cuped_theta, estimate_pair};

/// Whether an effect is measured as a difference of means or relative to control's mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    Absolute,
    Relative,
}

/// Why a comparison has no result (gbstats answers these with an uninformative default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undefined {
    /// The control's mean is 0, so a relative effect is undefined.
    BaselineZero,
    /// An arm has zero (or negative) variance: no units, one unit, or all alike.
    ZeroVariance,
    /// An arm has no units.
    NoUnits,
}

impl std::fmt::Display for Undefined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Undefined::BaselineZero => "the control's mean is zero",
            Undefined::ZeroVariance => "an arm has no variance (too few units, or all alike)",
            Undefined::NoUnits => "an arm has no units",
        })
    }
}

impl std::error::Error for Undefined {}
