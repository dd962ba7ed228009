//! The faces of flag-service: its own gRPC API, flagd's protocols (evaluation v1 and v2, sync
//! v1) and OFREP. Each maps requests to the use cases in `biz` and errors to statuses.

pub mod flagd;
pub mod flagd_sync;
pub mod flagd_v1;
pub mod flagd_v2;
pub mod management;
pub mod ofrep;

use flag_engine::{Resolution, ValueKind};
use switchyard_api::{
    flags::v1::{
        self as pb, EvaluateAllRequest, EvaluateAllResponse, EvaluateRequest, ValueType,
        flag_service_server::FlagService,
    },
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{
    about::About,
    error::{FieldViolation, to_status},
    proto_json::{to_proto_struct, to_proto_value},
};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::{biz::evaluation::Evaluator, data::repository::SqlRepository};
use management::{FlagManager, Handlers};

/// The longest flag key accepted.
const MAX_FLAG_KEY: usize = 256;

/// Implements `switchyard.flags.v1.FlagService`.
#[derive(Debug, Clone)]
pub struct FlagServiceApi {
    about: About,
    evaluator: Evaluator,
    manager: Arc<FlagManager>,
}

impl FlagServiceApi {
    pub fn new(about: About, evaluator: Evaluator, manager: Arc<FlagManager>) -> Self {
        Self {
            about,
            evaluator,
            manager,
        }
    }

    fn handlers(&self) -> Handlers<'_, SqlRepository> {
        Handlers { manager: &self.manager }
    }
}

fn expected_kind(value: i32) -> Result<Option<ValueKind>, Status> {
    Ok(match ValueType::try_from(value) {
        Ok(ValueType::Unspecified) => None,
        Ok(ValueType::Boolean) => Some(ValueKind::Boolean),
        Ok(ValueType::String) => Some(ValueKind::String),
        Ok(ValueType::Integer) => Some(ValueKind::Integer),
        Ok(ValueType::Float) => Some(ValueKind::Float),
        Ok(ValueType::Object) => Some(ValueKind::Object),
        Err(_) => {
            return Err(management::invalid(FieldViolation::new(
                "expected_type",
                format!("unknown value {value}"),
            )));
        }
    })
}

fn evaluation(key: &str, resolution: &Resolution<'_>) -> pb::Evaluation {
    let (error_code, error_message) = match &resolution.error {
        Some((code, message)) => (code.as_str().to_owned(), message.to_string()),
        None => (String::new(), String::new()),
    };
    pb::Evaluation {
        flag: key.to_owned(),
        value: resolution.value.map(to_proto_value),
        variant: resolution.variant.unwrap_or_default().to_owned(),
        reason: resolution.reason.as_str().to_owned(),
        error_code,
        error_message,
        metadata: Some(to_proto_struct(resolution.metadata)),
    }
}

#[tonic::async_trait]
impl FlagService for FlagServiceApi {
    async fn create_flag(&self, request: Request<pb::CreateFlagRequest>) -> Result<Response<pb::Flag>, Status> {
        self.handlers().create_flag(request).await.map(Response::new)
    }

    async fn get_flag(&self, request: Request<pb::GetFlagRequest>) -> Result<Response<pb::Flag>, Status> {
        self.handlers().get_flag(request).await.map(Response::new)
    }

    async fn list_flags(
        &self,
        request: Request<pb::ListFlagsRequest>,
    ) -> Result<Response<pb::ListFlagsResponse>, Status> {
        self.handlers().list_flags(request).await.map(Response::new)
    }

    async fn update_flag(&self, request: Request<pb::UpdateFlagRequest>) -> Result<Response<pb::Flag>, Status> {
        self.handlers().update_flag(request).await.map(Response::new)
    }

    async fn kill_flag(&self, request: Request<pb::KillFlagRequest>) -> Result<Response<pb::Flag>, Status> {
        self.handlers().kill_flag(request).await.map(Response::new)
    }

    async fn list_flag_versions(
        &self,
        request: Request<pb::ListFlagVersionsRequest>,
    ) -> Result<Response<pb::ListFlagVersionsResponse>, Status> {
        self.handlers().list_flag_versions(request).await.map(Response::new)
    }

    async fn diff_flag_versions(
        &self,
        request: Request<pb::DiffFlagVersionsRequest>,
    ) -> Result<Response<pb::DiffFlagVersionsResponse>, Status> {
        self.handlers().diff_flag_versions(request).await.map(Response::new)
    }

