//! One project's share of a fold: which units keep their rows and move by the new events,
//! which are recounted, and the rows they end with.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::AnyConnection;

use super::{
    Folding,
    rows::{self, Kept, Membership, Only, RowKey},
    slices,
};
use crate::biz::{
    dimensions::{Segment, Segmenter},
    error::StoreError,
    model::{ExperimentDefinition, State},
    unit_values::{
        Contribution, MULTIPLE_ROW as MULTIPLE, MetricPlan, UNITS_ROW as UNITS, UnitEvent, finish, raw_sums,
    },
};

/// What a fold needs to know about the experiments the units are in.
struct Context {
    definitions: HashMap<String, ExperimentDefinition>,
    plans: HashMap<String, MetricPlan>,
    /// (experiment, phase, unit) → the unit's slices, for experiments with dimensions.
    segments: HashMap<(String, u32, String), Segment>,
}

impl Context {
    /// The experiment of a membership, when the unit counts in it (the experiment exists and
    /// is past its draft).
    fn definition(&self, membership: &Membership) -> Option<&ExperimentDefinition> {
        self.definitions
            .get(&membership.experiment)
            .filter(|definition| definition.lifecycle.state != State::Draft)
    }

    fn segment(&self, membership: &Membership) -> Segment {
        self.segments
            .get(&(membership.experiment.clone(), membership.phase, membership.unit.clone()))
            .cloned()
            .unwrap_or_default()
    }

    fn phase_end(definition: &ExperimentDefinition, membership: &Membership) -> Option<i64> {
        definition
            .lifecycle
            .phases
            .iter()
            .find(|phase| phase.number == membership.phase)
            .and_then(|phase| phase.end_ms)
    }
}

/// Folds the project's share; returns how many kept rows it wrote.
pub async fn fold(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    folding: &Folding,
) -> Result<usize, StoreError> {
    let units: Vec<String> = folding
        .exposed
        .iter()
        .chain(folding.events.keys())
        .chain(&folding.recount)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let memberships = rows::memberships(conn, tenant, project, &units).await?;
    if memberships.is_empty() {
        return Ok(0);
    }
    let context = context_of(conn, tenant, project, &memberships).await?;
    let before = rows::contributions(conn, tenant, project, &units, None).await?;

    let mut recount = stale_units(&context, &memberships, &before);
    recount.extend(folding.recount.iter().cloned());
    let mut after: BTreeMap<RowKey, Kept> = before
        .iter()
        .filter(|(key, _)| !recount.contains(&key.3))
        .map(|(key, kept)| (key.clone(), kept.clone()))
        .collect();
    for membership in memberships.iter().filter(|m| !recount.contains(&m.unit)) {
        if let Some(events) = folding.events.get(&membership.unit) {
            add_events(&context, membership, events, &mut after);
        }
    }
    if !recount.is_empty() {
        let recount: Vec<String> = recount.into_iter().collect();
        let events = rows::settled_events(conn, tenant, project, &recount, &[]).await?;
        for membership in memberships.iter().filter(|m| recount.binary_search(&m.unit).is_ok()) {
            let unit_events = events.get(&membership.unit).map_or(&[][..], Vec::as_slice);
            recount_membership(&context, membership, unit_events, None, &mut after);
        }
    }
    rows::apply(conn, tenant, project, &before, &after).await
}

/// Recounts the metrics of `only` in its experiment for `units`, from their settled raw events
/// of those metrics alone, leaving every other kept row as it is (a rebuild after a metric
/// changed: nothing else of the units changed); returns how many kept rows it wrote.
pub async fn recount_only(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    units: &[String],
    only: &Only,
) -> Result<usize, StoreError> {
    let memberships: Vec<Membership> = rows::memberships(conn, tenant, project, units)
        .await?
        .into_iter()
        .filter(|membership| membership.experiment == only.experiment)
        .collect();
    if memberships.is_empty() {
        return Ok(0);
    }
    let context = context_of(conn, tenant, project, &memberships).await?;
    let names: Vec<&str> = only
        .metrics
        .iter()
        .filter_map(|metric| context.plans.get(metric))
        .flat_map(MetricPlan::events)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let before = rows::contributions(conn, tenant, project, units, Some(only)).await?;
    let events = if names.is_empty() {
        HashMap::new()
    } else {
        rows::settled_events(conn, tenant, project, units, &names).await?
    };
    let mut after = BTreeMap::new();
    for membership in &memberships {
        let unit_events = events.get(&membership.unit).map_or(&[][..], Vec::as_slice);
        recount_membership(&context, membership, unit_events, Some(&only.metrics), &mut after);
    }
    rows::apply(conn, tenant, project, &before, &after).await
}

/// The definitions, metric plans and segments the memberships are counted by.
async fn context_of(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    memberships: &[Membership],
) -> Result<Context, StoreError> {
    let mut definitions = HashMap::new();
    for key in memberships
        .iter()
        .map(|m| m.experiment.as_str())
        .collect::<BTreeSet<_>>()
    {
        if let Some(definition) = rows::experiment(conn, tenant, project, key).await? {
            definitions.insert(key.to_owned(), definition);
        }
    }
    let plans = rows::plans(conn, tenant, project, definitions.values()).await?;
    let mut context = Context {
        definitions,
        plans,
        segments: HashMap::new(),
    };
    context.segments = segments(conn, tenant, project, &context, memberships).await?;
    Ok(context)
}

