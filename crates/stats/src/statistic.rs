//! Sufficient statistics of one arm for one metric, and the mean and variance every test
//! reads from them. The definitions are gbstats 0.8.0's (`gbstats/models/statistics.py`), so
//! results agree with GrowthBook's on the same sums.
//!
//! Everything here is a sum a store can keep up to date one event at a time: counts, Σx,
//! Σx², and for ratios and CUPED the second variable's Σy, Σy² and the cross term Σxy.

/// How a metric's per-unit values are distributed, which fixes its variance formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// 0/1 per unit (converted or not): variance p(1-p), as gbstats' `ProportionStatistic`.
    Binomial,
    /// Any real value per unit: the sample variance (Σx² - (Σx)²/n) / (n-1).
    Mean,
}

/// n, Σx and Σx² of one variable over an arm's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub kind: ValueKind,
    pub n: f64,
    pub sum: f64,
    /// Ignored for [`ValueKind::Binomial`], where x² = x.
    pub sum_squares: f64,
}

impl Moments {
    pub fn binomial(n: f64, sum: f64) -> Self {
        Self {
            kind: ValueKind::Binomial,
            n,
            sum,
            sum_squares: sum,
        }
    }

    pub fn mean_of(n: f64, sum: f64, sum_squares: f64) -> Self {
        Self {
            kind: ValueKind::Mean,
            n,
            sum,
            sum_squares,
        }
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0.0 {
            return 0.0;
        }
        self.sum / self.n
    }

    pub fn variance(&self) -> f64 {
        match self.kind {
            ValueKind::Binomial => {
                let p = self.mean();
                p * (1.0 - p)
            }
            ValueKind::Mean => {
                if self.n <= 1.0 {
                    return 0.0;
                }
                (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1.0)
            }
        }
    }

    /// The moments of two arms taken together (for CUPED's pooled θ).
    fn pooled(&self, other: &Moments) -> Moments {
        Moments {
            kind: self.kind,
            n: self.n + other.n,
            sum: self.sum + other.sum,
            sum_squares: self.sum_squares + other.sum_squares,
        }
    }
}

/// What an arm contributes for one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArmStatistic {
    /// A binomial or mean metric.
    Simple(Moments),
    /// Numerator metric / denominator metric per unit (delta method); n is the units.
    Ratio {
        numerator: Moments,
        denominator: Moments,
        /// Σ numerator·denominator over units.
        sum_of_products: f64,
    },
    /// CUPED: the metric after exposure, adjusted by the same unit's value before it.
    Cuped {
        post: Moments,
        pre: Moments,
        /// Σ post·pre over units.
        sum_of_products: f64,
    },
}

/// The mean and variance of one arm that a comparison reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub n: f64,
    /// The (CUPED-adjusted) mean the effect is measured on.
    pub mean: f64,
    /// The mean before any adjustment: the base of relative effects.
    pub unadjusted_mean: f64,
    /// Per-unit variance (the variance of the mean is this / n).
    pub variance: f64,
}

impl ArmStatistic {
    pub fn units(&self) -> f64 {
        match self {
            ArmStatistic::Simple(m) => m.n,
            ArmStatistic::Ratio { numerator, .. } => numerator.n,
            ArmStatistic::Cuped { post, .. } => post.n,
        }
    }

    /// The arm's estimate on its own; CUPED needs both arms, see [`estimate_pair`].
    fn estimate_with_theta(&self, theta: f64) -> Estimate {
        match *self {
            ArmStatistic::Simple(m) => Estimate {
                n: m.n,
                mean: m.mean(),
                unadjusted_mean: m.mean(),
                variance: m.variance(),
            },
            ArmStatistic::Ratio {
                numerator,
                denominator,
                sum_of_products,
            } => ratio_estimate(&numerator, &denominator, sum_of_products),
            ArmStatistic::Cuped {
                post,
                pre,
                sum_of_products,
            } => {
                let n = post.n;
                let variance = if n <= 1.0 {
                    0.0
                } else {
                    post.variance() + theta * theta * pre.variance()
                        - 2.0 * theta * covariance(&post, &pre, sum_of_products)
                };
                Estimate {
                    n,
                    mean: post.mean() - theta * pre.mean(),
                    unadjusted_mean: post.mean(),
                    variance,
                }
            }
        }
    }
}

