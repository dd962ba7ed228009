//! Exposures and metric events coming in: checked one by one (a bad event is refused with
//! its reason, the rest of the batch goes on), deduplicated by id, and stored durably before
//! the caller hears back. A bounded number of batches is in flight at once; beyond that the
//! caller is told to retry, and nothing of its batch is stored.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use switchyard_platform::auth::Role;
use tokio::sync::{Notify, Semaphore};

use super::{
    assignment::Assigner,
    error::{ExperimentError, ExperimentResult},
    holdout_comparison::{arm_of, comparison_key},
    layers::ResolvedHoldout,
    management::Caller,
    model::{Phase, StoredExperiment, TARGETING_KEY},
    repository::ExperimentRepository,
};

/// Most exposures or events in one batch.
pub const MAX_BATCH: usize = 10_000;
const MAX_ID: usize = 128;
const MAX_UNIT: usize = 256;
const MAX_NAME: usize = 128;
const MAX_ATTRIBUTES: usize = 20;
const MAX_ATTRIBUTE: usize = 128;

/// The bounds ingestion enforces.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Events older than this (by their own time) are refused.
    pub max_age_ms: i64,
    /// Events this far ahead of the server's clock are refused.
    pub max_skew_ms: i64,
    /// Batches stored at once; more are told to retry.
    pub max_in_flight: usize,
}

/// An exposure as the API gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureInput {
    pub id: String,
    pub experiment: String,
    pub unit: String,
    pub variant: String,
    pub environment: String,
    pub time_ms: Option<i64>,
    pub attributes: BTreeMap<String, String>,
}

/// A metric event as the API gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput {
    pub id: String,
    pub name: String,
    pub unit: String,
    pub value: Option<f64>,
    pub time_ms: Option<i64>,
    pub environment: String,
}

/// A checked exposure, placed in the phase that was running when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExposure {
    pub id: String,
    pub experiment: String,
    pub phase: u32,
    pub unit: String,
    pub variant: String,
    pub environment: String,
    pub exposed_ms: i64,
    /// JSON object text.
    pub attributes: String,
}

/// A checked metric event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: String,
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub occurred_ms: i64,
    pub environment: String,
}

/// One refused item: its position in the batch, its id, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub index: usize,
    pub id: String,
    pub reason: String,
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub stored: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone)]
pub struct Ingestion<R> {
    repository: R,
    limits: IngestLimits,
    in_flight: Arc<Semaphore>,
    /// Told after every stored batch, so the aggregator folds it at once.
    stored: Arc<Notify>,
}

impl<R: ExperimentRepository + Clone> Ingestion<R> {
    pub fn new(repository: R, limits: IngestLimits, stored: Arc<Notify>) -> Self {
        let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
        Self {
            repository,
            limits,
            in_flight,
            stored,
        }
    }

    pub async fn log_exposures(
        &self,
        caller: Caller<'_>,
        project: &str,
        exposures: Vec<ExposureInput>,
        now_ms: i64,
    ) -> ExperimentResult<BatchOutcome> {
        caller.require(Role::Editor, &format!("projects/{project}"))?;
        check_size("exposures", exposures.len())?;
        let _permit = self.in_flight.try_acquire().map_err(|_| ExperimentError::Overloaded)?;
        self.store_exposures(caller.tenant(), project, exposures, now_ms).await
    }

