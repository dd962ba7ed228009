//! Welch's t-test and its always-valid (sequential) counterpart, on absolute or relative
//! effects. Formulas and edge cases follow gbstats 0.8.0 (`TwoSidedTTest`,
//! `SequentialTwoSidedTTest`).

use crate::distribution::{student_t_quantile, student_t_two_sided_p};
use crate::statistic::Estimate;
use crate::{Difference, Undefined};

/// Settings of a frequentist comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrequentistSettings {
    /// Two-sided significance level; the interval covers 1 - alpha.
    pub alpha: f64,
    pub difference: Difference,
    /// The effect under the null hypothesis (usually 0).
    pub null_effect: f64,
}

impl Default for FrequentistSettings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            difference: Difference::Relative,
            null_effect: 0.0,
        }
    }
}

/// A treatment's effect against control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrequentistResult {
    /// The estimated effect (absolute, or relative to control's unadjusted mean).
    pub effect: f64,
    /// Standard error of `effect`.
    pub standard_error: f64,
    pub interval: (f64, f64),
    pub p_value: f64,
}

/// The effect and its variance, shared by every test.
///
/// Absolute: Δ = μ_b - μ_a, Var = σ²_b/n_b + σ²_a/n_a.
/// Relative: Δ = (μ_b - μ_a)/μ̃_a (μ̃: unadjusted control mean), with the delta-method
/// variance σ²_b/(μ̃_a² n_b) + σ²_a μ̃_b²/(μ̃_a⁴ n_a) (gbstats' `frequentist_variance`).
pub(crate) fn effect_and_variance(a: &Estimate, b: &Estimate, difference: Difference) -> (f64, f64) {
    match difference {
        Difference::Absolute => (b.mean - a.mean, b.variance / b.n + a.variance / a.n),
        Difference::Relative => {
            let base = a.unadjusted_mean;
            let variance =
                b.variance / (base.powi(2) * b.n) + a.variance * b.unadjusted_mean.powi(2) / (base.powi(4) * a.n);
            ((b.mean - a.mean) / base, variance)
        }
    }
}

/// Why a comparison has no answer, checked in gbstats' order.
pub(crate) fn check_comparable(a: &Estimate, b: &Estimate) -> Result<(), Undefined> {
    if a.mean == 0.0 || a.unadjusted_mean == 0.0 {
        return Err(Undefined::BaselineZero);
    }
    if a.variance <= 0.0 || b.variance <= 0.0 {
        return Err(Undefined::ZeroVariance);
    }
    Ok(())
}

/// Welch–Satterthwaite degrees of freedom:
/// (s²_b/n_b + s²_a/n_a)² / (s⁴_b/(n_b²(n_b-1)) + s⁴_a/(n_a²(n_a-1))).
pub fn welch_dof(a: &Estimate, b: &Estimate) -> f64 {
    let (va, vb) = (a.variance / a.n, b.variance / b.n);
    (va + vb).powi(2)
        / (b.variance.powi(2) / (b.n.powi(2) * (b.n - 1.0)) + a.variance.powi(2) / (a.n.powi(2) * (a.n - 1.0)))
}

/// Two-sided Welch t-test of treatment `b` against control `a`.
///
/// t = (Δ - Δ₀)/√Var, p = P(|T_ν| ≥ |t|) with ν from [`welch_dof`], interval
/// Δ ± t_{1-α/2, ν}·√Var.
pub fn welch_t_test(
    a: &Estimate,
    b: &Estimate,
    settings: &FrequentistSettings,
) -> Result<FrequentistResult, Undefined> {
    check_comparable(a, b)?;
    let (effect, variance) = effect_and_variance(a, b, settings.difference);
    let standard_error = variance.sqrt();
    let dof = welch_dof(a, b);
    let t = (effect - settings.null_effect) / standard_error;
    let width = student_t_quantile(1.0 - settings.alpha / 2.0, dof) * standard_error;
    Ok(FrequentistResult {
        effect,
        standard_error,
        interval: (effect - width, effect + width),
        p_value: student_t_two_sided_p(t, dof),
    })
}

/// The default N* of sequential tests: the total sample size where the confidence
/// sequence is tightest.
pub const DEFAULT_SEQUENTIAL_TUNING: f64 = 5000.0;

/// Two-sided always-valid test: the asymptotic confidence sequence of Waudby-Smith et al.
/// (2023, arXiv:2103.06476v7), as GrowthBook applies it.
///
/// With N = n_a + n_b, s² = Var·N and ρ² = (-2 ln α + ln(1 - 2 ln α)) / N* (eq. 161):
/// interval Δ ± s·√(2(Nρ²+1)/(N²ρ²) · ln(√(Nρ²+1)/α)) (eq. 9), and
/// p = min(1, √(Nρ²+1) · exp(-ρ² S / (2(Nρ²+1)))) with S = (Δ-Δ₀)²·N/Var (eq. 155), computed
/// in log space so it never overflows.
pub fn sequential_t_test(
    a: &Estimate,
    b: &Estimate,
    settings: &FrequentistSettings,
    tuning: f64,
) -> Result<FrequentistResult, Undefined> {
    check_comparable(a, b)?;
    let (effect, variance) = effect_and_variance(a, b, settings.difference);
    let alpha = settings.alpha;
    let n = a.n + b.n;
    let rho2 = (-2.0 * alpha.ln() + (-2.0 * alpha.ln() + 1.0).ln()) / tuning;
    let scaled = n * rho2 + 1.0;
    let s2 = variance * n;
    let width = s2.sqrt() * (2.0 * scaled * (scaled.sqrt() / alpha).ln() / (n * n * rho2)).sqrt();
    let statistic = (effect - settings.null_effect).powi(2) * n / variance;
    let log_evalue = rho2 * statistic / (2.0 * scaled) - 0.5 * scaled.ln();
    Ok(FrequentistResult {
        effect,
        standard_error: variance.sqrt(),
        interval: (effect - width, effect + width),
        p_value: (-log_evalue).exp().min(1.0),
    })
}
