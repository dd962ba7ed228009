use super::*;

fn policy(required: u32) -> ApprovalPolicy {
    ApprovalPolicy {
        required,
        roles: vec!["publisher".into()],
        principals: vec![],
        allow_self_approval: false,
        approval_ttl_ms: 1000,
    }
}

fn change() -> ChangeRequest {
    ChangeRequest {
        env: EnvKey::new("t", "shop", "prod"),
        number: 1,
        config: "checkout".into(),
        operation: Operation::Publish {
            draft_version: 3,
            message: String::new(),
        },
        title: "raise the timeout".into(),
        description: String::new(),
        author: "carol".into(),
        base_release: 1,
        state: ChangeState::Draft,
        approvals: vec![],
        rejected_by: String::new(),
        rejection: String::new(),
        scheduled_ms: 0,
        schedule_zone: String::new(),
        scheduled_by: String::new(),
        outcome: String::new(),
        created_ms: 0,
        updated_ms: 0,
        revision: 1,
    }
}

#[test]
fn two_of_n_approvals_approve_and_an_edit_revokes_them() {
    let policy = policy(2);
    let mut change = change();
    assert!(
        change.approve(&policy, "bob", "", 1).is_err(),
        "a draft is not reviewed yet"
    );
    change.submit(1).unwrap();
    change.approve(&policy, "bob", "lgtm", 2).unwrap();
    change.approve(&policy, "bob", "again", 3).unwrap();
    assert_eq!(change.state, ChangeState::InReview, "one approver counts once");
    change.approve(&policy, "dana", "", 4).unwrap();
    assert_eq!(change.state, ChangeState::Approved);
    change.edited(5).unwrap();
    assert_eq!(change.state, ChangeState::InReview);
    assert!(change.approvals.is_empty());
}

#[test]
fn expired_approvals_send_the_change_back_to_review() {
    let policy = policy(1);
    let mut change = change();
    change.submit(0).unwrap();
    change.approve(&policy, "bob", "", 10).unwrap();
    assert!(change.require_approved(&policy, 1009).is_ok());
    let error = change.require_approved(&policy, 1010).unwrap_err().to_string();
    assert!(error.contains("0 of the 1"), "{error}");
    assert_eq!(change.state, ChangeState::InReview);
}

#[test]
fn only_approved_changes_are_scheduled_and_only_into_the_future() {
    let policy = policy(1);
    let mut change = change();
    change.submit(0).unwrap();
    assert!(change.schedule(&policy, (100, "Asia/Dhaka"), "bob", 1).is_err());
    change.approve(&policy, "bob", "", 1).unwrap();
    assert!(
        change.schedule(&policy, (1, "Asia/Dhaka"), "bob", 2).is_err(),
        "in the past"
    );
    change.schedule(&policy, (500, "Asia/Dhaka"), "bob", 2).unwrap();
    assert_eq!((change.state, change.scheduled_ms), (ChangeState::Scheduled, 500));
    change.reject("dana", "not this week", 3).unwrap();
    assert_eq!(change.state, ChangeState::Rejected);
    assert!(change.cancel(4).is_err(), "a rejected change is closed");
}
