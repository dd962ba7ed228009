//! What one unit contributes to one metric: its value after exposure (x) and, for CUPED, before
//! it (y); for a ratio, its numerator (x) and denominator (y).
//!
//! A contribution is kept in two forms. The *raw* sums (conversions counted, values summed,
//! nothing capped) are additive over disjoint sets of events, so a batch of new events moves
//! them by [`raw_sums`] of that batch alone and no raw event is read again. The *value*
//! ([`finish`]: a binomial is 1 once the unit converted, a capped metric is capped) is what the
//! arm statistics sum; they move by the difference between a unit's old and new value.

use super::model::{Capping, MetricDefinition, MetricKind};

/// The kept row that counts a unit in its arm: the arm's units, for SRM and the results.
pub const UNITS_ROW: &str = "$units";
/// The kept row that counts a unit seen in several arms, left out of every metric.
pub const MULTIPLE_ROW: &str = "$multiple";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// One of a unit's events.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitEvent {
    pub name: String,
    pub value: f64,
    pub occurred_ms: i64,
}

/// A unit's (x, y) for one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Contribution {
    pub x: f64,
    pub y: f64,
}

/// How a unit's events are read for one metric: its definition, and for ratios its parts.
#[derive(Debug, Clone)]
pub enum MetricPlan {
    Simple(MetricDefinition),
    Ratio {
        numerator: MetricDefinition,
        denominator: MetricDefinition,
    },
}

impl MetricPlan {
    /// The event names whose events move this metric.
    pub fn events(&self) -> Vec<&str> {
        match self {
            MetricPlan::Simple(metric) => vec![metric.event.as_str()],
            MetricPlan::Ratio { numerator, denominator } => vec![numerator.event.as_str(), denominator.event.as_str()],
        }
    }
}

/// The unit's contribution given when it was first exposed and, if the phase ended, when.
pub fn contribution(
    plan: &MetricPlan,
    events: &[UnitEvent],
    first_exposed_ms: i64,
    phase_end_ms: Option<i64>,
) -> Contribution {
    finish(plan, raw_sums(plan, events, first_exposed_ms, phase_end_ms))
}

/// The raw sums `events` give the unit: additive, so `raw_sums(a ∪ b) = raw_sums(a) +
/// raw_sums(b)` for disjoint `a` and `b`.
pub fn raw_sums(
    plan: &MetricPlan,
    events: &[UnitEvent],
    first_exposed_ms: i64,
    phase_end_ms: Option<i64>,
) -> Contribution {
    match plan {
        MetricPlan::Simple(metric) => Contribution {
            x: post_value(metric, events, first_exposed_ms, phase_end_ms),
            y: metric
                .cuped_lookback_days
                .map_or(0.0, |days| pre_value(metric, events, first_exposed_ms, days)),
        },
        MetricPlan::Ratio { numerator, denominator } => Contribution {
            x: post_value(numerator, events, first_exposed_ms, phase_end_ms),
            y: post_value(denominator, events, first_exposed_ms, phase_end_ms),
        },
    }
}

/// The value the arm statistics count, from the raw sums.
pub fn finish(plan: &MetricPlan, raw: Contribution) -> Contribution {
    match plan {
        MetricPlan::Simple(metric) => Contribution {
            x: finish_one(metric, raw.x),
            y: finish_one(metric, raw.y),
        },
        MetricPlan::Ratio { numerator, denominator } => Contribution {
            x: finish_one(numerator, raw.x),
            y: finish_one(denominator, raw.y),
        },
    }
}

impl std::ops::Add for Contribution {
    type Output = Contribution;

    fn add(self, other: Contribution) -> Contribution {
        Contribution {
            x: self.x + other.x,
            y: self.y + other.y,
        }
    }
}

