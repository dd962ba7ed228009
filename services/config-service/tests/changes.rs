//! Change requests through the real API: a protected environment refuses direct changes;
//! N of M approvals by eligible people, never the author; an edit revokes approvals; applying
//! needs the publisher role; a moved base must be rebased (with its difference shown);
//! scheduled changes apply on their own; deployments go through approval too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{
    Service, authed,
    deploy::{ENV, duration, published_and_edited, version_for},
};
use switchyard_api::config::v1::{
    self as pb, change_request::State, governance_service_client::GovernanceServiceClient,
};
use switchyard_platform::testing;
use tonic::Code;

type Client = GovernanceServiceClient<tonic::transport::Channel>;

fn governance(service: &Service) -> Client {
    GovernanceServiceClient::new(testing::grpc_channel(&service.running))
}

async fn protect(service: &Service, required: u32, ttl_ms: i64, allow_self: bool) -> pb::ApprovalPolicy {
    governance(service)
        .set_approval_policy(authed(
            &service.keys.admin,
            pb::SetApprovalPolicyRequest {
                approval_policy: Some(pb::ApprovalPolicy {
                    name: format!("{ENV}/approvalPolicy"),
                    required_approvals: required,
                    approver_roles: vec!["publisher".into()],
                    approval_ttl: (ttl_ms > 0).then(|| duration(ttl_ms)).flatten(),
                    allow_self_approval: allow_self,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

fn publish_change(title: &str) -> pb::ChangeRequest {
    pb::ChangeRequest {
        config: "checkout".into(),
        title: title.into(),
        operation: Some(pb::change_request::Operation::Publish(pb::PublishChange::default())),
        ..Default::default()
    }
}

async fn propose(service: &Service, key: &str, change: pb::ChangeRequest) -> Result<pb::ChangeRequest, tonic::Status> {
    governance(service)
        .create_change_request(authed(
            key,
            pb::CreateChangeRequestRequest {
                parent: ENV.into(),
                change_request: Some(change),
            },
        ))
        .await
        .map(|response| response.into_inner())
}

async fn act(service: &Service, key: &str, name: &str, action: &str) -> Result<pb::ChangeRequest, tonic::Status> {
    let request = authed(
        key,
        pb::ChangeRequestActionRequest {
            name: name.into(),
            comment: format!("{action} in a test"),
        },
    );
    let mut client = governance(service);
    let response = match action {
        "submit" => client.submit_change_request(request).await,
        "approve" => client.approve_change_request(request).await,
        "reject" => client.reject_change_request(request).await,
        "cancel" => client.cancel_change_request(request).await,
        "rebase" => client.rebase_change_request(request).await,
        "apply" => client.apply_change_request(request).await,
        other => panic!("no action {other}"),
    };
    response.map(|response| response.into_inner())
}

async fn read(service: &Service, name: &str) -> pb::ChangeRequest {
    governance(service)
        .get_change_request(authed(
            &service.keys.viewer,
            pb::GetChangeRequestRequest { name: name.into() },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Polls the change until `done` holds (the scheduler works in the background).
async fn wait_for_change(
    service: &Service,
    name: &str,
    done: impl Fn(&pb::ChangeRequest) -> bool,
) -> pb::ChangeRequest {
    for _ in 0..300 {
        let current = read(service, name).await;
        if done(&current) {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{name} never reached the expected state: {:#?}",
        read(service, name).await
    );
}

async fn two_of_many_approve_and_an_edit_revokes(service: Service) {
    published_and_edited(&service).await;
    protect(&service, 2, 3_600_000, false).await;
    let keys = service.keys.clone();

    let direct = support::publish(&service, "checkout", "prod").await.unwrap_err();
    assert_eq!(direct.code(), Code::FailedPrecondition);
    assert!(direct.message().contains("protected"), "{}", direct.message());

    let viewer = propose(&service, &keys.viewer, publish_change("v2")).await.unwrap_err();
    assert_eq!(viewer.code(), Code::PermissionDenied, "drafting needs the editor role");
    let change = propose(&service, &keys.editor, publish_change("version 2 for everyone"))
        .await
        .unwrap();
    assert_eq!(change.state, State::Draft as i32);
    assert_eq!(change.base_release, 1);
    let early = act(&service, &keys.publisher, &change.name, "approve")
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "a draft is not under review");
    act(&service, &keys.editor, &change.name, "submit").await.unwrap();

    let not_an_approver = act(&service, &keys.editor, &change.name, "approve").await.unwrap_err();
    assert_eq!(not_an_approver.code(), Code::PermissionDenied);
    let once = act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    assert_eq!((once.state, once.approvals.len()), (State::InReview as i32, 1));
    let twice = act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    assert_eq!(twice.approvals.len(), 1, "one approver counts once");
    let approved = act(&service, &keys.admin, &change.name, "approve").await.unwrap();
    assert_eq!(approved.state, State::Approved as i32);
    assert_eq!(approved.required_approvals, 2);

    // An edit revokes every approval.
    let mut edited = approved.clone();
    edited.title = "version 2, reworded".into();
    let edited = governance(&service)
        .update_change_request(authed(
            &keys.editor,
            pb::UpdateChangeRequestRequest {
                change_request: Some(edited),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(edited.state, State::InReview as i32);
    assert!(edited.approvals.is_empty());
    act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    act(&service, &keys.emergency, &change.name, "approve").await.unwrap();

    let editor_applies = act(&service, &keys.editor, &change.name, "apply").await.unwrap_err();
    assert_eq!(
        editor_applies.code(),
        Code::PermissionDenied,
        "applying needs the publisher role"
    );
    let applied = act(&service, &keys.publisher, &change.name, "apply").await.unwrap();
    assert_eq!(applied.state, State::Applied as i32);
    assert_eq!(
        applied.outcome,
        "projects/shop/environments/prod/configs/checkout/releases/2"
    );
    assert_eq!(version_for(&service, "pod-1").await, 2);
    let again = act(&service, &keys.publisher, &change.name, "apply").await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn two_of_many_approve_and_an_edit_revokes_on_sqlite() {
    two_of_many_approve_and_an_edit_revokes(support::sqlite().await).await;
}

#[tokio::test]
async fn two_of_many_approve_and_an_edit_revokes_on_postgres() {
    two_of_many_approve_and_an_edit_revokes(support::postgres().await).await;
}

#[tokio::test]
async fn the_author_approves_only_when_the_policy_allows_it() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    protect(&service, 1, 0, false).await;
    let keys = service.keys.clone();
    let change = propose(&service, &keys.publisher, publish_change("mine"))
        .await
        .unwrap();
    act(&service, &keys.publisher, &change.name, "submit").await.unwrap();
    let own = act(&service, &keys.publisher, &change.name, "approve")
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied);
    assert!(own.message().contains("author"), "{}", own.message());
    let lenient = governance(&service)
        .get_approval_policy(authed(
            &keys.viewer,
            pb::GetApprovalPolicyRequest {
                name: format!("{ENV}/approvalPolicy"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    governance(&service)
        .set_approval_policy(authed(
            &keys.admin,
            pb::SetApprovalPolicyRequest {
                approval_policy: Some(pb::ApprovalPolicy {
                    allow_self_approval: true,
                    ..lenient
                }),
            },
        ))
        .await
        .unwrap();
    let approved = act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    assert_eq!(approved.state, State::Approved as i32);
}

#[tokio::test]
async fn a_moved_base_shows_its_difference_and_must_be_rebased() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    protect(&service, 1, 0, false).await;
    let keys = service.keys.clone();
    let change = propose(&service, &keys.editor, publish_change("v2")).await.unwrap();
    act(&service, &keys.editor, &change.name, "submit").await.unwrap();
    act(&service, &keys.publisher, &change.name, "approve").await.unwrap();

    // Someone publishes past the change with break-glass: release 2 is `version: 2`.
    let mut urgent = authed(
        &keys.emergency,
        pb::PublishConfigRequest {
            name: "projects/shop/configs/checkout".into(),
            environment: "prod".into(),
            ..Default::default()
        },
    );
    urgent
        .metadata_mut()
        .insert("x-switchyard-break-glass", "INC-1".parse().unwrap());
    service.client().publish_config(urgent).await.unwrap();

    let conflicted = read(&service, &change.name).await;
    assert!(
        conflicted.conflict.contains("moved from release 1 to release 2"),
        "{}",
        conflicted.conflict
    );
    assert_eq!(conflicted.conflict_changes.len(), 1);
    assert_eq!(conflicted.conflict_changes[0].path, "$.version");
    let refused = act(&service, &keys.publisher, &change.name, "apply").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("rebase"), "{}", refused.message());

    let rebased = act(&service, &keys.editor, &change.name, "rebase").await.unwrap();
    assert_eq!(rebased.base_release, 2);
    assert!(rebased.approvals.is_empty(), "rebasing revokes approvals");
    assert!(rebased.conflict.is_empty());
    assert_eq!(rebased.state, State::InReview as i32);

    // A draft edited after approval is a conflict too.
    act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    support::edit(&service, "checkout", "version: 5\n").await;
    let edited = read(&service, &change.name).await;
    assert!(
        edited.conflict.contains("draft of checkout was edited"),
        "{}",
        edited.conflict
    );
}

#[tokio::test]
async fn rejection_closes_a_change_and_expired_approvals_send_it_back() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    protect(&service, 1, 1000, false).await;
    let keys = service.keys.clone();
    let change = propose(&service, &keys.editor, publish_change("v2")).await.unwrap();
    act(&service, &keys.editor, &change.name, "submit").await.unwrap();
    let not_approver = act(&service, &keys.viewer, &change.name, "reject").await.unwrap_err();
    assert_eq!(not_approver.code(), Code::PermissionDenied);
    act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    // Approvals count for one second here; wait past it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = act(&service, &keys.publisher, &change.name, "apply").await.unwrap_err();
    assert_eq!(expired.code(), Code::FailedPrecondition);
    assert!(expired.message().contains("0 of the 1"), "{}", expired.message());
    let back = read(&service, &change.name).await;
    assert_eq!(back.state, State::InReview as i32);
    assert!(!back.approvals[0].counts);
    let rejected = act(&service, &keys.admin, &change.name, "reject").await.unwrap();
    assert_eq!(rejected.state, State::Rejected as i32);
    assert_eq!(rejected.rejection, "reject in a test");
    assert_eq!(version_for(&service, "pod-1").await, 1, "nothing was published");
}

async fn schedule(
    service: &Service,
    key: &str,
    name: &str,
    local: &str,
    zone: &str,
) -> Result<pb::ChangeRequest, tonic::Status> {
    governance(service)
        .schedule_change_request(authed(
            key,
            pb::ScheduleChangeRequestRequest {
                name: name.into(),
                local_time: local.into(),
                time_zone: zone.into(),
            },
        ))
        .await
        .map(|response| response.into_inner())
}

#[tokio::test]
async fn scheduled_changes_apply_on_their_own_at_the_local_time_given() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    protect(&service, 1, 0, false).await;
    let keys = service.keys.clone();
    let change = propose(&service, &keys.editor, publish_change("at half past midnight"))
        .await
        .unwrap();
    act(&service, &keys.editor, &change.name, "submit").await.unwrap();
    let unapproved = schedule(
        &service,
        &keys.publisher,
        &change.name,
        "2099-01-01T00:30",
        "Asia/Dhaka",
    )
    .await
    .unwrap_err();
    assert_eq!(unapproved.code(), Code::FailedPrecondition);
    act(&service, &keys.publisher, &change.name, "approve").await.unwrap();

    // Half past midnight in Dhaka is 18:30 UTC the day before.
    let far = schedule(
        &service,
        &keys.publisher,
        &change.name,
        "2099-01-01T00:30",
        "Asia/Dhaka",
    )
    .await
    .unwrap();
    assert_eq!(far.state, State::Scheduled as i32);
    assert_eq!(far.schedule_time.unwrap().seconds, 4_070_889_000);
    assert_eq!(far.schedule_zone, "Asia/Dhaka");
    for (local, zone) in [
        ("2099-01-01T00:30", "Dhaka"),
        ("noon", "Asia/Dhaka"),
        ("2020-01-01T00:00", "Asia/Dhaka"),
    ] {
        let refused = schedule(&service, &keys.publisher, &change.name, local, zone)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{local} {zone}: {refused:?}");
    }

    // Now: two seconds from now, in Dhaka's local time.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let local = soon
        .with_timezone(&chrono_tz::Asia::Dhaka)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let rescheduled = act(&service, &keys.editor, &change.name, "rebase").await.unwrap();
    assert_eq!(
        rescheduled.state,
        State::InReview as i32,
        "rebasing unschedules and revokes"
    );
    act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    schedule(&service, &keys.publisher, &change.name, &local, "Asia/Dhaka")
        .await
        .unwrap();
    let applied = wait_for_change(&service, &change.name, |c| c.state == State::Applied as i32).await;
    assert!(applied.outcome.ends_with("/releases/2"), "{}", applied.outcome);
    assert_eq!(version_for(&service, "pod-1").await, 2);
}

#[tokio::test]
async fn a_deployment_in_a_protected_environment_goes_through_approval() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    protect(&service, 1, 0, false).await;
    let keys = service.keys.clone();
    let direct = support::deploy::try_deploy(
        &service,
        &keys.publisher,
        support::deploy::deployment("AllAtOnce", vec![]),
    )
    .await
    .unwrap_err();
    assert_eq!(direct.code(), Code::FailedPrecondition);
    let change = pb::ChangeRequest {
        config: "checkout".into(),
        title: "deploy v2 gradually".into(),
        operation: Some(pb::change_request::Operation::Deploy(pb::DeployChange {
            deployment: Some(support::deploy::deployment("AllAtOnce", vec![])),
        })),
        ..Default::default()
    };
    let change = propose(&service, &keys.editor, change).await.unwrap();
    act(&service, &keys.editor, &change.name, "submit").await.unwrap();
    act(&service, &keys.admin, &change.name, "approve").await.unwrap();
    let applied = act(&service, &keys.publisher, &change.name, "apply").await.unwrap();
    assert_eq!(applied.outcome, "projects/shop/environments/prod/deployments/1");
    support::deploy::wait_for(
        &service,
        &applied.outcome,
        support::deploy::in_state(pb::deployment::State::Baking),
    )
    .await;
    assert_eq!(version_for(&service, "pod-1").await, 2);
}

#[tokio::test]
async fn bad_policies_and_changes_are_refused_and_other_tenants_see_nothing() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    let keys = service.keys.clone();
    let unprotected = propose(&service, &keys.editor, publish_change("x")).await.unwrap_err();
    assert_eq!(
        unprotected.code(),
        Code::FailedPrecondition,
        "an unprotected environment changes directly"
    );
    let mut client = governance(&service);
    for (policy, needle) in [
        (
            pb::ApprovalPolicy {
                required_approvals: 0,
                approver_roles: vec!["publisher".into()],
                ..Default::default()
            },
            "required_approvals",
        ),
        (
            pb::ApprovalPolicy {
                required_approvals: 11,
                approver_roles: vec!["publisher".into()],
                ..Default::default()
            },
            "required_approvals",
        ),
        (
            pb::ApprovalPolicy {
                required_approvals: 1,
                approver_roles: vec!["root".into()],
                ..Default::default()
            },
            "approver_roles[0]",
        ),
    ] {
        let refused = client
            .set_approval_policy(authed(
                &keys.admin,
                pb::SetApprovalPolicyRequest {
                    approval_policy: Some(pb::ApprovalPolicy {
                        name: format!("{ENV}/approvalPolicy"),
                        ..policy
                    }),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains(needle), "{needle}: {}", refused.message());
    }
    protect(&service, 1, 0, false).await;
    let untitled = propose(&service, &keys.editor, publish_change(" ")).await.unwrap_err();
    assert_eq!(untitled.code(), Code::InvalidArgument);
    let no_operation = propose(
        &service,
        &keys.editor,
        pb::ChangeRequest {
            operation: None,
            ..publish_change("x")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(no_operation.code(), Code::InvalidArgument);
    let change = propose(&service, &keys.editor, publish_change("v2")).await.unwrap();
    let other = client
        .get_change_request(authed(
            &keys.other_tenant,
            pb::GetChangeRequestRequest {
                name: change.name.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
    let other_approves = act(&service, &keys.other_tenant, &change.name, "approve")
        .await
        .unwrap_err();
    assert!(
        matches!(other_approves.code(), Code::NotFound | Code::FailedPrecondition),
        "{other_approves:?}"
    );
}

#[tokio::test]
async fn a_scheduled_change_waits_out_a_freeze_and_applies_after_it() {
    let service = support::sqlite().await;
    published_and_edited(&service).await;
    protect(&service, 1, 0, false).await;
    let keys = service.keys.clone();
    let now_ms = chrono::Utc::now().timestamp_millis();
    governance(&service)
        .create_freeze_window(authed(
            &keys.admin,
            pb::CreateFreezeWindowRequest {
                parent: "projects/shop".into(),
                freeze_window_id: "sale".into(),
                freeze_window: Some(pb::FreezeWindow {
                    time_zone: "Asia/Dhaka".into(),
                    schedule: Some(pb::freeze_window::Schedule::Once(pb::OneOffWindow {
                        start_time: switchyard_platform::proto_json::timestamp(now_ms - 60_000),
                        end_time: switchyard_platform::proto_json::timestamp(now_ms + 3_600_000),
                    })),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let change = propose(&service, &keys.editor, publish_change("after the sale"))
        .await
        .unwrap();
    act(&service, &keys.editor, &change.name, "submit").await.unwrap();
    act(&service, &keys.publisher, &change.name, "approve").await.unwrap();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .with_timezone(&chrono_tz::Asia::Dhaka)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    schedule(&service, &keys.publisher, &change.name, &soon, "Asia/Dhaka")
        .await
        .unwrap();
    let waiting = wait_for_change(&service, &change.name, |c| c.outcome.starts_with("waiting")).await;
    assert_eq!(waiting.state, State::Scheduled as i32, "it stays scheduled");
    assert!(waiting.outcome.contains("freeze window sale"), "{}", waiting.outcome);
    assert_eq!(version_for(&service, "pod-1").await, 1);

    governance(&service)
        .delete_freeze_window(authed(
            &keys.admin,
            pb::DeleteFreezeWindowRequest {
                name: "projects/shop/freezeWindows/sale".into(),
            },
        ))
        .await
        .unwrap();
    wait_for_change(&service, &change.name, |c| c.state == State::Applied as i32).await;
    assert_eq!(version_for(&service, "pod-1").await, 2);
}
