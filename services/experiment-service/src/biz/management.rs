//! The use cases behind the management API: who may do what, the checks that need other
//! resources (a ratio's parts, an experiment's metrics), and the write with its history and
//! audit record.
//!
//! Roles: `viewer` reads, `editor` defines metrics and experiments and archives them,
//! `publisher` starts and stops experiments (they change what users are served).

use switchyard_platform::{
    auth::{Principal, Role},
    clock::now_ms,
    names::check_id,
    page_token,
};

use super::{
    error::{ExperimentError, ExperimentResult, StoreError},
    flags::Flags,
    guardrails::GUARDRAIL_ACTOR,
    lifecycle,
    model::{
        Decision, ExperimentDefinition, ExperimentSpec, MetricDefinition, MetricKind, State, StoredExperiment,
        StoredMetric, TARGETING_KEY,
    },
    repository::{Expected, ExperimentRepository, ExperimentVersion, WriteContext},
};

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1_000;

/// The authenticated caller and the request id to attribute changes to.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub request_id: Option<&'a str>,
    /// The caller's `authorization` header, passed on to flag-service so that an experiment
    /// changes only flags its caller may change.
    pub authorization: Option<&'a str>,
    /// The tenant the services' shared credential acts for, when that is who calls.
    pub act_for_tenant: Option<&'a str>,
}