    /// Stores exposures flag-service reported for flags bound to an experiment (its bus
    /// topic). The id is derived from the flag set, experiment, arm and unit, so repeats count
    /// once and the first exposure's time stands; refusals (an experiment no longer running)
    /// are dropped. A flag bound to an experiment also serves units outside it (beyond its
    /// coverage, outside its targeting, held out) the flag's own value; those are no exposures,
    /// so each is kept only when the experiment's own rule, evaluated by flag-engine on the
    /// evaluation's context, puts the unit in the arm it was served. Every unit evaluated also
    /// enters the comparison of each holdout the experiment leaves alone, held out or not.
    pub async fn ingest_flag_exposures(&self, exposures: Vec<FlagExposure>, now_ms: i64) -> ExperimentResult<usize> {
        let mut by_project: BTreeMap<(String, String), (Vec<ExposureInput>, Vec<NewExposure>)> = BTreeMap::new();
        let mut rules: HashMap<(String, String, String), Option<ExposureRule>> = HashMap::new();
        for exposure in exposures {
            let Some((project, environment)) = flag_set_parts(&exposure.flag_set) else {
                continue;
            };
            let rule_key = (exposure.tenant.clone(), project.clone(), exposure.experiment.clone());
            if !rules.contains_key(&rule_key) {
                let rule = self
                    .repository
                    .experiment(&exposure.tenant, &project, &exposure.experiment)
                    .await?
                    .and_then(|stored| {
                        let lifecycle = &stored.definition.lifecycle;
                        let assigner =
                            Assigner::new(&stored.definition.spec, &lifecycle.phases, &lifecycle.exclusions)?;
                        Some((assigner, lifecycle.exclusions.holdouts.clone()))
                    });
                rules.insert(rule_key.clone(), rule);
            }
            let Some((assigner, holdouts)) = rules.get(&rule_key).and_then(Option::as_ref) else {
                continue;
            };
            let id = derived_id(&exposure);
            let attributes = kept_attributes(&exposure.context);
            let (inputs, derived) = by_project.entry((exposure.tenant.clone(), project)).or_default();
            if let Ok(time) = self.check_time(Some(exposure.timestamp_ms), now_ms) {
                derived.extend(holdout_exposures(
                    &exposure,
                    holdouts,
                    &id,
                    &environment,
                    time,
                    &attributes,
                ));
            }
            let mut context = flag_engine::Context::from(exposure.context.clone());
            context.insert(
                "targetingKey",
                serde_json::Value::String(exposure.targeting_key.clone()),
            );
            if assigner.assign(&context).as_deref() != Some(exposure.variant.as_str()) {
                continue;
            }
            inputs.push(ExposureInput {
                id,
                experiment: exposure.experiment,
                unit: exposure.targeting_key,
                variant: exposure.variant,
                environment,
                time_ms: Some(exposure.timestamp_ms),
                attributes,
            });
        }
        let mut stored = 0;
        for ((tenant, project), (inputs, derived)) in by_project {
            for chunk in inputs.chunks(MAX_BATCH) {
                stored += self
                    .store_exposures(&tenant, &project, chunk.to_vec(), now_ms)
                    .await?
                    .stored;
            }
            for chunk in derived.chunks(MAX_BATCH) {
                let new = self
                    .repository
                    .store_exposures(&tenant, &project, chunk, now_ms)
                    .await?;
                stored += new.iter().filter(|new| **new).count();
                self.stored.notify_one();
            }
        }
        Ok(stored)
    }

    async fn store_exposures(
        &self,
        tenant: &str,
        project: &str,
        exposures: Vec<ExposureInput>,
        now_ms: i64,
    ) -> ExperimentResult<BatchOutcome> {
        let mut experiments: HashMap<String, Option<StoredExperiment>> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        let mut accepted = Vec::with_capacity(exposures.len());
        for (index, exposure) in exposures.into_iter().enumerate() {
            if !experiments.contains_key(&exposure.experiment) && check_key(&exposure.experiment).is_ok() {
                let found = self
                    .repository
                    .experiment(tenant, project, &exposure.experiment)
                    .await?;
                experiments.insert(exposure.experiment.clone(), found);
            }
            let experiment = experiments.get(&exposure.experiment).and_then(Option::as_ref);
            let id = exposure.id.clone();
            match self.check_exposure(exposure, experiment, now_ms) {
                Ok(checked) => accepted.push(checked),
                Err(reason) => outcome.rejected.push(Rejection { index, id, reason }),
            }
        }
        let stored = self
            .repository
            .store_exposures(tenant, project, &accepted, now_ms)
            .await?;
        self.stored.notify_one();
        count(&mut outcome, &stored);
        Ok(outcome)
    }

