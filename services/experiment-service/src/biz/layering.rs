//! The use cases of layers and holdouts: defining them (editors), reading them with the ranges
//! experiments hold (viewers), and resolving what an experiment excludes when it first starts
//! — where a range that overlaps another started experiment's in the same layer is refused,
//! and so is a second running experiment on the same flag.

use switchyard_platform::{auth::Role, clock::now_ms, error::FieldViolation, names::check_id};

use super::{
    error::{ExperimentError, ExperimentResult, StoreError},
    flags::Flags,
    layers::{Exclusions, Holdout, Layer, LayerRange, ResolvedHoldout, ResolvedRange},
    management::{Caller, Manager},
    model::{ExperimentSpec, MAX_SHORT, MAX_TEXT, State, StoredExperiment, TARGETING_KEY, text},
    repository::ExperimentRepository,
};

/// A layer with the ranges started experiments hold in it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerView {
    pub key: String,
    pub layer: Layer,
    pub created_ms: i64,
    /// (experiment, range).
    pub ranges: Vec<(String, LayerRange)>,
}

/// A holdout as read.
#[derive(Debug, Clone, PartialEq)]
pub struct HoldoutView {
    pub key: String,
    pub holdout: Holdout,
    pub created_ms: i64,
}

/// The most held out: beyond half, the experiments would be the minority.
const MAX_HOLDOUT_BUCKETS: i64 = 5_000;
/// Metrics a holdout's own comparison measures.
const MAX_HOLDOUT_METRICS: usize = 20;

/// Defaults an empty attribute to `targetingKey` and an empty seed to the key.
fn defaulted(attribute: &mut String, seed: &mut String, key: &str) {
    if attribute.is_empty() {
        TARGETING_KEY.clone_into(attribute);
    }
    if seed.is_empty() {
        key.clone_into(seed);
    }
}

