//! The gRPC face of governance (`switchyard.config.v1.GovernanceService`): freeze windows and
//! the break-glass report, mapped to `biz::governance`.

use std::sync::Arc;

use switchyard_api::config::v1::{self as pb, governance_service_server::GovernanceService};
use switchyard_platform::proto_json::{timestamp, timestamp_ms};
use tonic::{Request, Response, Status};

use super::{
    caller,
    delivery_convert::{duration, duration_ms},
    requests::page_size,
    status,
};
use crate::{
    biz::{
        error::{ConfigError, ConfigResult},
        governance::{
            Governance, WindowView,
            freeze::{DuringFreeze, FreezeWindow, Schedule},
        },
        names::parse,
    },
    data::SqlRepository,
};

/// Implements `switchyard.config.v1.GovernanceService`.
#[derive(Debug, Clone)]
pub struct GovernanceServiceApi {
    governance: Arc<Governance<SqlRepository>>,
}

impl GovernanceServiceApi {
    pub fn new(governance: Arc<Governance<SqlRepository>>) -> Self {
        Self { governance }
    }
}

fn window_of(id: &str, message: &pb::FreezeWindow) -> ConfigResult<FreezeWindow> {
    let schedule = match &message.schedule {
        Some(pb::freeze_window::Schedule::Once(once)) => {
            let (Some(start), Some(end)) = (&once.start_time, &once.end_time) else {
                return Err(ConfigError::invalid("schedule.once", "start_time and end_time"));
            };
            Schedule::Once {
                start_ms: timestamp_ms(start),
                end_ms: timestamp_ms(end),
            }
        }
        Some(pb::freeze_window::Schedule::Recurring(recurring)) => Schedule::Recurring {
            start: recurring.start.clone(),
            rrule: recurring.rrule.clone(),
            duration_ms: duration_ms("schedule.duration", recurring.duration.as_ref())?,
        },
        Some(pb::freeze_window::Schedule::Cron(cron)) => Schedule::Cron {
            expression: cron.expression.clone(),
            duration_ms: duration_ms("schedule.duration", cron.duration.as_ref())?,
        },
        None => return Err(ConfigError::invalid("schedule", "`once`, `recurring` or `cron`")),
    };
    let during = match pb::freeze_window::During::try_from(message.deployments) {
        Ok(pb::freeze_window::During::Pause) => DuringFreeze::Pause,
        Ok(pb::freeze_window::During::Hold | pb::freeze_window::During::Unspecified) => DuringFreeze::Hold,
        Err(_) => return Err(ConfigError::invalid("deployments", "HOLD or PAUSE")),
    };
    Ok(FreezeWindow {
        id: id.to_owned(),
        title: message.title.clone(),
        environments: message.environments.clone(),
        zone: message.time_zone.clone(),
        schedule,
        during,
    })
}

fn window(project: &str, view: &WindowView) -> pb::FreezeWindow {
    let window = &view.window;
    let schedule = match &window.schedule {
        Schedule::Once { start_ms, end_ms } => pb::freeze_window::Schedule::Once(pb::OneOffWindow {
            start_time: timestamp(*start_ms),
            end_time: timestamp(*end_ms),
        }),
        Schedule::Recurring {
            start,
            rrule,
            duration_ms,
        } => pb::freeze_window::Schedule::Recurring(pb::RecurringWindow {
            start: start.clone(),
            rrule: rrule.clone(),
            duration: duration(*duration_ms),
        }),
        Schedule::Cron {
            expression,
            duration_ms,
        } => pb::freeze_window::Schedule::Cron(pb::CronWindow {
            expression: expression.clone(),
            duration: duration(*duration_ms),
        }),
    };
    let during = match window.during {
        DuringFreeze::Hold => pb::freeze_window::During::Hold,
        DuringFreeze::Pause => pb::freeze_window::During::Pause,
    };
    pb::FreezeWindow {
        name: format!("projects/{project}/freezeWindows/{}", window.id),
        title: window.title.clone(),
        environments: window.environments.clone(),
        time_zone: window.zone.clone(),
        schedule: Some(schedule),
        deployments: during as i32,
        open_now: view.open_now.is_some(),
        open_until: view.open_now.and_then(|opening| timestamp(opening.end_ms)),
        next_open_time: view.next.and_then(|opening| timestamp(opening.start_ms)),
        etag: view.version.to_string(),
    }
}

