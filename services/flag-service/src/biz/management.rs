//! Flag management use cases: flags and segments per project, history with diff and rollback,
//! the kill switch, and flagd import/export.
//!
//! Every write is validated against the project as it will be after the write (a segment
//! still referenced cannot be deleted, a rule cannot name a missing segment), committed with
//! the project revision it was validated against — a concurrent write makes it retry — then
//! put in this replica's catalog before the call returns and announced to the others.
//!
//! Roles: viewer reads; editor writes. Rules of an environment need the role on that
//! environment (`projects/{p}/environments/{e}`); the flag's own fields (variants, description,
//! lifecycle...) need it on the project.

use std::sync::Arc;

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use switchyard_platform::{
    audit::{AuditFilter, AuditRecord},
    auth::{Credential, Principal, Role, RoleBinding},
    clock::now_ms,
    json::diff::{self, Change},
};

use super::{
    error::{FlagError, FlagResult, StoreError},
    model::{EnvironmentRules, FlagDefinition, Lifecycle, ProjectFlags, SegmentDefinition, check_id, source_name},
    projection::Projection,
    repository::{
        Changeset, Committed, EnvironmentUsage, Expected, FlagRepository, FlagVersion, FlagWrite, SegmentWrite,
        StoredFlag, StoredSegment,
    },
    schedule::{ScheduleStatus, ScheduledChange, due_instant},
};
use flag_engine::{FlagSet, Limits};

/// Who is calling, and the request to attribute changes to.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub request_id: Option<&'a str>,
}

impl Caller<'_> {
    fn tenant(&self) -> &str {
        &self.principal.tenant
    }

    fn require(&self, role: Role, resource: &str) -> FlagResult<()> {
        Ok(self.principal.authorize(&self.principal.tenant, role, resource)?)
    }
}

/// Attempts at a write whose project (or flag, for a write without an etag) changed between
/// reading and committing. Every round of contending writers lands at least one of them, so
/// N concurrent writers need at most N attempts; 5 failed eight concurrent editors under load.
const MAX_ATTEMPTS: usize = 32;
/// The longest page a list returns.
pub const MAX_PAGE: i64 = 500;

/// One write: flags and segments to put (segments `None` to delete), and the scheduled change
/// it applies, if any.
struct Write<'a> {
    project: &'a str,
    action: &'static str,
    message: &'a str,
    flags: Vec<FlagWrite>,
    segments: Vec<SegmentWrite>,
    scheduled: Option<String>,
}

/// The flag management use cases.
#[derive(Debug)]
pub struct Manager<R> {
    repository: Arc<R>,
    projection: Arc<Projection<R>>,
}

/// A write of one flag names its problems by the request's field (`flag.environments.prod.
/// targeting`), not by the flag key the project-wide check uses (`banner.environments...`).
/// Problems found in other flags keep their keys.
fn as_request_fields(error: FlagError, key: &str) -> FlagError {
    let FlagError::Invalid(violations) = error else {
        return error;
    };
    let prefix = format!("{key}.");
    let renamed = violations
        .into_iter()
        .map(|violation| match violation.field.strip_prefix(&prefix) {
            Some(rest) => {
                switchyard_platform::error::FieldViolation::new(format!("flag.{rest}"), violation.description)
            }
            None => violation,
        })
        .collect();
    FlagError::Invalid(renamed)
}

fn project_resource(project: &str) -> String {
    format!("projects/{project}")
}

fn flag_resource(project: &str, key: &str) -> String {
    format!("projects/{project}/flags/{key}")
}

impl<R: FlagRepository> Manager<R> {
    pub fn new(repository: Arc<R>, projection: Arc<Projection<R>>) -> Self {
        Self { repository, projection }
    }

    pub async fn create_flag(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        definition: FlagDefinition,
        message: &str,
    ) -> FlagResult<StoredFlag> {
        check_id("project", project)?;
        check_id("flagId", key)?;
        caller.require(Role::Editor, &project_resource(project))?;
        for environment in definition.environments.keys() {
            caller.require(Role::Editor, &source_name(project, environment))?;
        }
        let write = FlagWrite {
            key: key.to_owned(),
            expected: Expected::Absent,
            definition,
        };
        self.write_flag(caller, project, "flags.create", message, write).await
    }

