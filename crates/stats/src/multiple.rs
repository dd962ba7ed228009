//! Adjusted p-values across a family of comparisons (goal metrics × treatment arms), so a
//! result is called significant when its adjusted p-value is below alpha.

/// Holm–Bonferroni (Holm 1979), controlling the family-wise error rate: with the m p-values
/// sorted ascending, p̃₍ᵢ₎ = max_{j≤i} min(1, (m - j + 1)·p₍ⱼ₎). Returned in input order.
pub fn holm_bonferroni(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len() as f64;
    let order = ascending_order(p_values);
    let mut adjusted = vec![0.0; p_values.len()];
    let mut running_max: f64 = 0.0;
    for (rank, &index) in order.iter().enumerate() {
        let scaled = ((m - rank as f64) * p_values[index]).min(1.0);
        running_max = running_max.max(scaled);
        adjusted[index] = running_max;
    }
    adjusted
}

/// Benjamini–Hochberg (1995), controlling the false discovery rate: with the m p-values
/// sorted ascending, p̃₍ᵢ₎ = min_{j≥i} min(1, m·p₍ⱼ₎/j). Returned in input order.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len() as f64;
    let order = ascending_order(p_values);
    let mut adjusted = vec![0.0; p_values.len()];
    let mut running_min: f64 = 1.0;
    for (rank, &index) in order.iter().enumerate().rev() {
        let scaled = (m * p_values[index] / (rank as f64 + 1.0)).min(1.0);
        running_min = running_min.min(scaled);
        adjusted[index] = running_min;
    }
    adjusted
}

fn ascending_order(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_all_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn holm_scales_by_the_remaining_count_and_keeps_order() {
        // sorted: .005×4 = .02, .01×3 = .03, .03×2 = .06, .04×1 = .04 → max so far .06
        assert_all_close(&holm_bonferroni(&[0.01, 0.04, 0.03, 0.005]), &[0.03, 0.06, 0.06, 0.02]);
        assert_all_close(&holm_bonferroni(&[0.9, 0.8]), &[1.0, 1.0]);
    }

    #[test]
    fn benjamini_hochberg_takes_the_minimum_from_above() {
        // sorted: .005×4/1 = .02, .01×4/2 = .02, .03×4/3 = .04, .04×4/4 = .04
        assert_all_close(
            &benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]),
            &[0.02, 0.04, 0.04, 0.02],
        );
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}
