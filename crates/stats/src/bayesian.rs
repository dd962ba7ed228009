//! The Bayesian effect model: a normal likelihood for the effect with a normal prior
//! (improper by default), giving chance to win, risk (expected loss) and a credible interval.
//! This is gbstats 0.8.0's `EffectBayesianABTest`.

use crate::distribution::{normal_cdf, normal_mean_above_zero, normal_mean_below_zero, normal_quantile};
use crate::frequentist::effect_and_variance;
use crate::statistic::Estimate;
use crate::{Difference, Undefined};

/// A normal prior on the effect, on the scale of `Difference::Relative` (as GrowthBook
/// configures it per metric); it is rescaled by the control mean for absolute effects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectPrior {
    pub mean: f64,
    pub variance: f64,
    /// An improper (flat) prior leaves the data alone; a proper one shrinks toward `mean`.
    pub proper: bool,
}

impl Default for EffectPrior {
    /// gbstats' default: improper (mean 0, variance 1 only matter once made proper).
    fn default() -> Self {
        Self {
            mean: 0.0,
            variance: 1.0,
            proper: false,
        }
    }
}

/// Settings of a Bayesian comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BayesianSettings {
    /// The credible interval covers 1 - alpha.
    pub alpha: f64,
    pub difference: Difference,
    /// Lower is better for this metric: chance to win and risk are flipped.
    pub inverse: bool,
    pub prior: EffectPrior,
}

impl Default for BayesianSettings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            difference: Difference::Relative,
            inverse: false,
            prior: EffectPrior::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BayesianResult {
    /// Posterior mean of the effect.
    pub effect: f64,
    /// Posterior standard deviation of the effect.
    pub standard_deviation: f64,
    pub interval: (f64, f64),
    /// P(treatment is better than control).
    pub chance_to_win: f64,
    /// Expected loss of choosing control, then of choosing the treatment.
    pub risk: (f64, f64),
}

/// Compares treatment `b` with control `a`.
///
/// With the data's effect Δ and variance V (as the frequentist tests compute them) and the
/// prior N(m, v): posterior precision 1/V + 1/v, mean (Δ/V + m/v)/(1/V + 1/v); with an
/// improper prior, N(Δ, V). Chance to win is P(effect > 0); risk of control is
/// P(effect > 0)·E[effect | effect > 0], of treatment -P(effect < 0)·E[effect | effect < 0]
/// (both swapped when `inverse`).
pub fn effect_bayesian_test(
    a: &Estimate,
    b: &Estimate,
    settings: &BayesianSettings,
) -> Result<BayesianResult, Undefined> {
    let relative = settings.difference == Difference::Relative;
    if relative && (a.mean == 0.0 || a.unadjusted_mean == 0.0) {
        return Err(Undefined::BaselineZero);
    }
    if a.n == 0.0 || b.n == 0.0 {
        return Err(Undefined::NoUnits);
    }
    if a.variance <= 0.0 || b.variance <= 0.0 {
        return Err(Undefined::ZeroVariance);
    }
    let prior = prior_on_scale(&settings.prior, a, settings.difference);
    let (data_mean, data_variance) = effect_and_variance(a, b, settings.difference);
    let (mean, precision) = if prior.proper {
        let precision = 1.0 / data_variance + 1.0 / prior.variance;
        (
            (data_mean / data_variance + prior.mean / prior.variance) / precision,
            precision,
        )
    } else {
        (data_mean, 1.0 / data_variance)
    };
    let sd = (1.0 / precision).sqrt();
    let alpha = settings.alpha;
    let interval = (
        mean + sd * normal_quantile(alpha / 2.0),
        mean + sd * normal_quantile(1.0 - alpha / 2.0),
    );
    let better = normal_cdf(mean / sd);
    let control_better = normal_cdf(-mean / sd);
    let risk_of_control = better * normal_mean_above_zero(mean, sd);
    let risk_of_treatment = -control_better * normal_mean_below_zero(mean, sd);
    let (chance_to_win, risk) = if settings.inverse {
        (control_better, (risk_of_treatment, risk_of_control))
    } else {
        (better, (risk_of_control, risk_of_treatment))
    };
    Ok(BayesianResult {
        effect: mean,
        standard_deviation: sd,
        interval,
        chance_to_win,
        risk,
    })
}

/// The relative prior, rescaled by the control's unadjusted mean for absolute effects.
fn prior_on_scale(prior: &EffectPrior, control: &Estimate, difference: Difference) -> EffectPrior {
    match difference {
        Difference::Relative => *prior,
        Difference::Absolute => EffectPrior {
            mean: prior.mean * control.unadjusted_mean.abs(),
            variance: prior.variance * control.unadjusted_mean.powi(2),
            proper: prior.proper,
        },
    }
}
