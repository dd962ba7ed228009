//! The gRPC face of governance (`switchyard.config.v1.GovernanceService`): freeze windows and
//! the break-glass report, mapped to `biz::governance`.

use std::sync::Arc;

use switchyard_api::config::v1::{self as pb, governance_service_server::GovernanceService};
use switchyard_platform::proto_json::{timestamp, timestamp_ms};
use tonic::{Request, Response, Status};

use super::{
    caller, changes,
    delivery_convert::{duration, duration_ms},
    requests::{next_token, numeric_position, page_size, project_ref},
    status,
};
use crate::{
    biz::{
        changes::{Changes, model::ChangeRequest},
        error::{ConfigError, ConfigResult},
        governance::{
            Governance, WindowView,
            freeze::{DuringFreeze, FreezeWindow, Schedule},
        },
        names::parse,
        store::Caller,
    },
    data::SqlRepository,
};

/// Implements `switchyard.config.v1.GovernanceService`.
#[derive(Debug, Clone)]
pub struct GovernanceServiceApi {
    governance: Arc<Governance<SqlRepository>>,
    changes: Arc<Changes<SqlRepository>>,
}

impl GovernanceServiceApi {
    pub fn new(governance: Arc<Governance<SqlRepository>>, changes: Arc<Changes<SqlRepository>>) -> Self {
        Self { governance, changes }
    }

    /// A change as a caller sees it: with its policy and any conflict.
    async fn present(&self, caller: Caller<'_>, change: &ChangeRequest) -> Result<pb::ChangeRequest, Status> {
        let policy = self.governance.policy_of(&change.env).await.map_err(status)?;
        let conflict = if change.state.is_open() {
            self.changes.conflict(caller, change).await.map_err(status)?
        } else {
            None
        };
        Ok(changes::change(change, policy.as_ref(), conflict.as_ref()))
    }

    async fn act(
        &self,
        request: Request<pb::ChangeRequestActionRequest>,
        action: ChangeAction,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, number) = changes::change_ref(&caller, "name", &body.name).map_err(status)?;
        let changes = &self.changes;
        let result = match action {
            ChangeAction::Submit => changes.submit(caller, &env, number).await,
            ChangeAction::Approve => changes.approve(caller, &env, number, &body.comment).await,
            ChangeAction::Reject => changes.reject(caller, &env, number, &body.comment).await,
            ChangeAction::Cancel => changes.cancel(caller, &env, number).await,
            ChangeAction::Rebase => changes.rebase(caller, &env, number).await,
            ChangeAction::Apply => changes.apply(caller, &env, number).await,
        };
        let change = result.map_err(status)?;
        Ok(Response::new(self.present(caller, &change).await?))
    }
}

#[derive(Debug, Clone, Copy)]
enum ChangeAction {
    Submit,
    Approve,
    Reject,
    Cancel,
    Rebase,
    Apply,
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

    async fn get_approval_policy(
        &self,
        request: Request<pb::GetApprovalPolicyRequest>,
    ) -> Result<Response<pb::ApprovalPolicy>, Status> {
        let caller = caller(&request)?;
        let env = changes::policy_ref(&caller, "name", &request.get_ref().name).map_err(status)?;
        let found = self.governance.policy(caller, &env).await.map_err(status)?;
        let (policy, version) = found.ok_or_else(|| {
            status(ConfigError::NotFound(format!(
                "{}/approvalPolicy (the environment is not protected)",
                env.resource()
            )))
        })?;
        Ok(Response::new(changes::policy(&env, &policy, version)))
    }