    /// Replaces a flag's definition; `expected_version` (the etag read) guards against
    /// overwriting a change the caller has not seen.
    pub async fn update_flag(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        definition: FlagDefinition,
        expected_version: Option<i64>,
        message: &str,
    ) -> FlagResult<StoredFlag> {
        // Without an etag the last writer wins: a write that lost a race is checked and
        // applied again over what won, never refused for someone else's change.
        let mut attempt = 1;
        loop {
            let current = self.flag(caller, project, key).await?;
            require_for_change(caller, project, &current.definition, &definition)?;
            let write = FlagWrite {
                key: key.to_owned(),
                expected: Expected::Version(expected_version.unwrap_or(current.version)),
                definition: definition.clone(),
            };
            match self.write_flag(caller, project, "flags.update", message, write).await {
                Err(FlagError::Store(StoreError::Stale(_))) if expected_version.is_none() && attempt < MAX_ATTEMPTS => {
                    attempt += 1;
                }
                written => return written,
            }
        }
    }

    /// The kill switch: disables the flag in the given environments (or, with `everywhere`,
    /// in all of them), so every caller gets its own default at once. Naming neither is
    /// refused: an empty request must not switch off production by accident.
    pub async fn kill(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        environments: &[String],
        everywhere: bool,
        message: &str,
    ) -> FlagResult<StoredFlag> {
        let current = self.flag(caller, project, key).await?;
        let mut definition = current.definition.clone();
        let targets: Vec<String> = match (environments, everywhere) {
            ([], true) => definition.environments.keys().cloned().collect(),
            ([], false) => {
                return Err(FlagError::invalid(
                    "environments",
                    "name the environments to kill the flag in, or set `all: true` for every one",
                ));
            }
            (_, true) => {
                return Err(FlagError::invalid(
                    "all",
                    "either list environments or set `all`, not both",
                ));
            }
            (some, false) => some.to_vec(),
        };
        for environment in &targets {
            check_id("environments", environment)?;
            caller.require(Role::Editor, &source_name(project, environment))?;
            let rules = definition
                .environments
                .entry(environment.clone())
                .or_insert_with(|| EnvironmentRules {
                    enabled: false,
                    default_variant: None,
                    targeting: None,
                    prerequisites: Vec::new(),
                });
            rules.enabled = false;
        }
        let write = FlagWrite {
            key: key.to_owned(),
            expected: Expected::Version(current.version),
            definition,
        };
        self.write_flag(caller, project, "flags.kill", message, write).await
    }

    /// Makes a new version equal to an older one.
    pub async fn rollback(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        version: i64,
        message: &str,
    ) -> FlagResult<StoredFlag> {
        let current = self.flag(caller, project, key).await?;
        let target = self.version(caller, project, key, version).await?;
        require_for_change(caller, project, &current.definition, &target.definition)?;
        let message = if message.is_empty() {
            format!("rollback to version {version}")
        } else {
            message.to_owned()
        };
        let write = FlagWrite {
            key: key.to_owned(),
            expected: Expected::Version(current.version),
            definition: target.definition,
        };
        self.write_flag(caller, project, "flags.rollback", &message, write)
            .await
    }

    pub async fn flag(&self, caller: Caller<'_>, project: &str, key: &str) -> FlagResult<StoredFlag> {
        check_id("project", project)?;
        check_id("flag", key)?;
        caller.require(Role::Viewer, &project_resource(project))?;
        self.repository
            .flag(caller.tenant(), project, key)
            .await?
            .ok_or_else(|| FlagError::NotFound(flag_resource(project, key)))
    }

    /// A page of flags by key, optionally only those with `tag` or in `lifecycle`.
    pub async fn flags(
        &self,
        caller: Caller<'_>,
        project: &str,
        after: Option<&str>,
        page_size: i64,
        keep: impl Fn(&StoredFlag) -> bool,
    ) -> FlagResult<(Vec<StoredFlag>, Option<String>)> {
        check_id("parent", project)?;
        caller.require(Role::Viewer, &project_resource(project))?;
        let limit = page_size.clamp(1, MAX_PAGE);
        let mut page = Vec::new();
        let mut cursor = after.map(str::to_owned);
        // Filtering happens after reading, so read until the page is full or the list ends;
        // the next page continues after the last flag returned.
        loop {
            let batch = self
                .repository
                .flags(caller.tenant(), project, cursor.as_deref(), limit)
                .await?;
            let exhausted = (batch.len() as i64) < limit;
            for flag in batch {
                cursor = Some(flag.key.clone());
                if keep(&flag) {
                    page.push(flag);
                    if page.len() as i64 == limit {
                        return Ok((page, cursor));
                    }
                }
            }
            if exhausted {
                return Ok((page, None));
            }
        }
    }