    pub async fn log_events(
        &self,
        caller: Caller<'_>,
        project: &str,
        events: Vec<EventInput>,
        now_ms: i64,
    ) -> ExperimentResult<BatchOutcome> {
        caller.require(Role::Editor, &format!("projects/{project}"))?;
        check_size("events", events.len())?;
        let _permit = self.in_flight.try_acquire().map_err(|_| ExperimentError::Overloaded)?;
        let tenant = caller.tenant();
        let known = self.repository.event_names(tenant, project).await?;
        let mut outcome = BatchOutcome::default();
        let mut accepted = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            match self.check_event(&event, &known, now_ms) {
                Ok(checked) => accepted.push(checked),
                Err(reason) => outcome.rejected.push(Rejection {
                    index,
                    id: event.id,
                    reason,
                }),
            }
        }
        let stored = self.repository.store_events(tenant, project, &accepted, now_ms).await?;
        self.stored.notify_one();
        count(&mut outcome, &stored);
        Ok(outcome)
    }

    fn check_exposure(
        &self,
        exposure: ExposureInput,
        experiment: Option<&StoredExperiment>,
        now_ms: i64,
    ) -> Result<NewExposure, String> {
        check_text("id", &exposure.id, MAX_ID)?;
        check_text("unit", &exposure.unit, MAX_UNIT)?;
        check_key(&exposure.experiment)?;
        let Some(experiment) = experiment else {
            return Err(format!("no experiment `{}` in this project", exposure.experiment));
        };
        let spec = &experiment.definition.spec;
        if !spec.arms.iter().any(|arm| arm.variant == exposure.variant) {
            return Err(format!(
                "`{}` is not an arm of `{}`",
                exposure.variant, exposure.experiment
            ));
        }
        if !exposure.environment.is_empty() && !spec.environments.contains(&exposure.environment) {
            return Err(format!(
                "`{}` does not run in `{}`",
                exposure.experiment, exposure.environment
            ));
        }
        if exposure.attributes.len() > MAX_ATTRIBUTES {
            return Err(format!("at most {MAX_ATTRIBUTES} attributes"));
        }
        for (name, value) in &exposure.attributes {
            check_text("attribute name", name, MAX_ATTRIBUTE)?;
            check_text_allow_empty("attribute value", value, MAX_ATTRIBUTE)?;
        }
        let time = self.check_time(exposure.time_ms, now_ms)?;
        let phase = phase_at(&experiment.definition.lifecycle.phases, time)
            .ok_or_else(|| format!("`{}` was not running at that time", exposure.experiment))?;
        let attributes = serde_json::to_string(&exposure.attributes).map_err(|error| error.to_string())?;
        Ok(NewExposure {
            id: exposure.id,
            experiment: exposure.experiment,
            phase: phase.number,
            unit: exposure.unit,
            variant: exposure.variant,
            environment: exposure.environment,
            exposed_ms: time,
            attributes,
        })
    }

    fn check_event(&self, event: &EventInput, known: &HashSet<String>, now_ms: i64) -> Result<NewEvent, String> {
        check_text("id", &event.id, MAX_ID)?;
        check_text("unit", &event.unit, MAX_UNIT)?;
        check_text("name", &event.name, MAX_NAME)?;
        if !known.contains(&event.name) {
            return Err(format!("no metric of this project uses events named `{}`", event.name));
        }
        let value = event.value.unwrap_or(1.0);
        if !value.is_finite() {
            return Err("value must be a finite number".to_owned());
        }
        if event.environment.len() > MAX_NAME {
            return Err(format!("environment: at most {MAX_NAME} bytes"));
        }
        Ok(NewEvent {
            id: event.id.clone(),
            name: event.name.clone(),
            unit: event.unit.clone(),
            value,
            occurred_ms: self.check_time(event.time_ms, now_ms)?,
            environment: event.environment.clone(),
        })
    }

    fn check_time(&self, time_ms: Option<i64>, now_ms: i64) -> Result<i64, String> {
        let time = time_ms.unwrap_or(now_ms);
        if time > now_ms.saturating_add(self.limits.max_skew_ms) {
            return Err(format!(
                "time is {} s ahead of the server; at most {} s of clock skew is accepted",
                (time - now_ms) / 1000,
                self.limits.max_skew_ms / 1000
            ));
        }
        if time < now_ms.saturating_sub(self.limits.max_age_ms) {
            return Err(format!(
                "time is more than {} hours in the past",
                self.limits.max_age_ms / 3_600_000
            ));
        }
        Ok(time)
    }
}

