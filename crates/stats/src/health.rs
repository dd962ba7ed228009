//! Sample ratio mismatch: did the arms receive the share of units they were meant to?

use crate::distribution::chi_squared_sf;

/// GrowthBook's threshold: an SRM p-value below this means the split is broken.
pub const SRM_THRESHOLD: f64 = 0.001;

/// Pearson's χ² goodness-of-fit p-value of observed `units` per arm against the intended
/// `weights` (any scale), with (arms - 1) degrees of freedom; arms with weight ≤ 0 add no
/// term but still count toward the degrees of freedom (gbstats' `check_srm`). 1 without
/// units.
pub fn srm_p_value(units: &[f64], weights: &[f64]) -> f64 {
    let total: f64 = units.iter().sum();
    if total == 0.0 || units.len() < 2 || units.len() != weights.len() {
        return 1.0;
    }
    let total_weight: f64 = weights.iter().sum();
    let statistic: f64 = units
        .iter()
        .zip(weights)
        .filter(|(_, weight)| **weight > 0.0)
        .map(|(observed, weight)| {
            let expected = weight / total_weight * total;
            (observed - expected).powi(2) / expected
        })
        .sum();
    chi_squared_sf(statistic, (units.len() - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_split_passes_and_a_skewed_one_fails() {
        assert!(srm_p_value(&[5_000.0, 5_020.0], &[0.5, 0.5]) > 0.8);
        assert!(srm_p_value(&[5_000.0, 5_400.0], &[0.5, 0.5]) < SRM_THRESHOLD);
        assert_eq!(srm_p_value(&[0.0, 0.0], &[0.5, 0.5]), 1.0);
    }
}