    pub async fn versions(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        before: Option<i64>,
        page_size: i64,
    ) -> FlagResult<Vec<FlagVersion>> {
        self.flag(caller, project, key).await?;
        Ok(self
            .repository
            .versions(caller.tenant(), project, key, before, page_size.clamp(1, MAX_PAGE))
            .await?)
    }

    pub async fn version(&self, caller: Caller<'_>, project: &str, key: &str, version: i64) -> FlagResult<FlagVersion> {
        check_id("project", project)?;
        caller.require(Role::Viewer, &project_resource(project))?;
        self.repository
            .version(caller.tenant(), project, key, version)
            .await?
            .ok_or_else(|| FlagError::NotFound(format!("{}/versions/{version}", flag_resource(project, key))))
    }

    /// What changed from version `from` to version `to`, by JSON path.
    pub async fn diff(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        from: i64,
        to: i64,
    ) -> FlagResult<Vec<Change>> {
        let before = self.version(caller, project, key, from).await?;
        let after = self.version(caller, project, key, to).await?;
        Ok(diff::diff(&as_json(&before.definition), &as_json(&after.definition)))
    }

    pub async fn put_segment(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        definition: SegmentDefinition,
        expected: Expected,
        message: &str,
    ) -> FlagResult<StoredSegment> {
        check_id("project", project)?;
        check_id("segmentId", key)?;
        caller.require(Role::Editor, &project_resource(project))?;
        let action = if expected == Expected::Absent {
            "segments.create"
        } else {
            "segments.update"
        };
        let segments = vec![SegmentWrite {
            key: key.to_owned(),
            expected,
            definition: Some(definition),
        }];
        self.write(
            caller,
            Write {
                project,
                action,
                message,
                flags: Vec::new(),
                segments,
                scheduled: None,
            },
        )
        .await?;
        self.segment(caller, project, key).await
    }

    pub async fn delete_segment(&self, caller: Caller<'_>, project: &str, key: &str, message: &str) -> FlagResult<()> {
        let current = self.segment(caller, project, key).await?;
        caller.require(Role::Editor, &project_resource(project))?;
        let segments = vec![SegmentWrite {
            key: key.to_owned(),
            expected: Expected::Version(current.version),
            definition: None,
        }];
        self.write(
            caller,
            Write {
                project,
                action: "segments.delete",
                message,
                flags: Vec::new(),
                segments,
                scheduled: None,
            },
        )
        .await?;
        Ok(())
    }

    pub async fn segment(&self, caller: Caller<'_>, project: &str, key: &str) -> FlagResult<StoredSegment> {
        let segments = self.segments(caller, project).await?;
        segments
            .into_iter()
            .find(|segment| segment.key == key)
            .ok_or_else(|| FlagError::NotFound(format!("projects/{project}/segments/{key}")))
    }

    pub async fn segments(&self, caller: Caller<'_>, project: &str) -> FlagResult<Vec<StoredSegment>> {
        check_id("project", project)?;
        caller.require(Role::Viewer, &project_resource(project))?;
        Ok(self.repository.segments(caller.tenant(), project).await?)
    }

    /// Schedules new rules for some environments of a flag, at `at` in `time_zone`.
    #[allow(clippy::too_many_arguments)]
    pub async fn schedule(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        at: &str,
        time_zone: &str,
        environments: BTreeMap<String, EnvironmentRules>,
        message: &str,
    ) -> FlagResult<ScheduledChange> {
        let current = self.flag(caller, project, key).await?;
        if environments.is_empty() {
            return Err(FlagError::invalid("environments", "name at least one environment"));
        }
        for environment in environments.keys() {
            check_id(&format!("environments.{environment}"), environment)?;
            caller.require(Role::Editor, &source_name(project, environment))?;
        }
        let (due_ms, time_zone) = due_instant(at, time_zone)?;
        let now = now_ms();
        if due_ms < now - 60_000 {
            return Err(FlagError::invalid("at", format!("{at} ({time_zone}) is in the past")));
        }
        let mut definition = current.definition;
        definition.environments.extend(environments.clone());
        let (mut flags, _) = self.repository.project(caller.tenant(), project).await?;
        flags.flags.insert(key.to_owned(), definition);
        flags.compile(project).map_err(FlagError::Invalid)?;
        let change = ScheduledChange {
            id: uuid::Uuid::now_v7().simple().to_string(),
            tenant: caller.tenant().to_owned(),
            project: project.to_owned(),
            flag: key.to_owned(),
            due_ms,
            time_zone,
            local_time: at.to_owned(),
            environments,
            author: caller.principal.subject.clone(),
            message: message.to_owned(),
            status: ScheduleStatus::Pending,
            created_ms: now,
            applied_ms: None,
            applied_version: None,
            failure: None,
        };
        self.repository.schedule(&change, caller.request_id).await?;
        Ok(change)
    }