/// The estimates of a control and a treatment arm, ready to compare.
///
/// For CUPED, θ = Cov(post, pre) / Var(pre) is pooled over both arms (so it does not
/// depend on the treatment) and applied to each; when either pooled variance is zero the
/// adjustment is dropped (θ = 0), as gbstats does.
pub fn estimate_pair(control: &ArmStatistic, treatment: &ArmStatistic) -> (Estimate, Estimate) {
    let theta = cuped_theta(control, treatment).unwrap_or(0.0);
    (control.estimate_with_theta(theta), treatment.estimate_with_theta(theta))
}

/// θ for CUPED pooled over two arms, or `None` when they are not both CUPED statistics.
pub fn cuped_theta(control: &ArmStatistic, treatment: &ArmStatistic) -> Option<f64> {
    let (
        ArmStatistic::Cuped {
            post: post_a,
            pre: pre_a,
            sum_of_products: product_a,
        },
        ArmStatistic::Cuped {
            post: post_b,
            pre: pre_b,
            sum_of_products: product_b,
        },
    ) = (control, treatment)
    else {
        return None;
    };
    let post = post_a.pooled(post_b);
    let pre = pre_a.pooled(pre_b);
    if pre.variance() == 0.0 || post.variance() == 0.0 {
        return Some(0.0);
    }
    Some(covariance(&post, &pre, product_a + product_b) / pre.variance())
}

/// The sample covariance of two variables over the same units.
fn covariance(x: &Moments, y: &Moments, sum_of_products: f64) -> f64 {
    let n = x.n;
    if n <= 1.0 {
        return 0.0;
    }
    (sum_of_products - x.sum * y.sum / n) / (n - 1.0)
}

/// Mean Σm/Σd and its delta-method variance
/// Var(m)/d̄² - 2·Cov(m,d)·m̄/d̄³ + m̄²·Var(d)/d̄⁴ (Deng et al. 2018, "Applying the Delta
/// Method in Metric Analytics", eq. 3).
fn ratio_estimate(numerator: &Moments, denominator: &Moments, sum_of_products: f64) -> Estimate {
    let n = numerator.n;
    let mean = if denominator.sum == 0.0 {
        0.0
    } else {
        numerator.sum / denominator.sum
    };
    let d = denominator.mean();
    let m = numerator.mean();
    let variance = if d == 0.0 || n <= 1.0 {
        0.0
    } else {
        numerator.variance() / d.powi(2) - 2.0 * covariance(numerator, denominator, sum_of_products) * m / d.powi(3)
            + m * m * denominator.variance() / d.powi(4)
    };
    Estimate {
        n,
        mean,
        unadjusted_mean: mean,
        variance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_variance_is_p_times_one_minus_p() {
        let m = Moments::binomial(100.0, 25.0);
        assert_eq!(m.mean(), 0.25);
        assert_eq!(m.variance(), 0.1875);
    }

    #[test]
    fn sample_variance_uses_n_minus_one() {
        // values 1, 2, 3, 4
        let m = Moments::mean_of(4.0, 10.0, 30.0);
        assert_eq!(m.mean(), 2.5);
        assert!((m.variance() - 5.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn cuped_with_a_perfect_covariate_removes_all_variance_but_the_effect() {
        // post = pre + 1 in both arms: θ = 1, adjusted variance 0.
        let arm = |pre: &[f64]| {
            let post: Vec<f64> = pre.iter().map(|x| x + 1.0).collect();
            ArmStatistic::Cuped {
                post: moments(&post),
                pre: moments(pre),
                sum_of_products: pre.iter().zip(&post).map(|(a, b)| a * b).sum(),
            }
        };
        let (a, b) = (arm(&[1.0, 2.0, 3.0]), arm(&[2.0, 4.0, 6.0]));
        let theta = cuped_theta(&a, &b).unwrap_or(f64::NAN);
        assert!((theta - 1.0).abs() < 1e-12);
        let (ea, _) = estimate_pair(&a, &b);
        assert!(ea.variance.abs() < 1e-12);
        assert_eq!(ea.unadjusted_mean, 3.0);
    }

    fn moments(values: &[f64]) -> Moments {
        Moments::mean_of(
            values.len() as f64,
            values.iter().sum(),
            values.iter().map(|x| x * x).sum(),
        )
    }
}
