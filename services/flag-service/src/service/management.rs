//! Protobuf ↔ domain mapping for flag management, and the handlers the FlagService trait
//! delegates to.

use std::collections::BTreeMap;

use pbjson_types::Empty;
use serde_json::Value;
use switchyard_api::flags::v1::{self as pb, Lifecycle as PbLifecycle};
use switchyard_platform::{
    audit::AuditFilter,
    auth::Principal,
    error::{FieldViolation, to_status},
    page_token,
    proto_json::{from_proto_struct, timestamp, to_proto_struct, to_proto_value},
};
use tonic::{Request, Status};

use crate::{
    biz::{
        error::FlagError,
        management::{Caller, Manager},
        model::{EnvironmentRules, FlagDefinition, Lifecycle, Prerequisite, SegmentDefinition, parse_name},
        repository::{Expected, FlagRepository, FlagVersion, StoredFlag, StoredSegment},
        schedule::ScheduledChange,
    },
    data::repository::SqlRepository,
};

pub type FlagManager = Manager<SqlRepository>;

const DEFAULT_PAGE: i64 = 100;

fn status(error: FlagError) -> Status {
    to_status(&error)
}

pub(super) fn invalid(violation: FieldViolation) -> Status {
    status(FlagError::Invalid(vec![violation]))
}

/// The authenticated caller and the request id to attribute changes to.
pub fn caller<T>(request: &Request<T>) -> Result<Caller<'_>, Status> {
    let principal = Principal::of(request).map_err(|error| status(error.into()))?;
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok());
    Ok(Caller { principal, request_id })
}

fn name(field: &str, text: &str, pattern: &str) -> Result<Vec<String>, Status> {
    parse_name(field, text, pattern).map_err(invalid)
}

fn etag_version(field: &str, etag: &str) -> Result<Option<i64>, Status> {
    if etag.is_empty() {
        return Ok(None);
    }
    let version = etag
        .trim_matches('"')
        .parse::<i64>()
        .ok()
        .filter(|version| *version > 0);
    version
        .map(Some)
        .ok_or_else(|| invalid(FieldViolation::new(field, "not an etag this service issued")))
}

fn lifecycle_from(value: i32) -> Result<Lifecycle, Status> {
    match PbLifecycle::try_from(value) {
        Ok(PbLifecycle::Unspecified | PbLifecycle::Active) => Ok(Lifecycle::Active),
        Ok(PbLifecycle::Deprecated) => Ok(Lifecycle::Deprecated),
        Ok(PbLifecycle::Archived) => Ok(Lifecycle::Archived),
        Err(_) => Err(invalid(FieldViolation::new(
            "flag.lifecycle",
            format!("unknown value {value}"),
        ))),
    }
}

fn lifecycle_to(lifecycle: Lifecycle) -> PbLifecycle {
    match lifecycle {
        Lifecycle::Active => PbLifecycle::Active,
        Lifecycle::Deprecated => PbLifecycle::Deprecated,
        Lifecycle::Archived => PbLifecycle::Archived,
    }
}

fn environment_rules(
    rules: std::collections::HashMap<String, pb::EnvironmentRules>,
) -> BTreeMap<String, EnvironmentRules> {
    rules
        .into_iter()
        .map(|(environment, rules)| (environment, rules_from(rules)))
        .collect()
}

fn rules_from(rules: pb::EnvironmentRules) -> EnvironmentRules {
    EnvironmentRules {
        enabled: rules.enabled,
        default_variant: Some(rules.default_variant).filter(|variant| !variant.is_empty()),
        targeting: rules
            .targeting
            .as_ref()
            .map(|targeting| Value::Object(from_proto_struct(targeting))),
        prerequisites: rules
            .prerequisites
            .into_iter()
            .map(|prerequisite| Prerequisite {
                flag: prerequisite.flag,
                variants: prerequisite.variants,
            })
            .collect(),
    }
}

fn rules_to(rules: &EnvironmentRules) -> pb::EnvironmentRules {
    pb::EnvironmentRules {
        enabled: rules.enabled,
        default_variant: rules.default_variant.clone().unwrap_or_default(),
        targeting: rules.targeting.as_ref().and_then(Value::as_object).map(to_proto_struct),
        prerequisites: rules
            .prerequisites
            .iter()
            .map(|prerequisite| pb::Prerequisite {
                flag: prerequisite.flag.clone(),
                variants: prerequisite.variants.clone(),
            })
            .collect(),
    }
}