    async fn rollback_flag(&self, request: Request<pb::RollbackFlagRequest>) -> Result<Response<pb::Flag>, Status> {
        self.handlers().rollback_flag(request).await.map(Response::new)
    }

    async fn create_segment(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        self.handlers().create_segment(request).await.map(Response::new)
    }

    async fn update_segment(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        self.handlers().update_segment(request).await.map(Response::new)
    }

    async fn delete_segment(
        &self,
        request: Request<pb::DeleteSegmentRequest>,
    ) -> Result<Response<pbjson_types::Empty>, Status> {
        self.handlers().delete_segment(request).await.map(Response::new)
    }

    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        self.handlers().list_segments(request).await.map(Response::new)
    }

    async fn export_flags(
        &self,
        request: Request<pb::ExportFlagsRequest>,
    ) -> Result<Response<pb::ExportFlagsResponse>, Status> {
        self.handlers().export_flags(request).await.map(Response::new)
    }

    async fn import_flags(
        &self,
        request: Request<pb::ImportFlagsRequest>,
    ) -> Result<Response<pb::ImportFlagsResponse>, Status> {
        self.handlers().import_flags(request).await.map(Response::new)
    }

    async fn schedule_flag_change(
        &self,
        request: Request<pb::ScheduleFlagChangeRequest>,
    ) -> Result<Response<pb::ScheduledChange>, Status> {
        self.handlers().schedule_flag_change(request).await.map(Response::new)
    }

    async fn list_scheduled_changes(
        &self,
        request: Request<pb::ListScheduledChangesRequest>,
    ) -> Result<Response<pb::ListScheduledChangesResponse>, Status> {
        self.handlers().list_scheduled_changes(request).await.map(Response::new)
    }

    async fn cancel_scheduled_change(
        &self,
        request: Request<pb::CancelScheduledChangeRequest>,
    ) -> Result<Response<pb::ScheduledChange>, Status> {
        self.handlers()
            .cancel_scheduled_change(request)
            .await
            .map(Response::new)
    }

    async fn get_flag_usage(
        &self,
        request: Request<pb::GetFlagUsageRequest>,
    ) -> Result<Response<pb::FlagUsage>, Status> {
        self.handlers().get_flag_usage(request).await.map(Response::new)
    }

    async fn list_stale_flags(
        &self,
        request: Request<pb::ListStaleFlagsRequest>,
    ) -> Result<Response<pb::ListStaleFlagsResponse>, Status> {
        self.handlers().list_stale_flags(request).await.map(Response::new)
    }

    async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<Response<pb::ListAuditRecordsResponse>, Status> {
        self.handlers().list_audit_records(request).await.map(Response::new)
    }

    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }

    async fn evaluate(&self, request: Request<EvaluateRequest>) -> Result<Response<pb::Evaluation>, Status> {
        let (reader, selector) = flagd::reader(&self.evaluator, &request, &request.get_ref().selector)?;
        let request = request.into_inner();
        if request.flag.is_empty() || request.flag.len() > MAX_FLAG_KEY {
            return Err(management::invalid(FieldViolation::new(
                "flag",
                format!("a flag key has 1 to {MAX_FLAG_KEY} bytes"),
            )));
        }
        let expected = expected_kind(request.expected_type)?;
        let context = flagd::context(request.context.as_ref());
        let view = flagd::view(&self.evaluator, &reader, &selector)?;
        let resolution = self.evaluator.evaluate(&view, &request.flag, &context, expected);
        Ok(Response::new(evaluation(&request.flag, &resolution)))
    }

    async fn evaluate_all(
        &self,
        request: Request<EvaluateAllRequest>,
    ) -> Result<Response<EvaluateAllResponse>, Status> {
        let (reader, selector) = flagd::reader(&self.evaluator, &request, &request.get_ref().selector)?;
        let request = request.into_inner();
        let context = flagd::context(request.context.as_ref());
        let view = flagd::view(&self.evaluator, &reader, &selector)?;
        let mut keys: Vec<&str> = view.flags().flags().map(|flag| flag.key()).collect();
        keys.sort_unstable();
        let evaluations = keys
            .into_iter()
            .map(|key| evaluation(key, &self.evaluator.evaluate(&view, key, &context, None)))
            .collect();
        Ok(Response::new(EvaluateAllResponse { evaluations }))
    }
}