/// Each membership's slices in its experiment's dimensions, starting from the slices each
/// phase already keeps (so the cap on distinct values holds across folds).
async fn segments(
    conn: &mut AnyConnection,
    tenant: &str,
    project: &str,
    context: &Context,
    memberships: &[Membership],
) -> Result<HashMap<(String, u32, String), Segment>, StoreError> {
    let mut segmenters: HashMap<(String, u32), Segmenter> = HashMap::new();
    let mut out = HashMap::new();
    for membership in memberships {
        let Some(definition) = context.definition(membership) else {
            continue;
        };
        if definition.spec.dimensions.is_empty() {
            continue;
        }
        let phase = (membership.experiment.clone(), membership.phase);
        if !segmenters.contains_key(&phase) {
            let kept = slices::kept_slices(conn, tenant, project, &membership.experiment, membership.phase).await?;
            segmenters.insert(phase.clone(), Segmenter::new(kept));
        }
        let Some(segmenter) = segmenters.get_mut(&phase) else {
            continue;
        };
        let segment = segmenter.segment(&definition.spec.dimensions, &membership.attributes);
        out.insert((phase.0, phase.1, membership.unit.clone()), segment);
    }
    Ok(out)
}

/// Units whose kept rows do not match their memberships: new to an experiment, exposed
/// earlier than the rows say, moved to another arm or to several, in other slices, or missing
/// a metric.
fn stale_units(context: &Context, memberships: &[Membership], kept: &BTreeMap<RowKey, Kept>) -> BTreeSet<String> {
    let mut stale = BTreeSet::new();
    for membership in memberships {
        let Some(definition) = context.definition(membership) else {
            continue;
        };
        let row = |metric: &str| {
            kept.get(&(
                membership.experiment.clone(),
                membership.phase,
                metric.to_owned(),
                membership.unit.clone(),
            ))
        };
        let marker = if membership.multiple { MULTIPLE } else { UNITS };
        let current = row(marker).is_some_and(|kept| {
            kept.variant == membership.variant
                && kept.exposed_ms == membership.first_exposed_ms
                && kept.segment == context.segment(membership)
        });
        let complete = membership.multiple
            || definition
                .spec
                .metric_keys()
                .into_iter()
                .filter(|metric| context.plans.contains_key(*metric))
                .all(|metric| row(metric).is_some());
        if !current || !complete {
            stale.insert(membership.unit.clone());
        }
    }
    stale
}

/// Moves a unit's kept rows by what `events` add.
fn add_events(context: &Context, membership: &Membership, events: &[UnitEvent], rows: &mut BTreeMap<RowKey, Kept>) {
    let Some(definition) = context.definition(membership) else {
        return;
    };
    if membership.multiple {
        return;
    }
    let phase_end = Context::phase_end(definition, membership);
    for metric in definition.spec.metric_keys() {
        let Some(plan) = context.plans.get(metric) else {
            continue;
        };
        let added = raw_sums(plan, events, membership.first_exposed_ms, phase_end);
        if added == Contribution::default() {
            continue;
        }
        let key = (
            membership.experiment.clone(),
            membership.phase,
            metric.to_owned(),
            membership.unit.clone(),
        );
        if let Some(kept) = rows.get_mut(&key) {
            kept.raw = kept.raw + added;
            kept.value = finish(plan, kept.raw);
        }
    }
}

/// A unit's rows in one experiment phase, from all its settled events; with `only`, just the
/// rows of those metrics (its marker rows, and a unit seen in several arms, are left as kept).
fn recount_membership(
    context: &Context,
    membership: &Membership,
    events: &[UnitEvent],
    only: Option<&[String]>,
    rows: &mut BTreeMap<RowKey, Kept>,
) {
    let Some(definition) = context.definition(membership) else {
        return;
    };
    let segment = context.segment(membership);
    let mut put = |metric: &str, raw: Contribution, value: Contribution| {
        let key = (
            membership.experiment.clone(),
            membership.phase,
            metric.to_owned(),
            membership.unit.clone(),
        );
        rows.insert(
            key,
            Kept {
                variant: membership.variant.clone(),
                value,
                raw,
                exposed_ms: membership.first_exposed_ms,
                segment: segment.clone(),
            },
        );
    };
    let one = Contribution { x: 1.0, y: 0.0 };
    match (only, membership.multiple) {
        (Some(_), true) => return,
        (Some(_), false) => {}
        (None, true) => {
            put(MULTIPLE, one, one);
            return;
        }
        (None, false) => put(UNITS, one, one),
    }
    let phase_end = Context::phase_end(definition, membership);
    let recounted = |metric: &&str| only.is_none_or(|only| only.iter().any(|key| key == metric));
    for metric in definition.spec.metric_keys().into_iter().filter(recounted) {
        let Some(plan) = context.plans.get(metric) else {
            continue;
        };
        let raw = raw_sums(plan, events, membership.first_exposed_ms, phase_end);
        put(metric, raw, finish(plan, raw));
    }
}