/// One exposure as flag-service publishes it (JSON lines on `flag-service.exposures`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagExposure {
    pub tenant: String,
    pub experiment: String,
    /// `projects/{project}/environments/{environment}` for managed flags.
    pub flag_set: String,
    pub flag: String,
    pub variant: String,
    pub targeting_key: String,
    pub timestamp_ms: i64,
    /// The evaluation context's simple attributes.
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// (project, environment) of a managed flag set; flag files have no project.
fn flag_set_parts(flag_set: &str) -> Option<(String, String)> {
    let ids = switchyard_platform::names::parse_name("flag_set", flag_set, "projects/*/environments/*").ok()?;
    Some((ids[0].clone(), ids[1].clone()))
}

/// One id per (flag set, experiment, arm, unit): a unit's repeated exposures count once.
/// The unit's place in the comparison of each holdout, with an id derived from the
/// exposure's. The unit is the evaluation's targeting key, as for the experiment's own
/// exposures (metric events name it); its arm is the holdout's own hash of the holdout's
/// attribute. A unit the experiment's exposures would refuse (empty, too long) is left out.
fn holdout_exposures(
    exposure: &FlagExposure,
    holdouts: &[ResolvedHoldout],
    id: &str,
    environment: &str,
    time: i64,
    attributes: &BTreeMap<String, String>,
) -> Vec<NewExposure> {
    if check_text("unit", &exposure.targeting_key, MAX_UNIT).is_err() {
        return Vec::new();
    }
    let attributes = serde_json::to_string(attributes).unwrap_or_else(|_| "{}".to_owned());
    holdouts
        .iter()
        .filter_map(|holdout| {
            let value = if holdout.attribute == TARGETING_KEY {
                exposure.targeting_key.clone()
            } else {
                let value = exposure.context.get(&holdout.attribute)?;
                value.as_str().map_or_else(|| value.to_string(), str::to_owned)
            };
            let key = comparison_key(&holdout.holdout);
            Some(NewExposure {
                id: format!("{id}|{key}"),
                variant: arm_of(holdout, &value).to_owned(),
                experiment: key,
                phase: 1,
                unit: exposure.targeting_key.clone(),
                environment: environment.to_owned(),
                exposed_ms: time,
                attributes: attributes.clone(),
            })
        })
        .collect()
}

/// What a flag exposure is checked against: the experiment's rule, and the holdouts it leaves
/// alone.
type ExposureRule = (Assigner, Vec<ResolvedHoldout>);

/// The evaluation context's attributes an exposure keeps: values as text (numbers and
/// booleans as JSON), the first [`MAX_ATTRIBUTES`] by name that fit the exposures' limits —
/// flag-service sends up to 32, and an exposure is never refused for its context.
fn kept_attributes(context: &serde_json::Map<String, serde_json::Value>) -> BTreeMap<String, String> {
    context
        .iter()
        .filter(|(key, _)| key.as_str() != TARGETING_KEY)
        .map(|(key, value)| {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            (key.clone(), text)
        })
        .filter(|(key, text)| {
            check_text("attribute name", key, MAX_ATTRIBUTE).is_ok()
                && check_text_allow_empty("attribute value", text, MAX_ATTRIBUTE).is_ok()
        })
        .take(MAX_ATTRIBUTES)
        .collect()
}

fn derived_id(exposure: &FlagExposure) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [
        &exposure.flag_set,
        &exposure.experiment,
        &exposure.variant,
        &exposure.targeting_key,
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    format!("flag:{}", hex::encode(&hasher.finalize()[..16]))
}

/// The phase running at `time_ms`.
pub fn phase_at(phases: &[Phase], time_ms: i64) -> Option<&Phase> {
    phases
        .iter()
        .rev()
        .find(|phase| phase.start_ms <= time_ms && phase.end_ms.is_none_or(|end| time_ms < end))
}

fn count(outcome: &mut BatchOutcome, stored: &[bool]) {
    let new = stored.iter().filter(|stored| **stored).count();
    outcome.stored = new;
    outcome.duplicates = stored.len() - new;
}

fn check_size(field: &str, len: usize) -> ExperimentResult<()> {
    if len == 0 || len > MAX_BATCH {
        return Err(ExperimentError::invalid(field, format!("one to {MAX_BATCH} items")));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    switchyard_platform::names::check_id("experiment", key).map_err(|violation| violation.description)
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} is required"));
    }
    check_text_allow_empty(field, value, max)
}

fn check_text_allow_empty(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field}: at most {max} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field}: no control characters"));
    }
    Ok(())
}
