//! Planning: how likely a test is to detect a lift, and the smallest lift it can detect.
//!
//! Two-sided Welch test on the relative effect with equal per-unit variance σ² and n units
//! in each arm. For a true lift Δ over a control mean μ, the relative effect's variance is
//! V(Δ) = σ²·(1 + (1+Δ)²) / (μ²·n) (the delta method of [`crate::welch_t_test`] with
//! μ_b = μ(1+Δ)), and power(Δ) = Φ(Δ/√V - z) + Φ(-Δ/√V - z) with z = z_{1-α/2}
//! (normal approximation; Chow, Shao & Wang, "Sample Size Calculations in Clinical Research",
//! §3.2).

use crate::distribution::{normal_cdf, normal_quantile};

/// What a planned test looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The control's expected mean (for a binomial metric, its conversion rate).
    pub mean: f64,
    /// The per-unit variance (for a binomial metric, p(1-p)).
    pub variance: f64,
    /// Units in each arm.
    pub units_per_arm: f64,
    pub alpha: f64,
}

/// The probability of a significant result when the true relative lift is `lift`.
pub fn power(plan: &Plan, lift: f64) -> f64 {
    let z = normal_quantile(1.0 - plan.alpha / 2.0);
    let variance = plan.variance * (1.0 + (1.0 + lift).powi(2)) / (plan.mean.powi(2) * plan.units_per_arm);
    let signal = lift / variance.sqrt();
    normal_cdf(signal - z) + normal_cdf(-signal - z)
}

/// The smallest positive relative lift detected with probability `target_power`, or `None`
/// when no lift is (the relative effect's noise grows with the lift, so power is bounded).
pub fn minimum_detectable_effect(plan: &Plan, target_power: f64) -> Option<f64> {
    if !(plan.alpha / 2.0..1.0).contains(&target_power) {
        return None;
    }
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    while power(plan, high) < target_power {
        high *= 2.0;
        if high > 1e6 {
            return None;
        }
    }
    // Power grows with the lift on (0, ∞); bisect to double precision.
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if power(plan, middle) < target_power {
            low = middle;
        } else {
            high = middle;
        }
        if high - low <= 1e-14 * high {
            break;
        }
    }
    Some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(units_per_arm: f64) -> Plan {
        Plan {
            mean: 0.1,
            variance: 0.1 * 0.9,
            units_per_arm,
            alpha: 0.05,
        }
    }

    #[test]
    fn power_at_the_mde_is_the_target() {
        let plan = plan(20_000.0);
        let mde = minimum_detectable_effect(&plan, 0.8).unwrap_or(f64::NAN);
        assert!((power(&plan, mde) - 0.8).abs() < 1e-9);
        // z_{.975} + z_{.8} = 2.8016 standard errors of the relative effect at that lift.
        let se = (plan.variance * (1.0 + (1.0 + mde).powi(2)) / (plan.mean.powi(2) * plan.units_per_arm)).sqrt();
        assert!((mde / se - 2.801_585).abs() < 1e-4);
    }

    #[test]
    fn more_units_detect_smaller_lifts() {
        let small = minimum_detectable_effect(&plan(1_000.0), 0.8).unwrap_or(f64::NAN);
        let large = minimum_detectable_effect(&plan(100_000.0), 0.8).unwrap_or(f64::NAN);
        assert!(large < small / 5.0);
        assert!((power(&plan(1_000.0), 0.0) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn an_unreachable_power_has_no_mde() {
        assert_eq!(minimum_detectable_effect(&plan(2.0), 0.99), None);
    }
}