    pub async fn scheduled_changes(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
    ) -> FlagResult<Vec<ScheduledChange>> {
        self.flag(caller, project, key).await?;
        Ok(self.repository.scheduled(caller.tenant(), project, key).await?)
    }

    /// Cancels a change that has not been applied yet.
    pub async fn cancel_scheduled(
        &self,
        caller: Caller<'_>,
        project: &str,
        key: &str,
        id: &str,
    ) -> FlagResult<ScheduledChange> {
        self.flag(caller, project, key).await?;
        let missing = || FlagError::NotFound(format!("{}/scheduledChanges/{id}", flag_resource(project, key)));
        let change = self
            .repository
            .scheduled_change(caller.tenant(), id)
            .await?
            .filter(|change| change.project == project && change.flag == key)
            .ok_or_else(missing)?;
        for environment in change.environments.keys() {
            caller.require(Role::Editor, &source_name(project, environment))?;
        }
        let settled = self
            .repository
            .settle_scheduled(
                caller.tenant(),
                id,
                ScheduleStatus::Cancelled,
                None,
                &caller.principal.subject,
                now_ms(),
            )
            .await;
        if let Err(StoreError::Stale(_)) = settled {
            return Err(FlagError::FailedPrecondition(format!(
                "the change is {} already",
                change.status.as_str()
            )));
        }
        settled?;
        self.repository
            .scheduled_change(caller.tenant(), id)
            .await?
            .ok_or_else(missing)
    }

    /// Applies every change that is due; returns how many were applied.
    pub async fn apply_due(&self) -> FlagResult<usize> {
        let mut applied = 0;
        for change in self.repository.due(now_ms(), 100).await? {
            if self.apply_scheduled(&change).await? {
                applied += 1;
            }
        }
        Ok(applied)
    }