/// Binomial: converted or not; mean: capped when the metric says so.
fn finish_one(metric: &MetricDefinition, raw: f64) -> f64 {
    match metric.kind {
        MetricKind::Binomial => {
            if raw > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        MetricKind::Mean | MetricKind::Ratio => match metric.capping {
            Capping::Absolute(cap) => raw.min(cap),
            // Percentile caps need every unit's value: results apply them (biz::analysis).
            Capping::Percentile(_) | Capping::None => raw,
        },
    }
}

/// The metric's raw sum over [first exposure, first exposure + window), cut at the phase's end.
fn post_value(
    metric: &MetricDefinition,
    events: &[UnitEvent],
    first_exposed_ms: i64,
    phase_end_ms: Option<i64>,
) -> f64 {
    let window_end = match metric.window_hours {
        0 => i64::MAX,
        hours => first_exposed_ms.saturating_add(i64::from(hours) * HOUR_MS),
    };
    let end = phase_end_ms.map_or(window_end, |phase_end| phase_end.min(window_end));
    aggregate(metric, events, first_exposed_ms, end)
}

/// The metric's raw sum over the lookback before the first exposure (CUPED's covariate).
fn pre_value(metric: &MetricDefinition, events: &[UnitEvent], first_exposed_ms: i64, days: u32) -> f64 {
    let start = first_exposed_ms.saturating_sub(i64::from(days) * DAY_MS);
    aggregate(metric, events, start, first_exposed_ms)
}

/// Binomial: how many events in [start, end); mean: their sum.
fn aggregate(metric: &MetricDefinition, events: &[UnitEvent], start: i64, end: i64) -> f64 {
    let matching = events
        .iter()
        .filter(|event| event.name == metric.event && event.occurred_ms >= start && event.occurred_ms < end);
    match metric.kind {
        MetricKind::Binomial => matching.count() as f64,
        MetricKind::Mean | MetricKind::Ratio => matching.map(|event| event.value).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(kind: MetricKind, window_hours: u32, capping: Capping, cuped: Option<u32>) -> MetricDefinition {
        MetricDefinition {
            display_name: String::new(),
            description: String::new(),
            kind,
            event: "purchase".into(),
            numerator: String::new(),
            denominator: String::new(),
            window_hours,
            capping,
            inverse: false,
            cuped_lookback_days: cuped,
        }
    }

    fn event(value: f64, at_hours: i64) -> UnitEvent {
        UnitEvent {
            name: "purchase".into(),
            value,
            occurred_ms: at_hours * HOUR_MS,
        }
    }

    #[test]
    fn binomial_counts_a_conversion_inside_the_window_only() {
        let plan = MetricPlan::Simple(metric(MetricKind::Binomial, 24, Capping::None, None));
        let exposed = 100 * HOUR_MS;
        assert_eq!(
            contribution(&plan, &[event(1.0, 99)], exposed, None).x,
            0.0,
            "before exposure"
        );
        assert_eq!(contribution(&plan, &[event(1.0, 110)], exposed, None).x, 1.0);
        assert_eq!(
            contribution(&plan, &[event(1.0, 125)], exposed, None).x,
            0.0,
            "after the window"
        );
        assert_eq!(
            contribution(&plan, &[event(1.0, 110)], exposed, Some(105 * HOUR_MS)).x,
            0.0,
            "after the phase"
        );
    }

    #[test]
    fn mean_sums_caps_and_reads_the_lookback_for_cuped() {
        let plan = MetricPlan::Simple(metric(MetricKind::Mean, 0, Capping::Absolute(100.0), Some(14)));
        let exposed = 1000 * HOUR_MS;
        let events = [event(30.0, 990), event(80.0, 1001), event(50.0, 1500), event(7.0, 10)];
        let c = contribution(&plan, &events, exposed, None);
        assert_eq!(c.x, 100.0, "80 + 50 capped at 100");
        assert_eq!(c.y, 30.0, "only the 14 days before exposure");
    }

    #[test]
    fn a_ratio_reads_its_two_parts() {
        let mut denominator = metric(MetricKind::Mean, 0, Capping::None, None);
        denominator.event = "session".into();
        let plan = MetricPlan::Ratio {
            numerator: metric(MetricKind::Mean, 0, Capping::None, None),
            denominator,
        };
        let events = [
            event(20.0, 2),
            UnitEvent {
                name: "session".into(),
                value: 1.0,
                occurred_ms: 2 * HOUR_MS,
            },
            UnitEvent {
                name: "session".into(),
                value: 1.0,
                occurred_ms: 3 * HOUR_MS,
            },
        ];
        assert_eq!(
            contribution(&plan, &events, HOUR_MS, None),
            Contribution { x: 20.0, y: 2.0 }
        );
    }

    #[test]
    fn raw_sums_of_two_batches_finish_like_all_events_at_once() {
        let plan = MetricPlan::Simple(metric(MetricKind::Mean, 0, Capping::Absolute(100.0), Some(14)));
        let exposed = 1000 * HOUR_MS;
        let first = [event(30.0, 990), event(80.0, 1001)];
        let second = [event(50.0, 1500), event(5.0, 995)];
        let all: Vec<UnitEvent> = first.iter().chain(&second).cloned().collect();
        let split = raw_sums(&plan, &first, exposed, None) + raw_sums(&plan, &second, exposed, None);
        assert_eq!(finish(&plan, split), contribution(&plan, &all, exposed, None));
        assert_eq!(finish(&plan, split), Contribution { x: 100.0, y: 35.0 });

        let binomial = MetricPlan::Simple(metric(MetricKind::Binomial, 0, Capping::None, None));
        let twice = raw_sums(&binomial, &[event(1.0, 1001)], exposed, None)
            + raw_sums(&binomial, &[event(1.0, 1002)], exposed, None);
        assert_eq!(twice.x, 2.0, "raw counts conversions");
        assert_eq!(finish(&binomial, twice).x, 1.0, "the unit converted once");
    }
}
