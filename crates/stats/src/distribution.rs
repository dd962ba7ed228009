//! The few distributions the tests need, built on the regularized incomplete beta and gamma
//! functions and `erfc`/`erfcx` (puruspe, after Numerical Recipes 3rd ed., §6.2–6.4), which
//! are good to about 1e-11 relative (their log-gamma limits them).
//!
//! Tails are computed directly rather than as `1 - cdf`, so small p-values keep their
//! relative precision (scipy's `2 * (1 - t.cdf(x))`, which gbstats uses, loses it below
//! about 1e-10; the two agree to 1e-12 absolute there).

use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

/// P(Z ≤ x) for a standard normal Z: `erfc(-x/√2) / 2`.
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    0.5 * puruspe::erfc(-x * FRAC_1_SQRT_2)
}

/// P(Z > x) for a standard normal Z.
pub fn normal_sf(x: f64) -> f64 {
    normal_cdf(-x)
}

/// The x with `normal_cdf(x) = p`, for 0 < p < 1 (±∞ at the ends): `-√2 · erfc⁻¹(2p)`.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    -SQRT_2 * puruspe::inverfc(2.0 * p)
}

/// The standard normal density.
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// P(|T| ≥ |t|) for Student's T with `dof` degrees of freedom:
/// `I_{ν/(ν+t²)}(ν/2, 1/2)` (Abramowitz & Stegun 26.7.1).
pub fn student_t_two_sided_p(t: f64, dof: f64) -> f64 {
    if t.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    if dof.is_infinite() {
        return 2.0 * normal_sf(t.abs());
    }
    let x = dof / (dof + t * t);
    puruspe::betai(0.5 * dof, 0.5, x).clamp(0.0, 1.0)
}

/// The t with P(T ≤ t) = `p` for Student's T with `dof` degrees of freedom, 0 < p < 1.
///
/// Inverts the two-sided tail above with puruspe's `invbetai`, then polishes with Newton
/// steps on the density, so the result is as good as the tail (about 1e-11 relative).
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    if p.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    if dof.is_infinite() {
        return normal_quantile(p);
    }
    // Work on the upper tail q = P(T > t) with t > 0, then restore the sign.
    let (q, sign) = if p > 0.5 { (1.0 - p, 1.0) } else { (p, -1.0) };
    let x = puruspe::invbetai(2.0 * q, 0.5 * dof, 0.5);
    let mut t = (dof * (1.0 - x) / x).sqrt();
    for _ in 0..4 {
        let tail = 0.5 * student_t_two_sided_p(t, dof);
        let density = student_t_pdf(t, dof);
        if density <= 0.0 || !density.is_finite() {
            break;
        }
        let step = (tail - q) / density;
        t += step;
        if step.abs() <= 1e-15 * t.abs() {
            break;
        }
    }
    sign * t
}

/// Student's t density, through log-gamma for large `dof`.
pub fn student_t_pdf(t: f64, dof: f64) -> f64 {
    let log_norm = puruspe::ln_gamma(0.5 * (dof + 1.0)) - puruspe::ln_gamma(0.5 * dof) - 0.5 * (dof * PI).ln();
    (log_norm - 0.5 * (dof + 1.0) * (t * t / dof).ln_1p()).exp()
}

/// P(X > x) for X ~ χ²(k): the regularized upper incomplete gamma `Q(k/2, x/2)`.
pub fn chi_squared_sf(x: f64, k: f64) -> f64 {
    if x.is_nan() || k <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    puruspe::gammq(0.5 * k, 0.5 * x)
}

/// E[X | X ≤ 0] for X ~ N(μ, σ²): `μ - σ·φ(β)/Φ(β)` with β = -μ/σ.
///
/// The inverse Mills ratio is `√(2/π) / erfcx(-β/√2)`, finite and accurate however far 0
/// lies in the tail (where Φ(β) itself would underflow).
pub fn normal_mean_below_zero(mu: f64, sigma: f64) -> f64 {
    let beta = -mu / sigma;
    mu - sigma * inverse_mills(-beta)
}

/// E[X | X ≥ 0] for X ~ N(μ, σ²): `μ + σ·φ(α)/(1 - Φ(α))` with α = -μ/σ.
pub fn normal_mean_above_zero(mu: f64, sigma: f64) -> f64 {
    let alpha = -mu / sigma;
    mu + sigma * inverse_mills(alpha)
}

/// φ(a) / (1 - Φ(a)), the hazard of the standard normal at `a`. For a ≥ 0 through the
/// scaled `erfcx` (1 - Φ(a) may underflow); below, 1 - Φ(a) > 1/2 and the plain ratio is exact.
fn inverse_mills(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    if a < 0.0 {
        return normal_pdf(a) / normal_sf(a);
    }
    (2.0 / PI).sqrt() / puruspe::erfcx(a * FRAC_1_SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, relative: f64) -> bool {
        (actual - expected).abs() <= relative * expected.abs().max(1e-300)
    }

    // Reference values from scipy 1.x (norm, t, chi2, truncnorm).
    #[test]
    fn normal_matches_reference_values() {
        assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-14));
        assert!(close(normal_sf(8.0), 6.220_960_574_271_74e-16, 1e-10));
        assert!(close(normal_quantile(0.025), -1.959_963_984_540_054_5, 1e-13));
        assert!(close(normal_quantile(1e-10), -6.361_340_902_404_056, 1e-10));
    }

    #[test]
    fn student_t_matches_reference_values() {
        assert!(close(student_t_two_sided_p(2.0, 10.0), 0.073_388_034_770_740_37, 1e-10));
        assert!(close(student_t_quantile(0.975, 10.0), 2.228_138_851_986_274, 1e-10));
        assert!(close(student_t_quantile(0.975, 3.5), 2.940_088_637_982_728, 1e-10));
        assert!(close(student_t_quantile(0.025, 1e6), -1.959_966_356_814_107, 1e-10));
    }

    #[test]
    fn chi_squared_matches_reference_values() {
        assert!(close(chi_squared_sf(3.841_458_820_694_128_5, 1.0), 0.05, 1e-10));
        assert!(close(chi_squared_sf(10.0, 2.0), 0.006_737_946_999_085_468, 1e-10));
    }

    #[test]
    fn truncated_means_are_finite_far_in_the_tail() {
        // N(0,1) truncated at 0 has mean ±√(2/π).
        let half = (2.0 / PI).sqrt();
        assert!(close(normal_mean_above_zero(0.0, 1.0), half, 1e-14));
        assert!(close(normal_mean_below_zero(0.0, 1.0), -half, 1e-14));
        assert!(normal_mean_above_zero(f64::NAN, 1.0).is_nan());
        assert!(normal_cdf(f64::NAN).is_nan());
        assert!(student_t_two_sided_p(f64::NAN, 3.0).is_nan());
        assert!(close(
            student_t_quantile(0.975, f64::INFINITY),
            1.959_963_984_540_054_5,
            1e-10
        ));
        let far = normal_mean_below_zero(50.0, 1.0);
        assert!(far.is_finite() && far < 0.0 && far > -0.03);
    }
}
