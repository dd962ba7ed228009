"""Test vectors for crates/stats, computed by gbstats 0.8.0 itself.

Writes JSON: for each case the per-arm sufficient statistics (as crates/stats takes them),
the settings, and what gbstats' TwoSidedTTest, SequentialTwoSidedTTest and
EffectBayesianABTest return for them; then check_srm cases and, as an independent check of
our Benjamini-Hochberg, scipy's false_discovery_control.

    scripts/gbstats-vectors.sh --out crates/stats/vectors/gbstats-0.8.0.json

(that script keeps a venv with requirements.txt in target/ and runs this file in it). The
cases are drawn from a fixed seed, so the output is the same every time.
"""

import json
import random
import sys

SEED = 20261207


def moments(rng, kind, n, mean, sd):
    """Sums of n synthetic per-unit values (binomial: a conversion count)."""
    if kind == "binomial":
        p = min(max(mean, 0.0), 1.0)
        conversions = sum(1 for _ in range(n) if rng.random() < p)
        return {"kind": kind, "n": n, "sum": float(conversions), "sum_squares": float(conversions)}
    values = [rng.gauss(mean, sd) for _ in range(n)]
    return {"kind": kind, "n": n, "sum": sum(values), "sum_squares": sum(v * v for v in values)}


def paired(rng, n, kind, mean, sd, slope, noise):
    """Two correlated variables per unit (numerator/denominator, or post/pre)."""
    xs, ys = [], []
    for _ in range(n):
        y = max(rng.gauss(mean, sd), 0.01)
        if kind == "binomial":
            x = 1.0 if rng.random() < min(max(slope * y, 0.0), 1.0) else 0.0
        else:
            x = slope * y + rng.gauss(0, noise)
        xs.append(x)
        ys.append(y)
    x_moments = {"kind": kind, "n": n, "sum": sum(xs), "sum_squares": sum(v * v for v in xs)}
    y_moments = {"kind": "mean", "n": n, "sum": sum(ys), "sum_squares": sum(v * v for v in ys)}
    return x_moments, y_moments, sum(a * b for a, b in zip(xs, ys))


def arm(rng, shape, n, lift):
    if shape in ("binomial", "mean"):
        base = 0.1 if shape == "binomial" else 20.0
        return {"type": "simple", "moments": moments(rng, shape, n, base * (1 + lift), 8.0)}
    if shape == "ratio":
        num, den, products = paired(rng, n, "mean", 3.0, 1.5, 12.0 * (1 + lift), 6.0)
        return {"type": "ratio", "numerator": num, "denominator": den, "sum_of_products": products}
    kind = "binomial" if shape == "cuped_binomial" else "mean"
    slope = 0.03 if kind == "binomial" else 1.0 + lift
    post, pre, products = paired(rng, n, kind, 10.0, 3.0, slope, 2.0)
    # pre is the covariate (the unit's value before exposure): post ~ slope·pre + noise
    return {"type": "cuped", "post": post, "pre": pre, "sum_of_products": products}


def statistic(data):
    from gbstats.models.statistics import (
        ProportionStatistic, RatioStatistic, RegressionAdjustedStatistic, SampleMeanStatistic)

    def base(m):
        if m["kind"] == "binomial":
            return ProportionStatistic(n=m["n"], sum=m["sum"])
        return SampleMeanStatistic(n=m["n"], sum=m["sum"], sum_squares=m["sum_squares"])

    if data["type"] == "simple":
        return base(data["moments"])
    if data["type"] == "ratio":
        return RatioStatistic(n=data["numerator"]["n"], m_statistic=base(data["numerator"]),
                              d_statistic=base(data["denominator"]),
                              m_d_sum_of_products=data["sum_of_products"])
    return RegressionAdjustedStatistic(n=data["post"]["n"], post_statistic=base(data["post"]),
                                       pre_statistic=base(data["pre"]),
                                       post_pre_sum_of_products=data["sum_of_products"], theta=0)


def outcome(result):
    out = {"expected": result.expected, "ci": list(result.ci), "stddev": result.uplift.stddev,
           "error": result.error_message}
    for field in ("p_value", "chance_to_win", "risk"):
        if hasattr(result, field):
            value = getattr(result, field)
            out[field] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def analyse(case):
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
    from gbstats.frequentist.tests import (
        FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest)

    s = case["settings"]
    # gbstats sets θ on the statistics it is given, so each test gets fresh ones.
    fresh = lambda: (statistic(case["control"]), statistic(case["treatment"]))
    welch = TwoSidedTTest(*fresh(), FrequentistConfig(alpha=s["alpha"], difference_type=s["difference"]))
    sequential = SequentialTwoSidedTTest(*fresh(), SequentialConfig(
        alpha=s["alpha"], difference_type=s["difference"],
        sequential_tuning_parameter=s["sequential_tuning"]))
    prior = GaussianPrior(mean=s["prior_mean"], variance=s["prior_variance"], proper=s["prior_proper"])
    bayesian = EffectBayesianABTest(*fresh(), EffectBayesianConfig(
        alpha=s["alpha"], difference_type=s["difference"], inverse=s["inverse"],
        prior_effect=prior, prior_type="relative"))
    return {name: guarded(test) for name, test in
            (("welch", welch), ("sequential", sequential), ("bayesian", bayesian))}