    async fn apply_scheduled(&self, change: &ScheduledChange) -> FlagResult<bool> {
        let principal = Principal {
            subject: format!("scheduler:{}", change.author),
            tenant: change.tenant.clone(),
            roles: vec![RoleBinding {
                role: Role::Admin,
                resource: None,
            }],
            scopes: Vec::new(),
            credential: Credential::ApiKey,
        };
        let caller = Caller {
            principal: &principal,
            request_id: None,
        };
        let scheduler = principal.subject.clone();
        let fail = |reason: String| async move {
            let outcome = self
                .repository
                .settle_scheduled(
                    &change.tenant,
                    &change.id,
                    ScheduleStatus::Failed,
                    Some(&reason),
                    &scheduler,
                    now_ms(),
                )
                .await;
            tracing::warn!(id = %change.id, %reason, "a scheduled flag change could not be applied");
            outcome.map(|()| false).or_else(|error| match error {
                StoreError::Stale(_) => Ok(false),
                other => Err(FlagError::Store(other)),
            })
        };
        let Some(current) = self
            .repository
            .flag(&change.tenant, &change.project, &change.flag)
            .await?
        else {
            return fail("the flag no longer exists".to_owned()).await;
        };
        let mut definition = current.definition;
        definition.environments.extend(change.environments.clone());
        let message = if change.message.is_empty() {
            format!("scheduled change {}", change.id)
        } else {
            change.message.clone()
        };
        let write = Write {
            project: &change.project,
            action: "flags.scheduled",
            message: &message,
            flags: vec![FlagWrite {
                key: change.flag.clone(),
                expected: Expected::Version(current.version),
                definition,
            }],
            segments: Vec::new(),
            scheduled: Some(change.id.clone()),
        };
        match self.write(caller, write).await {
            Ok(_) => Ok(true),
            Err(FlagError::Invalid(violations)) => {
                let reasons: Vec<String> = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                fail(reasons.join("; ")).await
            }
            // Applied by another replica meanwhile, or the flag changed: the next tick decides.
            Err(FlagError::Store(StoreError::Stale(_))) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// How often the flag served each variant in each environment (as last flushed).
    pub async fn usage(&self, caller: Caller<'_>, project: &str, key: &str) -> FlagResult<Vec<EnvironmentUsage>> {
        self.flag(caller, project, key).await?;
        Ok(self.repository.usage(caller.tenant(), project, key).await?)
    }

    /// Flags that are not archived and were not evaluated for `stale_days` days — never
    /// evaluated counts from the flag's creation — with their last evaluation (0 for never).
    pub async fn stale_flags(
        &self,
        caller: Caller<'_>,
        project: &str,
        stale_days: i64,
    ) -> FlagResult<Vec<(StoredFlag, i64)>> {
        const DAY_MS: i64 = 86_400_000;
        let cutoff_ms = now_ms() - stale_days.saturating_mul(DAY_MS);
        check_id("parent", project)?;
        caller.require(Role::Viewer, &project_resource(project))?;
        let last: std::collections::HashMap<String, i64> = self
            .repository
            .last_evaluations(caller.tenant(), project)
            .await?
            .into_iter()
            .collect();
        let mut stale = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let batch = self
                .repository
                .flags(caller.tenant(), project, after.as_deref(), MAX_PAGE)
                .await?;
            let done = (batch.len() as i64) < MAX_PAGE;
            after = batch.last().map(|flag| flag.key.clone());
            for flag in batch {
                let last_ms = last.get(&flag.key).copied().unwrap_or(0);
                let idle_since = if last_ms == 0 { flag.created_ms } else { last_ms };
                if flag.definition.lifecycle != Lifecycle::Archived && idle_since < cutoff_ms {
                    stale.push((flag, last_ms));
                }
            }
            if done {
                return Ok(stale);
            }
        }
    }

    /// The tenant's audit trail (admin only).
    pub async fn audit(&self, caller: Caller<'_>, filter: &AuditFilter) -> FlagResult<Vec<AuditRecord>> {
        caller.require(Role::Admin, "audit")?;
        Ok(self.repository.audit(caller.tenant(), filter).await?)
    }

    /// An environment's flags as the flagd document it is served as.
    pub async fn export(&self, caller: Caller<'_>, project: &str, environment: &str) -> FlagResult<Value> {
        check_id("project", project)?;
        check_id("environment", environment)?;
        caller.require(Role::Viewer, &source_name(project, environment))?;
        let (flags, _) = self.repository.project(caller.tenant(), project).await?;
        Ok(flags.document(project, environment)?)
    }

    /// Takes a flagd document's flags into an environment: a flag that exists keeps its other
    /// environments and takes the document's variants and rules for this one; `$evaluators`
    /// become segments. Returns how many flags were written.
    pub async fn import(
        &self,
        caller: Caller<'_>,
        project: &str,
        environment: &str,
        document: &Value,
        message: &str,
    ) -> FlagResult<usize> {
        check_id("project", project)?;
        check_id("environment", environment)?;
        caller.require(Role::Editor, &project_resource(project))?;
        caller.require(Role::Editor, &source_name(project, environment))?;
        // The document must be a valid flagd document before anything is taken from it.
        let parsed = FlagSet::from_document(document, &Limits::default())
            .map_err(|error| FlagError::invalid(format!("document.{}", error.path), error.message))?;
        let (existing, _) = self.repository.project(caller.tenant(), project).await?;
        let mut flags = Vec::new();
        for flag in parsed.flags() {
            let served = document
                .pointer(&format!("/flags/{}", pointer_escape(flag.key())))
                .cloned()
                .unwrap_or_default();
            check_id(&format!("document.flags.{}", flag.key()), flag.key())?;
            let mut definition = existing
                .flags
                .get(flag.key())
                .cloned()
                .unwrap_or_else(|| FlagDefinition {
                    description: String::new(),
                    owner: String::new(),
                    tags: Vec::new(),
                    lifecycle: Default::default(),
                    variants: Default::default(),
                    environments: Default::default(),
                    metadata: Default::default(),
                    client_visible: false,
                });
            definition.variants = served
                .get("variants")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Some(metadata) = served.get("metadata").and_then(Value::as_object) {
                definition.metadata = metadata.clone();
                definition.metadata.remove("flagSetId");
            }
            let rules = EnvironmentRules {
                enabled: served.get("state").and_then(Value::as_str) == Some("ENABLED"),
                default_variant: flag.default_variant().map(str::to_owned),
                targeting: served
                    .get("targeting")
                    .filter(|targeting| !targeting.is_null())
                    .cloned(),
                prerequisites: Vec::new(),
            };
            definition.environments.insert(environment.to_owned(), rules);
            flags.push(FlagWrite {
                key: flag.key().to_owned(),
                expected: Expected::Any,
                definition,
            });
        }
        flags.sort_by(|a, b| a.key.cmp(&b.key));
        let segments: Vec<SegmentWrite> = document
            .get("$evaluators")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(key, rule)| SegmentWrite {
                key: key.clone(),
                expected: Expected::Any,
                definition: Some(SegmentDefinition {
                    description: String::new(),
                    rule: rule.clone(),
                }),
            })
            .collect();
        for segment in &segments {
            check_id(&format!("document.$evaluators.{}", segment.key), &segment.key)?;
        }
        let count = flags.len();
        self.write(
            caller,
            Write {
                project,
                action: "flags.import",
                message,
                flags,
                segments,
                scheduled: None,
            },
        )
        .await?;
        Ok(count)
    }