impl Caller<'_> {
    pub(crate) fn tenant(&self) -> &str {
        &self.principal.tenant
    }

    pub(crate) fn require(&self, role: Role, resource: &str) -> ExperimentResult<()> {
        Ok(self.principal.authorize(&self.principal.tenant, role, resource)?)
    }

    pub(super) fn context(&self, project: &str, action: &'static str, message: &str) -> WriteContext {
        WriteContext {
            tenant: self.principal.tenant.clone(),
            project: project.to_owned(),
            author: self.principal.subject.clone(),
            message: message.to_owned(),
            request_id: self.request_id.map(str::to_owned),
            action,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// A page request as the API gives it.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub size: i32,
    pub token: &'a str,
}

fn metric_resource(project: &str, key: &str) -> String {
    format!("projects/{project}/metrics/{key}")
}

pub(super) fn experiment_resource(project: &str, key: &str) -> String {
    format!("projects/{project}/experiments/{key}")
}

/// An etag read by the caller, or the current version when they sent none (last writer wins).
fn expected_version(etag: Option<i64>, current: i64) -> Expected {
    Expected::Version(etag.unwrap_or(current))
}

#[derive(Debug, Clone)]
pub struct Manager<R, F> {
    pub(super) repository: R,
    pub(super) flags: F,
}

impl<R: ExperimentRepository, F: Flags> Manager<R, F> {
    pub fn new(repository: R, flags: F) -> Self {
        Self { repository, flags }
    }

    pub async fn create_metric(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        definition: MetricDefinition,
    ) -> ExperimentResult<StoredMetric> {
        let resource = metric_resource(project, key);
        caller.require(Role::Editor, &resource)?;
        check_id("metric_id", key)?;
        self.check_metric(caller, project, &definition).await?;
        let context = caller.context(project, "metrics.create", "");
        let now = now_ms();
        let version = self
            .repository
            .write_metric(&context, key, Expected::Absent, &definition, &[], now)
            .await?;
        Ok(StoredMetric {
            key: key.to_owned(),
            definition,
            version,
            created_ms: now,
            updated_ms: now,
        })
    }

    pub async fn update_metric(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        definition: MetricDefinition,
        etag: Option<i64>,
    ) -> ExperimentResult<StoredMetric> {
        let resource = metric_resource(project, key);
        caller.require(Role::Editor, &resource)?;
        let current = self.metric(caller, project, key).await?;
        self.check_metric(caller, project, &definition).await?;
        if definition.kind == MetricKind::Ratio
            && [&definition.numerator, &definition.denominator].contains(&&key.to_owned())
        {
            return Err(ExperimentError::invalid(
                "metric.numerator",
                "a ratio cannot contain itself",
            ));
        }
        let context = caller.context(project, "metrics.update", "");
        let now = now_ms();
        let expected = expected_version(etag, current.version);
        let rebuild = self.experiments_using(caller.tenant(), project, key).await?;
        let version = self
            .repository
            .write_metric(&context, key, expected, &definition, &rebuild, now)
            .await?;
        Ok(StoredMetric {
            key: key.to_owned(),
            definition,
            version,
            created_ms: current.created_ms,
            updated_ms: now,
        })
    }

    pub async fn metric(&self, caller: Caller<'_>, project: &str, key: &str) -> ExperimentResult<StoredMetric> {
        let resource = metric_resource(project, key);
        caller.require(Role::Viewer, &resource)?;
        self.repository
            .metric(caller.tenant(), project, key)
            .await?
            .ok_or(ExperimentError::NotFound(resource))
    }

    pub async fn metrics(
        &self,
        caller: Caller<'_>,
        project: &str,
        page: PageRequest<'_>,
    ) -> ExperimentResult<Page<StoredMetric>> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        let limit = page_token::page_size(page.size, DEFAULT_PAGE, MAX_PAGE)?;
        let after = page_token::decode(page.token)?;
        let mut items = self
            .repository
            .metrics(caller.tenant(), project, after.as_deref(), limit + 1)
            .await?;
        Ok(paginate(&mut items, limit, |metric| metric.key.clone()))
    }

    /// The checks a metric needs against its project: a ratio's parts exist and are not ratios.
    async fn check_metric(
        &self,
        caller: Caller<'_>,
        project: &str,
        definition: &MetricDefinition,
    ) -> ExperimentResult<()> {
        let violations = definition.violations();
        if !violations.is_empty() {
            return Err(ExperimentError::Invalid(violations));
        }
        if definition.kind != MetricKind::Ratio {
            return Ok(());
        }
        for (field, key) in [
            ("metric.numerator", &definition.numerator),
            ("metric.denominator", &definition.denominator),
        ] {
            let part = self.repository.metric(caller.tenant(), project, key).await?;
            match part {
                None => {
                    return Err(ExperimentError::invalid(
                        field,
                        format!("no metric `{key}` in this project"),
                    ));
                }
                Some(part) if part.definition.kind == MetricKind::Ratio => {
                    return Err(ExperimentError::invalid(
                        field,
                        "a ratio's parts are binomial or mean metrics",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub async fn create_experiment(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        spec: ExperimentSpec,
        message: &str,
    ) -> ExperimentResult<StoredExperiment> {
        let resource = experiment_resource(project, key);
        caller.require(Role::Editor, &resource)?;
        check_id("experiment_id", key)?;
        let spec = complete(spec, key);
        self.check_spec(caller, project, &spec).await?;
        let definition = lifecycle::draft(spec);
        self.write(
            caller,
            project,
            key,
            Expected::Absent,
            definition,
            "create",
            message,
            None,
        )
        .await
    }

    pub async fn update_experiment(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        change: ExperimentChange,
    ) -> ExperimentResult<StoredExperiment> {
        let resource = experiment_resource(project, key);
        caller.require(Role::Editor, &resource)?;
        let current = self.experiment(caller, project, key).await?;
        let spec = complete(change.spec, key);
        self.check_spec(caller, project, &spec).await?;
        let now = now_ms();
        let next = lifecycle::update(&current.definition, spec, change.reassign, now, &change.message)?;
        let expected = expected_version(change.etag, current.version);
        self.write(
            caller,
            project,
            key,
            expected,
            next,
            "update",
            &change.message,
            Some(&current),
        )
        .await
    }

    pub async fn start(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        etag: Option<i64>,
        message: &str,
    ) -> ExperimentResult<StoredExperiment> {
        let resource = experiment_resource(project, key);
        caller.require(Role::Publisher, &resource)?;
        let current = self.experiment(caller, project, key).await?;
        let stopped_itself = current.definition.lifecycle.state == State::Stopped
            && current
                .definition
                .lifecycle
                .decision
                .as_ref()
                .is_some_and(|decision| decision.actor == GUARDRAIL_ACTOR);
        if stopped_itself && message.trim().is_empty() {
            return Err(ExperimentError::invalid(
                "reason",
                "the experiment stopped itself on a guardrail or SRM; say why it may run again",
            ));
        }
        // Metrics and the flag may have changed since the experiment was written.
        let spec = &current.definition.spec;
        self.check_spec(caller, project, spec).await?;
        let flag = self.flag_for(caller, project, spec).await?;
        let mut next = lifecycle::start(&current.definition, now_ms(), message)?;
        let started = self.started_experiments(caller.tenant(), project).await?;
        Self::check_flag_is_free(key, spec, &started)?;
        if next.lifecycle.original_targeting.is_empty() {
            next.lifecycle.exclusions = self
                .resolve_exclusions(caller.tenant(), project, key, spec, &started)
                .await?;
            next.lifecycle.original_targeting = spec
                .environments
                .iter()
                .map(|environment| (environment.clone(), flag.targeting.get(environment).cloned().flatten()))
                .collect();
        }
        let expected = expected_version(etag, current.version);
        let stored = self
            .write(caller, project, key, expected, next, "start", message, Some(&current))
            .await?;
        self.sync_flag_or_revert(caller, project, &current, stored).await
    }

    pub async fn stop(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        etag: Option<i64>,
        mut decision: Decision,
    ) -> ExperimentResult<StoredExperiment> {
        let resource = experiment_resource(project, key);
        caller.require(Role::Publisher, &resource)?;
        let current = self.experiment(caller, project, key).await?;
        let now = now_ms();
        decision.actor = caller.principal.subject.clone();
        decision.decided_ms = now;
        let message = decision.reason.clone();
        let next = lifecycle::stop(&current.definition, decision, now)?;
        let expected = expected_version(etag, current.version);
        let stored = self
            .write(caller, project, key, expected, next, "stop", &message, Some(&current))
            .await?;
        self.sync_flag_or_revert(caller, project, &current, stored).await
    }

    pub async fn archive(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        etag: Option<i64>,
        message: &str,
    ) -> ExperimentResult<StoredExperiment> {
        let resource = experiment_resource(project, key);
        caller.require(Role::Editor, &resource)?;
        let current = self.experiment(caller, project, key).await?;
        let next = lifecycle::archive(&current.definition)?;
        let expected = expected_version(etag, current.version);
        self.write(caller, project, key, expected, next, "archive", message, Some(&current))
            .await
    }

    pub async fn experiment(&self, caller: Caller<'_>, project: &str, key: &str) -> ExperimentResult<StoredExperiment> {
        let resource = experiment_resource(project, key);
        caller.require(Role::Viewer, &resource)?;
        self.repository
            .experiment(caller.tenant(), project, key)
            .await?
            .ok_or(ExperimentError::NotFound(resource))
    }

    pub async fn experiments(
        &self,
        caller: Caller<'_>,
        project: &str,
        state: Option<State>,
        page: PageRequest<'_>,
    ) -> ExperimentResult<Page<StoredExperiment>> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        let limit = page_token::page_size(page.size, DEFAULT_PAGE, MAX_PAGE)?;
        let after = page_token::decode(page.token)?;
        let mut items = self
            .repository
            .experiments(caller.tenant(), project, state, after.as_deref(), limit + 1)
            .await?;
        Ok(paginate(&mut items, limit, |experiment| experiment.key.clone()))
    }

    pub async fn versions(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        page: PageRequest<'_>,
    ) -> ExperimentResult<Page<ExperimentVersion>> {
        self.experiment(caller, project, key).await?;
        let limit = page_token::page_size(page.size, DEFAULT_PAGE, MAX_PAGE)?;
        let before = match page_token::decode(page.token)? {
            None => None,
            Some(position) => Some(
                position
                    .parse::<i64>()
                    .map_err(|_| ExperimentError::invalid("page_token", "not a token this list issued"))?,
            ),
        };
        let mut items = self
            .repository
            .experiment_versions(caller.tenant(), project, key, before, limit + 1)
            .await?;
        Ok(paginate(&mut items, limit, |version| version.version.to_string()))
    }

    /// The checks an experiment needs against its project: its metrics exist.
    async fn check_spec(&self, caller: Caller<'_>, project: &str, spec: &ExperimentSpec) -> ExperimentResult<()> {
        let violations = spec.violations();
        if !violations.is_empty() {
            return Err(ExperimentError::Invalid(violations));
        }
        let mut missing = Vec::new();
        for key in spec.metric_keys() {
            if self.repository.metric(caller.tenant(), project, key).await?.is_none() {
                missing.push(switchyard_platform::error::FieldViolation::new(
                    "experiment.metrics",
                    format!("no metric `{key}` in this project"),
                ));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ExperimentError::Invalid(missing))
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        expected: Expected,
        definition: ExperimentDefinition,
        action: &'static str,
        message: &str,
        current: Option<&StoredExperiment>,
    ) -> ExperimentResult<StoredExperiment> {
        let context = caller.context(project, action, message);
        let now = now_ms();
        // Sums kept under other metrics or dimensions are recounted from the raw events.
        let rebuild = current.is_some_and(|current| {
            current.definition.lifecycle.state != State::Draft
                && definition.spec.analysis_changed(&current.definition.spec)
        });
        let version = self
            .repository
            .write_experiment(&context, key, expected, &definition, rebuild, now)
            .await
            .map_err(|error| match error {
                StoreError::Exists(_) => StoreError::Exists(experiment_resource(project, key)),
                other => other,
            })?;
        Ok(StoredExperiment {
            key: key.to_owned(),
            definition,
            version,
            created_ms: current.map_or(now, |current| current.created_ms),
            updated_ms: now,
        })
    }
}

/// A change to an experiment's spec as the API asks for it.
#[derive(Debug, Clone)]
pub struct ExperimentChange {
    pub spec: ExperimentSpec,
    pub etag: Option<i64>,
    pub reassign: bool,
    pub message: String,
}

/// Fills the defaults an empty field stands for.
fn complete(mut spec: ExperimentSpec, key: &str) -> ExperimentSpec {
    if spec.bucketing_attribute.is_empty() {
        spec.bucketing_attribute = TARGETING_KEY.to_owned();
    }
    if spec.seed.is_empty() {
        spec.seed = key.to_owned();
    }
    spec
}

/// Cuts a `limit + 1` fetch to `limit` items and the token of the next page.
fn paginate<T>(items: &mut Vec<T>, limit: i64, position: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_page_token = match (more, items.last()) {
        (true, Some(last)) => page_token::encode(&position(last)),
        _ => String::new(),
    };
    Page {
        items: std::mem::take(items),
        next_page_token,
    }
}
