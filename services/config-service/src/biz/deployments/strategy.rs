//! Deployment strategies: how fast a change reaches its clients, and how long it bakes.
//!
//! A strategy grows linearly or exponentially (AWS AppConfig's formulas: `G·k` and `G·2^N`,
//! capped at 100%) over its duration, or follows an explicit list of steps, each with a pause
//! or an indefinite hold that waits for a human. Growth strategies spread their steps evenly
//! over the duration; unlike AppConfig, the first increment is served at once rather than
//! after one interval, so a deployment never sits at 0% doing nothing. Every strategy ends
//! with a bake at 100% during which the gates keep running.
//!
//! The schedule is a pure function of the strategy, so every replica (and a replica that took
//! over after a crash) computes the same steps.

use serde::{Deserialize, Serialize};

use crate::biz::error::{ConfigError, ConfigResult};

/// 100%, in parts per million: percentages are kept as integers so that a bucket compare is
/// exact and every replica agrees on it.
pub const FULL: u32 = 1_000_000;

/// The longest duration or bake a strategy may have (AppConfig's limit too).
pub const MAX_DURATION_MS: i64 = 24 * 60 * 60 * 1000;

/// The most steps an explicit strategy may list.
pub const MAX_STEPS: usize = 50;

/// How a strategy grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Growth {
    /// `factor`%, then `2·factor`%, … up to 100%.
    Linear { factor: f64 },
    /// `factor·2^0`%, `factor·2^1`%, … up to 100%.
    Exponential { factor: f64 },
    /// Exactly these steps, in order.
    Steps { steps: Vec<Step> },
}

/// One explicit step: a percentage, then a pause before the next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub percentage: f64,
    /// How long to hold this percentage; `None` holds until someone resumes the deployment.
    pub pause_ms: Option<i64>,
}

/// A named, reusable strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    /// `{strategy}` of `projects/{project}/strategies/{strategy}`, or a predefined name.
    pub id: String,
    pub description: String,
    pub growth: Growth,
    /// Total time of the growing phase (for explicit steps: the sum of their pauses).
    pub duration_ms: i64,
    /// Time held at 100%, gates still running, before the deployment completes.
    pub bake_ms: i64,
}

/// A step as the driver runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedStep {
    /// Share of clients on the new version, in parts per million.
    pub share: u32,
    /// How long the step holds; `None` waits for a human.
    pub hold_ms: Option<i64>,
}

const MINUTE: i64 = 60_000;

/// The predefined strategies, named as AppConfig names its own.
pub fn predefined() -> Vec<Strategy> {
    let growth = |id: &str, description: &str, growth: Growth, duration_ms: i64, bake_ms: i64| Strategy {
        id: id.to_owned(),
        description: description.to_owned(),
        growth,
        duration_ms,
        bake_ms,
    };
    vec![
        growth(
            "AllAtOnce",
            "Every client at once, then a 10 minute bake.",
            Growth::Linear { factor: 100.0 },
            0,
            10 * MINUTE,
        ),
        growth(
            "Linear50PercentEvery30Seconds",
            "50% every 30 seconds over 1 minute, then a 1 minute bake. For tests and demonstrations.",
            Growth::Linear { factor: 50.0 },
            MINUTE,
            MINUTE,
        ),
        growth(
            "Linear20PercentEvery6Minutes",
            "20% every 6 minutes over 30 minutes, then a 30 minute bake.",
            Growth::Linear { factor: 20.0 },
            30 * MINUTE,
            30 * MINUTE,
        ),
        growth(
            "Canary10Percent20Minutes",
            "Exponential from 10% (10, 20, 40, 80, 100) over 20 minutes, then a 10 minute bake.",
            Growth::Exponential { factor: 10.0 },
            20 * MINUTE,
            10 * MINUTE,
        ),
    ]
}

/// The predefined strategy called `id`.
pub fn find_predefined(id: &str) -> Option<Strategy> {
    predefined().into_iter().find(|strategy| strategy.id == id)
}

/// A percentage (0–100] as parts per million.
pub fn share_of(percentage: f64) -> u32 {
    (percentage.clamp(0.0, 100.0) * 10_000.0).round() as u32
}

/// Where a client falls, in parts per million: murmur3 (flag-engine's bucketing) of the
/// deployment's seed and the client's id. It depends on nothing else, so a client keeps its
/// side across reconnects and replicas, and a growing share never moves a client back.
pub fn client_bucket(seed: &str, client_id: &str) -> u32 {
    let point = flag_engine::bucketing::bucket_point(&format!("{seed}/{client_id}"), u64::from(FULL));
    u32::try_from(point).unwrap_or(FULL)
}