    async fn write_flag(
        &self,
        caller: Caller<'_>,
        project: &str,
        action: &'static str,
        message: &str,
        write: FlagWrite,
    ) -> FlagResult<StoredFlag> {
        let violations = write.definition.check_fields();
        if !violations.is_empty() {
            return Err(FlagError::Invalid(violations));
        }
        let key = write.key.clone();
        self.write(
            caller,
            Write {
                project,
                action,
                message,
                flags: vec![write],
                segments: Vec::new(),
                scheduled: None,
            },
        )
        .await
        .map_err(|error| as_request_fields(error, &key))?;
        self.repository
            .flag(caller.tenant(), project, &key)
            .await?
            .ok_or_else(|| FlagError::NotFound(flag_resource(project, &key)))
    }

    /// Validates the project as it would be, commits against the revision validated, and
    /// retries when another write got there first.
    async fn write(&self, caller: Caller<'_>, write: Write<'_>) -> FlagResult<Committed> {
        let tenant = caller.tenant();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut project, revision) = self.repository.project(tenant, write.project).await?;
            apply(&mut project, &write);
            project.compile(write.project).map_err(FlagError::Invalid)?;
            let changeset = Changeset {
                tenant: tenant.to_owned(),
                project: write.project.to_owned(),
                author: caller.principal.subject.clone(),
                message: write.message.to_owned(),
                request_id: caller.request_id.map(str::to_owned),
                action: write.action,
                expected_revision: revision,
                scheduled: write.scheduled.clone(),
                flags: write.flags.clone(),
                segments: write.segments.clone(),
            };
            match self.repository.commit(&changeset, now_ms()).await {
                Ok(committed) => {
                    self.projection.refresh(tenant, write.project).await?;
                    self.projection.announce(tenant, write.project).await;
                    return Ok(committed);
                }
                Err(StoreError::ProjectMoved) if attempt < MAX_ATTEMPTS => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }
}

fn apply(project: &mut ProjectFlags, write: &Write<'_>) {
    for flag in &write.flags {
        project.flags.insert(flag.key.clone(), flag.definition.clone());
    }
    for segment in &write.segments {
        match &segment.definition {
            Some(definition) => project.segments.insert(segment.key.clone(), definition.clone()),
            None => project.segments.remove(&segment.key),
        };
    }
}

/// The roles a change from `before` to `after` needs: editor on each environment whose rules
/// change, and on the project when the flag's own fields change.
fn require_for_change(
    caller: Caller<'_>,
    project: &str,
    before: &FlagDefinition,
    after: &FlagDefinition,
) -> FlagResult<()> {
    if own_fields(before) != own_fields(after) {
        caller.require(Role::Editor, &project_resource(project))?;
    }
    let environments = before.environments.keys().chain(after.environments.keys());
    for environment in environments {
        if before.environments.get(environment) != after.environments.get(environment) {
            caller.require(Role::Editor, &source_name(project, environment))?;
        }
    }
    if before == after {
        caller.require(Role::Editor, &project_resource(project))?;
    }
    Ok(())
}

/// A flag's fields other than its environment rules.
type OwnFields<'a> = (
    &'a str,
    &'a str,
    &'a [String],
    Lifecycle,
    &'a Map<String, Value>,
    &'a Map<String, Value>,
);

fn own_fields(flag: &FlagDefinition) -> OwnFields<'_> {
    (
        &flag.description,
        &flag.owner,
        &flag.tags,
        flag.lifecycle,
        &flag.variants,
        &flag.metadata,
    )
}

fn as_json(definition: &FlagDefinition) -> Value {
    serde_json::to_value(definition).unwrap_or_default()
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