fn project_ref(field: &str, name: &str) -> ConfigResult<String> {
    Ok(parse(field, name, "projects/*")?.remove(0))
}

fn window_ref(field: &str, name: &str) -> ConfigResult<(String, String)> {
    let ids = parse(field, name, "projects/*/freezeWindows/*")?;
    Ok((ids[0].clone(), ids[1].clone()))
}

#[tonic::async_trait]
impl GovernanceService for GovernanceServiceApi {
    async fn list_freeze_windows(
        &self,
        request: Request<pb::ListFreezeWindowsRequest>,
    ) -> Result<Response<pb::ListFreezeWindowsResponse>, Status> {
        let caller = caller(&request)?;
        let project = project_ref("parent", &request.get_ref().parent).map_err(status)?;
        let views = self.governance.windows(caller, &project).await.map_err(status)?;
        Ok(Response::new(pb::ListFreezeWindowsResponse {
            freeze_windows: views.iter().map(|view| window(&project, view)).collect(),
        }))
    }

    async fn create_freeze_window(
        &self,
        request: Request<pb::CreateFreezeWindowRequest>,
    ) -> Result<Response<pb::FreezeWindow>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let project = project_ref("parent", &body.parent).map_err(status)?;
        let message = body.freeze_window.clone().unwrap_or_default();
        let parsed = window_of(&body.freeze_window_id, &message).map_err(status)?;
        let view = self
            .governance
            .put_window(caller, &project, parsed, "")
            .await
            .map_err(status)?;
        Ok(Response::new(window(&project, &view)))
    }

    async fn update_freeze_window(
        &self,
        request: Request<pb::UpdateFreezeWindowRequest>,
    ) -> Result<Response<pb::FreezeWindow>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref().freeze_window.clone().unwrap_or_default();
        let (project, id) = window_ref("freeze_window.name", &message.name).map_err(status)?;
        if message.etag.is_empty() {
            return Err(status(ConfigError::invalid(
                "freeze_window.etag",
                "required: the etag from the last read",
            )));
        }
        let parsed = window_of(&id, &message).map_err(status)?;
        let view = self
            .governance
            .put_window(caller, &project, parsed, &message.etag)
            .await
            .map_err(status)?;
        Ok(Response::new(window(&project, &view)))
    }

    async fn delete_freeze_window(
        &self,
        request: Request<pb::DeleteFreezeWindowRequest>,
    ) -> Result<Response<pbjson_types::Empty>, Status> {
        let caller = caller(&request)?;
        let (project, id) = window_ref("name", &request.get_ref().name).map_err(status)?;
        self.governance
            .delete_window(caller, &project, &id)
            .await
            .map_err(status)?;
        Ok(Response::new(pbjson_types::Empty {}))
    }

    async fn list_break_glass_uses(
        &self,
        request: Request<pb::ListBreakGlassUsesRequest>,
    ) -> Result<Response<pb::ListBreakGlassUsesResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let project = project_ref("parent", &body.parent).map_err(status)?;
        let since = body.since.as_ref().map(timestamp_ms).unwrap_or(0);
        let limit = match page_size(body.page_size).map_err(status)? {
            0 => 100,
            size => i64::from(size),
        };
        let uses = self
            .governance
            .break_glass_report(caller, &project, since, limit)
            .await
            .map_err(status)?;
        let uses = uses
            .into_iter()
            .map(|used| pb::BreakGlassUse {
                environment: used.environment,
                actor: used.actor,
                reason: used.reason,
                action: used.action,
                resource: used.resource,
                windows: used.windows,
                create_time: timestamp(used.created_ms),
            })
            .collect();
        Ok(Response::new(pb::ListBreakGlassUsesResponse { uses }))
    }
}