/// A share in parts per million as a percentage.
pub fn percentage_of(share: u32) -> f64 {
    f64::from(share) / 10_000.0
}

impl Strategy {
    /// Checks the strategy and normalises it: explicit steps get their duration summed.
    pub fn validated(mut self) -> ConfigResult<Strategy> {
        check_duration("strategy.bake", self.bake_ms)?;
        match &self.growth {
            Growth::Linear { factor } | Growth::Exponential { factor } => {
                if !factor.is_finite() || *factor <= 0.0 || *factor > 100.0 {
                    return Err(ConfigError::invalid(
                        "strategy.growth_factor",
                        "a percentage above 0, at most 100",
                    ));
                }
                if share_of(*factor) == 0 {
                    return Err(ConfigError::invalid("strategy.growth_factor", "at least 0.0001%"));
                }
                check_duration("strategy.duration", self.duration_ms)?;
                if self.steps().len() > MAX_STEPS {
                    return Err(ConfigError::invalid(
                        "strategy.growth_factor",
                        format!("grows in more than {MAX_STEPS} steps; use a larger factor"),
                    ));
                }
            }
            Growth::Steps { steps } => {
                check_steps(steps)?;
                self.duration_ms = steps.iter().filter_map(|step| step.pause_ms).sum();
                check_duration("strategy.steps", self.duration_ms)?;
            }
        }
        Ok(self)
    }

    /// The steps the driver runs, the last at 100%.
    pub fn steps(&self) -> Vec<PlannedStep> {
        let shares = match &self.growth {
            Growth::Linear { factor } => growth_shares(|k| factor * (k + 1) as f64),
            Growth::Exponential { factor } => growth_shares(|k| factor * 2f64.powi(k as i32)),
            Growth::Steps { steps } => return explicit_steps(steps),
        };
        let count = shares.len().max(1) as i64;
        let hold = self.duration_ms / count;
        shares
            .into_iter()
            .map(|share| PlannedStep {
                share,
                hold_ms: Some(hold),
            })
            .collect()
    }
}

fn check_duration(field: &str, ms: i64) -> ConfigResult<()> {
    if (0..=MAX_DURATION_MS).contains(&ms) {
        return Ok(());
    }
    Err(ConfigError::invalid(field, "between 0 and 24 hours"))
}

fn check_steps(steps: &[Step]) -> ConfigResult<()> {
    if steps.is_empty() {
        return Err(ConfigError::invalid("strategy.steps", "at least one step"));
    }
    if steps.len() > MAX_STEPS {
        return Err(ConfigError::invalid(
            "strategy.steps",
            format!("at most {MAX_STEPS} steps"),
        ));
    }
    let mut previous = 0;
    for (index, step) in steps.iter().enumerate() {
        let field = format!("strategy.steps[{index}]");
        if !step.percentage.is_finite() || step.percentage <= 0.0 || step.percentage > 100.0 {
            return Err(ConfigError::invalid(&field, "percentage above 0, at most 100"));
        }
        let share = share_of(step.percentage);
        if share <= previous {
            return Err(ConfigError::invalid(&field, "percentages must grow from step to step"));
        }
        previous = share;
        if let Some(pause) = step.pause_ms {
            check_duration(&format!("{field}.pause"), pause)?;
        }
    }
    Ok(())
}

/// Shares from a growth formula: every value below 100%, then 100%.
fn growth_shares(formula: impl Fn(usize) -> f64) -> Vec<u32> {
    let mut shares = Vec::new();
    for k in 0..=MAX_STEPS {
        let share = share_of(formula(k));
        if share >= FULL {
            break;
        }
        if shares.last().is_none_or(|last| share > *last) {
            shares.push(share);
        }
    }
    shares.push(FULL);
    shares
}