fn scheduled_message(change: &ScheduledChange) -> pb::ScheduledChange {
    pb::ScheduledChange {
        name: format!(
            "projects/{}/flags/{}/scheduledChanges/{}",
            change.project, change.flag, change.id
        ),
        due_time: timestamp(change.due_ms),
        time_zone: change.time_zone.clone(),
        local_time: change.local_time.clone(),
        environments: change
            .environments
            .iter()
            .map(|(environment, rules)| (environment.clone(), rules_to(rules)))
            .collect(),
        author: change.author.clone(),
        message: change.message.clone(),
        state: change.status.as_str().to_owned(),
        applied_version: change.applied_version.unwrap_or_default(),
        failure: change.failure.clone().unwrap_or_default(),
        create_time: timestamp(change.created_ms),
    }
}

/// A flag from the API; `name` and output-only fields are ignored.
fn definition(flag: Option<pb::Flag>) -> Result<FlagDefinition, Status> {
    let flag = flag.ok_or_else(|| invalid(FieldViolation::new("flag", "required")))?;
    let environments = environment_rules(flag.environments);
    Ok(FlagDefinition {
        description: flag.description,
        owner: flag.owner,
        tags: flag.tags,
        lifecycle: lifecycle_from(flag.lifecycle)?,
        variants: flag.variants.as_ref().map(from_proto_struct).unwrap_or_default(),
        environments,
        metadata: flag.metadata.as_ref().map(from_proto_struct).unwrap_or_default(),
        client_visible: flag.client_visible,
    })
}

fn flag_message(project: &str, key: &str, definition: &FlagDefinition, version: i64, times: (i64, i64)) -> pb::Flag {
    let environments = definition
        .environments
        .iter()
        .map(|(environment, rules)| (environment.clone(), rules_to(rules)))
        .collect();
    pb::Flag {
        name: format!("projects/{project}/flags/{key}"),
        description: definition.description.clone(),
        owner: definition.owner.clone(),
        tags: definition.tags.clone(),
        lifecycle: lifecycle_to(definition.lifecycle).into(),
        variants: Some(to_proto_struct(&definition.variants)),
        environments,
        metadata: Some(to_proto_struct(&definition.metadata)),
        version,
        etag: version.to_string(),
        create_time: timestamp(times.0),
        update_time: timestamp(times.1),
        client_visible: definition.client_visible,
    }
}

fn stored(project: &str, flag: &StoredFlag) -> pb::Flag {
    flag_message(
        project,
        &flag.key,
        &flag.definition,
        flag.version,
        (flag.created_ms, flag.updated_ms),
    )
}

fn version_message(project: &str, key: &str, version: &FlagVersion) -> pb::FlagVersion {
    pb::FlagVersion {
        version: version.version,
        author: version.author.clone(),
        message: version.message.clone(),
        create_time: timestamp(version.created_ms),
        flag: Some(flag_message(
            project,
            key,
            &version.definition,
            version.version,
            (version.created_ms, version.created_ms),
        )),
    }
}

fn segment_definition(segment: Option<pb::Segment>) -> Result<SegmentDefinition, Status> {
    let segment = segment.ok_or_else(|| invalid(FieldViolation::new("segment", "required")))?;
    let rule = segment
        .rule
        .ok_or_else(|| invalid(FieldViolation::new("segment.rule", "required")))?;
    Ok(SegmentDefinition {
        description: segment.description,
        rule: Value::Object(from_proto_struct(&rule)),
    })
}

fn segment_message(project: &str, segment: &StoredSegment) -> pb::Segment {
    pb::Segment {
        name: format!("projects/{project}/segments/{}", segment.key),
        description: segment.definition.description.clone(),
        rule: segment.definition.rule.as_object().map(to_proto_struct),
        version: segment.version,
        etag: segment.version.to_string(),
    }
}

/// The position an (opaque) page token resumes after; `None` for the first page.
fn position(token: &str) -> Result<Option<String>, Status> {
    page_token::decode(token).map_err(invalid)
}

/// A page token that holds a version or sequence number (empty: the first page).
fn number_token(token: &str) -> Result<Option<i64>, Status> {
    let Some(position) = position(token)? else {
        return Ok(None);
    };
    let number = position.parse::<i64>().map_err(|_| {
        invalid(FieldViolation::new(
            "page_token",
            "not a page token this service issued",
        ))
    })?;
    Ok(Some(number))
}

/// A requested page size: 0 is the default, a negative one is refused.
fn page_size(size: i32) -> Result<i64, Status> {
    page_token::page_size(size, DEFAULT_PAGE, crate::biz::management::MAX_PAGE).map_err(invalid)
}