/// Started experiments hold their layer ranges until archived.
fn holds_ranges(experiment: &StoredExperiment) -> bool {
    matches!(experiment.definition.lifecycle.state, State::Running | State::Stopped)
}

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    pub async fn create_layer(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        mut layer: Layer,
    ) -> ExperimentResult<LayerView> {
        caller.require(Role::Editor, &format!("projects/{project}/layers/{key}"))?;
        let mut out = Vec::new();
        if let Err(violation) = check_id("layer_id", key) {
            out.push(violation);
        }
        text(&mut out, "layer.display_name", &layer.display_name, MAX_SHORT);
        text(&mut out, "layer.description", &layer.description, MAX_TEXT);
        text(
            &mut out,
            "layer.bucketing_attribute",
            &layer.bucketing_attribute,
            MAX_SHORT,
        );
        text(&mut out, "layer.seed", &layer.seed, MAX_SHORT);
        if !out.is_empty() {
            return Err(ExperimentError::Invalid(out));
        }
        defaulted(&mut layer.bucketing_attribute, &mut layer.seed, key);
        let now = now_ms();
        let context = caller.context(project, "create", "");
        self.repository.create_layer(&context, key, &layer, now).await?;
        Ok(LayerView {
            key: key.to_owned(),
            layer,
            created_ms: now,
            ranges: Vec::new(),
        })
    }

    pub async fn layer(&self, caller: Caller<'_>, project: &str, key: &str) -> ExperimentResult<LayerView> {
        caller.require(Role::Viewer, &format!("projects/{project}/layers/{key}"))?;
        self.layers(caller, project)
            .await?
            .into_iter()
            .find(|view| view.key == key)
            .ok_or_else(|| ExperimentError::NotFound(format!("projects/{project}/layers/{key}")))
    }

    pub async fn layers(&self, caller: Caller<'_>, project: &str) -> ExperimentResult<Vec<LayerView>> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        let started = self.started_experiments(caller.tenant(), project).await?;
        let layers = self.repository.layers(caller.tenant(), project).await?;
        Ok(layers
            .into_iter()
            .map(|(key, layer, created_ms)| {
                let ranges = started
                    .iter()
                    .flat_map(|experiment| {
                        experiment
                            .definition
                            .spec
                            .layers
                            .iter()
                            .filter(|range| range.layer == key)
                            .map(|range| (experiment.key.clone(), range.clone()))
                    })
                    .collect();
                LayerView {
                    key,
                    layer,
                    created_ms,
                    ranges,
                }
            })
            .collect())
    }

    pub async fn create_holdout(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        mut holdout: Holdout,
    ) -> ExperimentResult<HoldoutView> {
        caller.require(Role::Editor, &format!("projects/{project}/holdouts/{key}"))?;
        let mut out = Vec::new();
        if let Err(violation) = check_id("holdout_id", key) {
            out.push(violation);
        }
        text(&mut out, "holdout.display_name", &holdout.display_name, MAX_SHORT);
        text(&mut out, "holdout.description", &holdout.description, MAX_TEXT);
        text(
            &mut out,
            "holdout.bucketing_attribute",
            &holdout.bucketing_attribute,
            MAX_SHORT,
        );
        text(&mut out, "holdout.seed", &holdout.seed, MAX_SHORT);
        if !(1..=MAX_HOLDOUT_BUCKETS).contains(&holdout.buckets) {
            out.push(FieldViolation::new(
                "holdout.share",
                "above 0, at most 0.5, in steps of 0.0001",
            ));
        }
        for (index, environment) in holdout.environments.iter().enumerate() {
            if let Err(violation) = check_id(&format!("holdout.environments[{index}]"), environment) {
                out.push(violation);
            }
        }
        self.holdout_metric_violations(caller.tenant(), project, &holdout.metrics, &mut out)
            .await?;
        if !out.is_empty() {
            return Err(ExperimentError::Invalid(out));
        }
        defaulted(&mut holdout.bucketing_attribute, &mut holdout.seed, key);
        let now = now_ms();
        let context = caller.context(project, "create", "");
        self.repository.create_holdout(&context, key, &holdout, now).await?;
        Ok(HoldoutView {
            key: key.to_owned(),
            holdout,
            created_ms: now,
        })
    }

    /// A holdout measures up to [`MAX_HOLDOUT_METRICS`] metrics of its project, each once.
    async fn holdout_metric_violations(
        &self,
        tenant: &str,
        project: &str,
        metrics: &[String],
        out: &mut Vec<FieldViolation>,
    ) -> ExperimentResult<()> {
        if metrics.len() > MAX_HOLDOUT_METRICS {
            out.push(FieldViolation::new(
                "holdout.metrics",
                format!("at most {MAX_HOLDOUT_METRICS}"),
            ));
            return Ok(());
        }
        for (index, metric) in metrics.iter().enumerate() {
            let field = format!("holdout.metrics[{index}]");
            if let Err(violation) = check_id(&field, metric) {
                out.push(violation);
            } else if metrics[..index].contains(metric) {
                out.push(FieldViolation::new(field, "listed twice"));
            } else if self.repository.metric(tenant, project, metric).await?.is_none() {
                out.push(FieldViolation::new(field, "no metric of this project has this key"));
            }
        }
        Ok(())
    }

    pub async fn holdout(&self, caller: Caller<'_>, project: &str, key: &str) -> ExperimentResult<HoldoutView> {
        caller.require(Role::Viewer, &format!("projects/{project}/holdouts/{key}"))?;
        self.holdouts(caller, project)
            .await?
            .into_iter()
            .find(|view| view.key == key)
            .ok_or_else(|| ExperimentError::NotFound(format!("projects/{project}/holdouts/{key}")))
    }

    pub async fn holdouts(&self, caller: Caller<'_>, project: &str) -> ExperimentResult<Vec<HoldoutView>> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        let holdouts = self.repository.holdouts(caller.tenant(), project).await?;
        Ok(holdouts
            .into_iter()
            .map(|(key, holdout, created_ms)| HoldoutView {
                key,
                holdout,
                created_ms,
            })
            .collect())
    }

    /// What experiment `key` excludes when it first starts: its layer ranges (each layer must
    /// exist, and no other started experiment may hold an overlapping range of it) and every
    /// holdout whose scope covers its environments.
    pub(super) async fn resolve_exclusions(
        &self,
        tenant: &str,
        project: &str,
        key: &str,
        spec: &ExperimentSpec,
        started: &[StoredExperiment],
    ) -> ExperimentResult<Exclusions> {
        let layers = self.repository.layers(tenant, project).await?;
        let others: Vec<&StoredExperiment> = started.iter().filter(|experiment| experiment.key != key).collect();
        let mut out = Vec::new();
        let mut resolved = Vec::new();
        for (index, range) in spec.layers.iter().enumerate() {
            let field = format!("experiment.layers[{index}]");
            let Some((_, layer, _)) = layers.iter().find(|(layer_key, _, _)| *layer_key == range.layer) else {
                out.push(FieldViolation::new(
                    field,
                    format!("no layer `{}` in this project", range.layer),
                ));
                continue;
            };
            let taken = others
                .iter()
                .find(|other| other.definition.spec.layers.iter().any(|held| held.overlaps(range)));
            if let Some(other) = taken {
                out.push(FieldViolation::new(
                    field,
                    format!(
                        "overlaps the range experiment `{}` holds in layer `{}`",
                        other.key, range.layer
                    ),
                ));
                continue;
            }
            resolved.push(ResolvedRange {
                layer: range.layer.clone(),
                seed: layer.seed.clone(),
                attribute: layer.bucketing_attribute.clone(),
                from: range.from,
                to: range.to,
            });
        }
        if !out.is_empty() {
            return Err(ExperimentError::Invalid(out));
        }
        let holdouts = self
            .repository
            .holdouts(tenant, project)
            .await?
            .into_iter()
            .filter(|(_, holdout, _)| holdout.covers(&spec.environments))
            .map(|(key, holdout, _)| ResolvedHoldout {
                holdout: key,
                seed: holdout.seed,
                attribute: holdout.bucketing_attribute,
                buckets: holdout.buckets,
            })
            .collect();
        Ok(Exclusions {
            layers: resolved,
            holdouts,
        })
    }

    /// Refuses to start an experiment on a flag another running experiment holds in one of
    /// the same environments: the second rule would overwrite the first in the flag. (Layers
    /// split units between experiments on different flags.)
    pub(super) fn check_flag_is_free(
        key: &str,
        spec: &ExperimentSpec,
        started: &[StoredExperiment],
    ) -> ExperimentResult<()> {
        let holder = started.iter().find(|other| {
            other.key != key
                && other.definition.lifecycle.state == State::Running
                && other.definition.spec.flag == spec.flag
                && other
                    .definition
                    .spec
                    .environments
                    .iter()
                    .any(|environment| spec.environments.contains(environment))
        });
        match holder {
            Some(other) => Err(ExperimentError::invalid(
                "experiment.flag",
                format!(
                    "experiment `{}` runs on flag `{}` in the same environments; stop it first",
                    other.key, spec.flag
                ),
            )),
            None => Ok(()),
        }
    }

    /// Every running or stopped experiment of the project (what `started` means above).
    pub(super) async fn started_experiments(
        &self,
        tenant: &str,
        project: &str,
    ) -> Result<Vec<StoredExperiment>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .repository
                .experiments(tenant, project, None, after.as_deref(), 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            let full = page.len() == 500;
            out.extend(page.into_iter().filter(holds_ranges));
            if !full {
                break;
            }
        }
        Ok(out)
    }
}