def guarded(test):
    """gbstats' answer, or the exception it raises (it divides by zero on a few inputs)."""
    try:
        return outcome(test.compute_result())
    except ArithmeticError as error:
        return {"exception": type(error).__name__}


def cases(rng):
    shapes = ["binomial", "mean", "ratio", "cuped_mean", "cuped_binomial"]
    out = []
    for index in range(150):
        shape = shapes[index % len(shapes)]
        n_a = rng.choice([2, 3, 10, 50, 400, 2000])
        n_b = max(2, int(n_a * rng.uniform(0.6, 1.4)))
        lift = rng.choice([0.0, 0.02, 0.1, -0.1, 0.5])
        out.append({
            "name": f"{shape}-{index}",
            "control": arm(rng, shape, n_a, 0.0),
            "treatment": arm(rng, shape, n_b, lift),
            "settings": {
                "alpha": rng.choice([0.05, 0.1, 0.01]),
                "difference": rng.choice(["relative", "absolute"]),
                "sequential_tuning": rng.choice([5000.0, 1000.0, 50000.0]),
                "prior_proper": rng.random() < 0.4,
                "prior_mean": rng.choice([0.0, 0.05]),
                "prior_variance": rng.choice([0.01, 0.09]),
                "inverse": rng.random() < 0.3,
            },
        })
    # The cases gbstats refuses: control mean 0, no variance, an empty arm.
    zero = {"type": "simple", "moments": {"kind": "binomial", "n": 100, "sum": 0.0, "sum_squares": 0.0}}
    flat = {"type": "simple", "moments": {"kind": "mean", "n": 5, "sum": 10.0, "sum_squares": 20.0}}
    empty = {"type": "simple", "moments": {"kind": "mean", "n": 0, "sum": 0.0, "sum_squares": 0.0}}
    normal = {"type": "simple", "moments": {"kind": "mean", "n": 50, "sum": 120.0, "sum_squares": 600.0}}
    settings = {"alpha": 0.05, "difference": "relative", "sequential_tuning": 5000.0,
                "prior_proper": False, "prior_mean": 0.0, "prior_variance": 1.0, "inverse": False}
    for name, control, treatment in [("control-zero", zero, normal), ("flat-treatment", normal, flat),
                                     ("empty-treatment", normal, empty)]:
        for difference in ("relative", "absolute"):
            out.append({"name": f"{name}-{difference}", "control": control, "treatment": treatment,
                        "settings": dict(settings, difference=difference)})
    for case in out:
        case["gbstats"] = analyse(case)
    return out


def srm_cases(rng):
    from gbstats.utils import check_srm

    out = []
    for _ in range(40):
        arms = rng.choice([2, 3, 4])
        weights = [rng.choice([1.0, 2.0, 0.5, 0.0]) for _ in range(arms)]
        if not any(weights):
            weights[0] = 1.0
        scale = rng.choice([100, 10_000, 1_000_000])
        skew = rng.choice([0.0, 0.01, 0.05])
        units = [float(int(w * scale * (1 + rng.uniform(-skew, skew)))) for w in weights]
        out.append({"units": units, "weights": weights, "p_value": float(check_srm(units, weights))})
    return out


def fdr_cases(rng):
    from scipy.stats import false_discovery_control

    out = []
    for _ in range(20):
        ps = [rng.random() ** 3 for _ in range(rng.choice([1, 2, 5, 15]))]
        out.append({"p_values": ps, "benjamini_hochberg": [float(p) for p in false_discovery_control(ps)]})
    return out


def main():
    import gbstats  # noqa: F401 (fails loudly outside the venv)

    rng = random.Random(SEED)
    document = {
        "generator": "crates/stats/vectors/generate.py",
        "gbstats": "0.8.0",
        "seed": SEED,
        "comparisons": cases(rng),
        "srm": srm_cases(rng),
        "fdr": fdr_cases(rng),
    }
    text = json.dumps(document, indent=1, allow_nan=True) + "\n"
    if "--out" in sys.argv:
        with open(sys.argv[sys.argv.index("--out") + 1], "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