    async fn set_approval_policy(
        &self,
        request: Request<pb::SetApprovalPolicyRequest>,
    ) -> Result<Response<pb::ApprovalPolicy>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref().approval_policy.clone().unwrap_or_default();
        let env = changes::policy_ref(&caller, "approval_policy.name", &message.name).map_err(status)?;
        let parsed = changes::policy_of(&message).map_err(status)?;
        let (policy, version) = self
            .governance
            .put_policy(caller, &env, parsed, &message.etag)
            .await
            .map_err(status)?;
        Ok(Response::new(changes::policy(&env, &policy, version)))
    }

    async fn delete_approval_policy(
        &self,
        request: Request<pb::DeleteApprovalPolicyRequest>,
    ) -> Result<Response<pbjson_types::Empty>, Status> {
        let caller = caller(&request)?;
        let env = changes::policy_ref(&caller, "name", &request.get_ref().name).map_err(status)?;
        self.governance.delete_policy(caller, &env).await.map_err(status)?;
        Ok(Response::new(pbjson_types::Empty {}))
    }

    async fn create_change_request(
        &self,
        request: Request<pb::CreateChangeRequestRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let env = super::requests::env_key(&caller, "parent", &body.parent).map_err(status)?;
        let message = body.change_request.clone().unwrap_or_default();
        let proposal = changes::proposal_of(&message).map_err(status)?;
        let change = self.changes.create(caller, &env, proposal).await.map_err(status)?;
        Ok(Response::new(self.present(caller, &change).await?))
    }

    async fn get_change_request(
        &self,
        request: Request<pb::GetChangeRequestRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        let caller = caller(&request)?;
        let (env, number) = changes::change_ref(&caller, "name", &request.get_ref().name).map_err(status)?;
        let change = self.changes.get(caller, &env, number).await.map_err(status)?;
        Ok(Response::new(self.present(caller, &change).await?))
    }

    async fn list_change_requests(
        &self,
        request: Request<pb::ListChangeRequestsRequest>,
    ) -> Result<Response<pb::ListChangeRequestsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let env = super::requests::env_key(&caller, "parent", &body.parent).map_err(status)?;
        let state = changes::state_of(body.state).map_err(status)?;
        let size = page_size(body.page_size).map_err(status)?;
        let before = numeric_position(&body.page_token).map_err(status)?.unwrap_or(0);
        let found = self
            .changes
            .list(caller, &env, state, before, size)
            .await
            .map_err(status)?;
        let policy = self.governance.policy_of(&env).await.map_err(status)?;
        let full = found.len() as i64 >= self.changes.page_size(size);
        let last = found.last().map(|change| change.number.to_string());
        Ok(Response::new(pb::ListChangeRequestsResponse {
            change_requests: found
                .iter()
                .map(|change| changes::change(change, policy.as_ref(), None))
                .collect(),
            next_page_token: next_token(full, last),
        }))
    }

    async fn update_change_request(
        &self,
        request: Request<pb::UpdateChangeRequestRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref().change_request.clone().unwrap_or_default();
        let (env, number) = changes::change_ref(&caller, "change_request.name", &message.name).map_err(status)?;
        let proposal = changes::proposal_of(&message).map_err(status)?;
        let change = self
            .changes
            .edit(caller, &env, number, proposal)
            .await
            .map_err(status)?;
        Ok(Response::new(self.present(caller, &change).await?))
    }

    async fn submit_change_request(
        &self,
        request: Request<pb::ChangeRequestActionRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        self.act(request, ChangeAction::Submit).await
    }

    async fn approve_change_request(
        &self,
        request: Request<pb::ChangeRequestActionRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        self.act(request, ChangeAction::Approve).await
    }

    async fn reject_change_request(
        &self,
        request: Request<pb::ChangeRequestActionRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        self.act(request, ChangeAction::Reject).await
    }

    async fn cancel_change_request(
        &self,
        request: Request<pb::ChangeRequestActionRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        self.act(request, ChangeAction::Cancel).await
    }

    async fn rebase_change_request(
        &self,
        request: Request<pb::ChangeRequestActionRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        self.act(request, ChangeAction::Rebase).await
    }

    async fn apply_change_request(
        &self,
        request: Request<pb::ChangeRequestActionRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        self.act(request, ChangeAction::Apply).await
    }

    async fn schedule_change_request(
        &self,
        request: Request<pb::ScheduleChangeRequestRequest>,
    ) -> Result<Response<pb::ChangeRequest>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, number) = changes::change_ref(&caller, "name", &body.name).map_err(status)?;
        let change = self
            .changes
            .schedule(caller, &env, number, &body.local_time, &body.time_zone)
            .await
            .map_err(status)?;
        Ok(Response::new(self.present(caller, &change).await?))
    }
}