/// Explicit steps, with a final 100% step (no pause) added when the list stops short of it.
fn explicit_steps(steps: &[Step]) -> Vec<PlannedStep> {
    let mut planned: Vec<PlannedStep> = steps
        .iter()
        .map(|step| PlannedStep {
            share: share_of(step.percentage),
            hold_ms: step.pause_ms,
        })
        .collect();
    if planned.last().is_none_or(|last| last.share < FULL) {
        planned.push(PlannedStep {
            share: FULL,
            hold_ms: Some(0),
        });
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(strategy: &Strategy) -> Vec<f64> {
        strategy.steps().iter().map(|step| percentage_of(step.share)).collect()
    }

    #[test]
    fn client_buckets_are_stable_spread_and_seeded() {
        assert_eq!(client_bucket("s1", "pod-7"), client_bucket("s1", "pod-7"));
        let below_ten = (0..10_000)
            .filter(|n| client_bucket("s1", &format!("client-{n}")) < share_of(10.0))
            .count();
        assert!((900..1100).contains(&below_ten), "{below_ten} of 10,000 below 10%");
        let moved = (0..1000)
            .filter(|n| {
                let id = format!("client-{n}");
                (client_bucket("s1", &id) < share_of(50.0)) != (client_bucket("s2", &id) < share_of(50.0))
            })
            .count();
        assert!((350..650).contains(&moved), "another seed picks another half: {moved}");
    }

    #[test]
    fn predefined_strategies_follow_appconfig() {
        let all = find_predefined("AllAtOnce").unwrap();
        assert_eq!(shares(&all), [100.0]);
        assert_eq!(all.steps()[0].hold_ms, Some(0));
        let linear50 = find_predefined("Linear50PercentEvery30Seconds").unwrap();
        assert_eq!(shares(&linear50), [50.0, 100.0]);
        assert!(linear50.steps().iter().all(|step| step.hold_ms == Some(30_000)));
        let linear20 = find_predefined("Linear20PercentEvery6Minutes").unwrap();
        assert_eq!(shares(&linear20), [20.0, 40.0, 60.0, 80.0, 100.0]);
        assert!(linear20.steps().iter().all(|step| step.hold_ms == Some(6 * MINUTE)));
        let canary = find_predefined("Canary10Percent20Minutes").unwrap();
        assert_eq!(shares(&canary), [10.0, 20.0, 40.0, 80.0, 100.0]);
        assert!(canary.steps().iter().all(|step| step.hold_ms == Some(4 * MINUTE)));
        for strategy in predefined() {
            assert_eq!(strategy.clone().validated().unwrap(), strategy);
        }
    }

    #[test]
    fn exponential_growth_doubles_from_the_factor() {
        let strategy = Strategy {
            id: "x".into(),
            description: String::new(),
            growth: Growth::Exponential { factor: 2.0 },
            duration_ms: 70_000,
            bake_ms: 0,
        };
        assert_eq!(shares(&strategy), [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 100.0]);
        assert!(strategy.steps().iter().all(|step| step.hold_ms == Some(10_000)));
    }

    #[test]
    fn linear_growth_that_does_not_divide_100_ends_at_100() {
        let strategy = Strategy {
            id: "x".into(),
            description: String::new(),
            growth: Growth::Linear { factor: 30.0 },
            duration_ms: 40_000,
            bake_ms: 0,
        };
        assert_eq!(shares(&strategy), [30.0, 60.0, 90.0, 100.0]);
    }

    #[test]
    fn explicit_steps_keep_their_pauses_and_end_at_100() {
        let strategy = Strategy {
            id: "x".into(),
            description: String::new(),
            growth: Growth::Steps {
                steps: vec![
                    Step {
                        percentage: 1.0,
                        pause_ms: Some(1000),
                    },
                    Step {
                        percentage: 25.0,
                        pause_ms: None,
                    },
                ],
            },
            duration_ms: 0,
            bake_ms: 5000,
        }
        .validated()
        .unwrap();
        assert_eq!(strategy.duration_ms, 1000);
        let steps = strategy.steps();
        assert_eq!(
            steps,
            [
                PlannedStep {
                    share: 10_000,
                    hold_ms: Some(1000)
                },
                PlannedStep {
                    share: 250_000,
                    hold_ms: None
                },
                PlannedStep {
                    share: FULL,
                    hold_ms: Some(0)
                },
            ]
        );
    }

    #[test]
    fn bad_strategies_are_refused_with_the_field_named() {
        let base = |growth: Growth, duration_ms: i64| Strategy {
            id: "x".into(),
            description: String::new(),
            growth,
            duration_ms,
            bake_ms: 0,
        };
        let refused = |strategy: Strategy, field: &str| {
            let error = strategy.validated().unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        };
        refused(base(Growth::Steps { steps: vec![] }, 0), "at least one step");
        refused(base(Growth::Linear { factor: 0.0 }, 0), "strategy.growth_factor");
        refused(base(Growth::Linear { factor: f64::NAN }, 0), "strategy.growth_factor");
        refused(base(Growth::Exponential { factor: 101.0 }, 0), "strategy.growth_factor");
        refused(base(Growth::Linear { factor: 1.0 }, 0), "more than 50 steps");
        refused(base(Growth::Linear { factor: 10.0 }, -1), "strategy.duration");
        refused(
            base(Growth::Linear { factor: 10.0 }, MAX_DURATION_MS + 1),
            "strategy.duration",
        );
        let shrinking = vec![
            Step {
                percentage: 50.0,
                pause_ms: Some(1),
            },
            Step {
                percentage: 20.0,
                pause_ms: Some(1),
            },
        ];
        refused(base(Growth::Steps { steps: shrinking }, 0), "must grow");
    }
}