/// The management RPCs, each a thin mapping onto [`Manager`].
pub struct Handlers<'a, R> {
    pub manager: &'a Manager<R>,
}

impl<R: FlagRepository> Handlers<'_, R> {
    pub async fn create_flag(&self, request: Request<pb::CreateFlagRequest>) -> Result<pb::Flag, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = name("parent", &message.parent, "projects/*")?.remove(0);
        let definition = definition(message.flag.clone())?;
        let flag = self
            .manager
            .create_flag(caller, &project, &message.flag_id, definition, &message.message)
            .await
            .map_err(status)?;
        Ok(stored(&project, &flag))
    }

    pub async fn get_flag(&self, request: Request<pb::GetFlagRequest>) -> Result<pb::Flag, Status> {
        let caller = caller(&request)?;
        let ids = name("name", &request.get_ref().name, "projects/*/flags/*")?;
        let flag = self.manager.flag(caller, &ids[0], &ids[1]).await.map_err(status)?;
        Ok(stored(&ids[0], &flag))
    }

    pub async fn list_flags(&self, request: Request<pb::ListFlagsRequest>) -> Result<pb::ListFlagsResponse, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = name("parent", &message.parent, "projects/*")?.remove(0);
        let lifecycle = match message.lifecycle {
            0 => None,
            value => Some(lifecycle_from(value)?),
        };
        let tag = Some(message.tag.as_str()).filter(|tag| !tag.is_empty());
        let after = position(&message.page_token)?;
        let keep = |flag: &StoredFlag| {
            tag.is_none_or(|tag| flag.definition.tags.iter().any(|own| own == tag))
                && lifecycle.is_none_or(|lifecycle| flag.definition.lifecycle == lifecycle)
        };
        let (flags, next) = self
            .manager
            .flags(caller, &project, after.as_deref(), page_size(message.page_size)?, keep)
            .await
            .map_err(status)?;
        Ok(pb::ListFlagsResponse {
            flags: flags.iter().map(|flag| stored(&project, flag)).collect(),
            next_page_token: next.map(|last| page_token::encode(&last)).unwrap_or_default(),
        })
    }

    pub async fn update_flag(&self, request: Request<pb::UpdateFlagRequest>) -> Result<pb::Flag, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let flag_name = message.flag.as_ref().map(|flag| flag.name.clone()).unwrap_or_default();
        let ids = name("flag.name", &flag_name, "projects/*/flags/*")?;
        // The etag goes beside the flag, or stays inside it where a read put it.
        let inner = message.flag.as_ref().map_or("", |flag| flag.etag.as_str());
        let expected = match message.etag.as_str() {
            "" => etag_version("flag.etag", inner)?,
            outer => etag_version("etag", outer)?,
        };
        let definition = definition(message.flag.clone())?;
        let flag = self
            .manager
            .update_flag(caller, &ids[0], &ids[1], definition, expected, &message.message)
            .await
            .map_err(status)?;
        Ok(stored(&ids[0], &flag))
    }

    pub async fn kill_flag(&self, request: Request<pb::KillFlagRequest>) -> Result<pb::Flag, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let ids = name("name", &message.name, "projects/*/flags/*")?;
        let flag = self
            .manager
            .kill(
                caller,
                &ids[0],
                &ids[1],
                &message.environments,
                message.all,
                &message.message,
            )
            .await
            .map_err(status)?;
        Ok(stored(&ids[0], &flag))
    }

    pub async fn list_flag_versions(
        &self,
        request: Request<pb::ListFlagVersionsRequest>,
    ) -> Result<pb::ListFlagVersionsResponse, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let ids = name("name", &message.name, "projects/*/flags/*")?;
        let before = number_token(&message.page_token)?;
        let size = page_size(message.page_size)?;
        let versions = self
            .manager
            .versions(caller, &ids[0], &ids[1], before, size)
            .await
            .map_err(status)?;
        let next = match versions.last() {
            Some(last) if versions.len() as i64 == size && last.version > 1 => {
                page_token::encode(&last.version.to_string())
            }
            _ => String::new(),
        };
        Ok(pb::ListFlagVersionsResponse {
            versions: versions
                .iter()
                .map(|version| version_message(&ids[0], &ids[1], version))
                .collect(),
            next_page_token: next,
        })
    }

    pub async fn diff_flag_versions(
        &self,
        request: Request<pb::DiffFlagVersionsRequest>,
    ) -> Result<pb::DiffFlagVersionsResponse, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let ids = name("name", &message.name, "projects/*/flags/*")?;
        let changes = self
            .manager
            .diff(caller, &ids[0], &ids[1], message.from_version, message.to_version)
            .await
            .map_err(status)?;
        Ok(pb::DiffFlagVersionsResponse {
            changes: changes
                .iter()
                .map(|change| pb::FieldChange {
                    path: change.path.clone(),
                    kind: change.kind.name().to_owned(),
                    before: change.before.as_ref().map(to_proto_value),
                    after: change.after.as_ref().map(to_proto_value),
                })
                .collect(),
        })
    }

    pub async fn rollback_flag(&self, request: Request<pb::RollbackFlagRequest>) -> Result<pb::Flag, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let ids = name("name", &message.name, "projects/*/flags/*")?;
        let flag = self
            .manager
            .rollback(caller, &ids[0], &ids[1], message.version, &message.message)
            .await
            .map_err(status)?;
        Ok(stored(&ids[0], &flag))
    }

    pub async fn create_segment(&self, request: Request<pb::CreateSegmentRequest>) -> Result<pb::Segment, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = name("parent", &message.parent, "projects/*")?.remove(0);
        let definition = segment_definition(message.segment.clone())?;
        let segment = self
            .manager
            .put_segment(
                caller,
                &project,
                &message.segment_id,
                definition,
                Expected::Absent,
                &message.message,
            )
            .await
            .map_err(status)?;
        Ok(segment_message(&project, &segment))
    }

    pub async fn update_segment(&self, request: Request<pb::UpdateSegmentRequest>) -> Result<pb::Segment, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let segment_name = message
            .segment
            .as_ref()
            .map(|segment| segment.name.clone())
            .unwrap_or_default();
        let ids = name("segment.name", &segment_name, "projects/*/segments/*")?;
        let expected = match etag_version("etag", &message.etag)? {
            Some(version) => Expected::Version(version),
            None => Expected::Any,
        };
        let definition = segment_definition(message.segment.clone())?;
        let segment = self
            .manager
            .put_segment(caller, &ids[0], &ids[1], definition, expected, &message.message)
            .await
            .map_err(status)?;
        Ok(segment_message(&ids[0], &segment))
    }

    pub async fn delete_segment(&self, request: Request<pb::DeleteSegmentRequest>) -> Result<Empty, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let ids = name("name", &message.name, "projects/*/segments/*")?;
        self.manager
            .delete_segment(caller, &ids[0], &ids[1], &message.message)
            .await
            .map_err(status)?;
        Ok(Empty {})
    }

    pub async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<pb::ListSegmentsResponse, Status> {
        let caller = caller(&request)?;
        let project = name("parent", &request.get_ref().parent, "projects/*")?.remove(0);
        let segments = self.manager.segments(caller, &project).await.map_err(status)?;
        Ok(pb::ListSegmentsResponse {
            segments: segments
                .iter()
                .map(|segment| segment_message(&project, segment))
                .collect(),
        })
    }

    pub async fn export_flags(
        &self,
        request: Request<pb::ExportFlagsRequest>,
    ) -> Result<pb::ExportFlagsResponse, Status> {
        let caller = caller(&request)?;
        let ids = name("parent", &request.get_ref().parent, "projects/*/environments/*")?;
        let document = self.manager.export(caller, &ids[0], &ids[1]).await.map_err(status)?;
        let document = serde_json::to_string_pretty(&document).map_err(|error| Status::internal(error.to_string()))?;
        Ok(pb::ExportFlagsResponse { document })
    }

    pub async fn import_flags(
        &self,
        request: Request<pb::ImportFlagsRequest>,
    ) -> Result<pb::ImportFlagsResponse, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let ids = name("parent", &message.parent, "projects/*/environments/*")?;
        let document: Value = serde_json::from_str(&message.document)
            .or_else(|_| serde_norway::from_str(&message.document))
            .map_err(|error| {
                invalid(FieldViolation::new(
                    "document",
                    format!("neither JSON nor YAML: {error}"),
                ))
            })?;
        let imported = self
            .manager
            .import(caller, &ids[0], &ids[1], &document, &message.message)
            .await
            .map_err(status)?;
        Ok(pb::ImportFlagsResponse {
            imported: i32::try_from(imported).unwrap_or(i32::MAX),
        })
    }

    pub async fn schedule_flag_change(
        &self,
        request: Request<pb::ScheduleFlagChangeRequest>,
    ) -> Result<pb::ScheduledChange, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let ids = name("name", &message.name, "projects/*/flags/*")?;
        let environments = environment_rules(message.environments.clone());
        let change = self
            .manager
            .schedule(
                caller,
                &ids[0],
                &ids[1],
                &message.at,
                &message.time_zone,
                environments,
                &message.message,
            )
            .await
            .map_err(status)?;
        Ok(scheduled_message(&change))
    }

    pub async fn list_scheduled_changes(
        &self,
        request: Request<pb::ListScheduledChangesRequest>,
    ) -> Result<pb::ListScheduledChangesResponse, Status> {
        let caller = caller(&request)?;
        let ids = name("name", &request.get_ref().name, "projects/*/flags/*")?;
        let changes = self
            .manager
            .scheduled_changes(caller, &ids[0], &ids[1])
            .await
            .map_err(status)?;
        Ok(pb::ListScheduledChangesResponse {
            changes: changes.iter().map(scheduled_message).collect(),
        })
    }

    pub async fn cancel_scheduled_change(
        &self,
        request: Request<pb::CancelScheduledChangeRequest>,
    ) -> Result<pb::ScheduledChange, Status> {
        let caller = caller(&request)?;
        let ids = name("name", &request.get_ref().name, "projects/*/flags/*/scheduledChanges/*")?;
        let change = self
            .manager
            .cancel_scheduled(caller, &ids[0], &ids[1], &ids[2])
            .await
            .map_err(status)?;
        Ok(scheduled_message(&change))
    }

    pub async fn get_flag_usage(&self, request: Request<pb::GetFlagUsageRequest>) -> Result<pb::FlagUsage, Status> {
        let caller = caller(&request)?;
        let flag_name = request.get_ref().name.clone();
        let ids = name("name", &flag_name, "projects/*/flags/*")?;
        let usage = self.manager.usage(caller, &ids[0], &ids[1]).await.map_err(status)?;
        Ok(pb::FlagUsage {
            name: flag_name,
            environments: usage
                .into_iter()
                .map(|environment| pb::EnvironmentUsage {
                    environment: environment.environment,
                    variants: environment
                        .evaluations
                        .into_iter()
                        .map(|(variant, evaluations)| pb::VariantEvaluations { variant, evaluations })
                        .collect(),
                    last_evaluated: timestamp(environment.last_ms),
                })
                .collect(),
        })
    }

    pub async fn list_stale_flags(
        &self,
        request: Request<pb::ListStaleFlagsRequest>,
    ) -> Result<pb::ListStaleFlagsResponse, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = name("parent", &message.parent, "projects/*")?.remove(0);
        let days = match message.stale_days {
            0 => 30,
            days if days > 0 => i64::from(days),
            _ => return Err(invalid(FieldViolation::new("stale_days", "must not be negative"))),
        };
        let stale = self.manager.stale_flags(caller, &project, days).await.map_err(status)?;
        Ok(pb::ListStaleFlagsResponse {
            flags: stale
                .iter()
                .map(|(flag, last_ms)| pb::StaleFlag {
                    flag: Some(stored(&project, flag)),
                    last_evaluated: if *last_ms == 0 { None } else { timestamp(*last_ms) },
                })
                .collect(),
        })
    }

    pub async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<pb::ListAuditRecordsResponse, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let before = number_token(&message.page_token)?;
        let limit = page_size(message.page_size)?.clamp(1, 500);
        let filter = AuditFilter {
            resource_prefix: Some(message.resource_prefix.clone()).filter(|prefix| !prefix.is_empty()),
            before_sequence: before,
            limit,
            ..AuditFilter::default()
        };
        let records = self.manager.audit(caller, &filter).await.map_err(status)?;
        let next = match records.last() {
            Some(last) if records.len() as i64 == limit => page_token::encode(&last.sequence.to_string()),
            _ => String::new(),
        };
        Ok(pb::ListAuditRecordsResponse {
            records: records
                .iter()
                .map(|record| pb::AuditRecord {
                    sequence: record.sequence,
                    actor: record.entry.actor.clone(),
                    action: record.entry.action.clone(),
                    resource: record.entry.resource.clone(),
                    before_digest: record.entry.before_digest.clone().unwrap_or_default(),
                    after_digest: record.entry.after_digest.clone().unwrap_or_default(),
                    request_id: record.entry.request_id.clone().unwrap_or_default(),
                    create_time: timestamp(record.created_ms),
                })
                .collect(),
            next_page_token: next,
        })
    }
}
