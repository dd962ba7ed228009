use super::*;
use crate::biz::{
    deployments::{
        gates::{Check, Gate, Tally},
        model::TargetKind,
        strategy::{Growth, Step, Strategy, find_predefined},
    },
    model::EnvKey,
};

fn deployment(strategy: Strategy, gates: Vec<Gate>) -> Deployment {
    let tallies = vec![Tally::default(); gates.len()];
    Deployment {
        env: EnvKey::new("t", "shop", "prod"),
        number: 1,
        kind: TargetKind::Config,
        target: "checkout".into(),
        version: 2,
        previous: 1,
        strategy,
        gates,
        seed: "seed".into(),
        state: State::Validating,
        step: 0,
        share: 0,
        step_started_ms: 0,
        due_ms: None,
        paused_left_ms: None,
        reason: String::new(),
        tallies,
        description: String::new(),
        created_by: "alice".into(),
        created_ms: 0,
        updated_ms: 0,
        ended_ms: 0,
        revision: 1,
        pre_start_webhook: String::new(),
        webhooks: Vec::new(),
        break_glass: false,
        event_sequence: 0,
        notified_sequence: 0,
    }
}

fn gate(failure_limit: u32, consecutive_successes: u32) -> Gate {
    Gate {
        name: "errors".into(),
        check: Check::ClientHealth {
            max_error_rate: 0.05,
            max_relative_increase: 0.0,
            min_sample: 1,
        },
        interval_ms: 1000,
        failure_limit,
        consecutive_successes,
    }
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|event| event.kind).collect()
}

#[test]
fn a_linear_deployment_walks_its_steps_then_bakes_then_completes() {
    let mut d = deployment(find_predefined("Linear50PercentEvery30Seconds").unwrap(), vec![]);
    let events = start(&mut d, 1000, "alice");
    assert_eq!(kinds(&events), [EventKind::Started, EventKind::PercentageChanged]);
    assert_eq!((d.state, d.share, d.due_ms), (State::Deploying, 500_000, Some(31_000)));
    assert!(!may_advance(&d, 30_999));
    assert!(may_advance(&d, 31_000));
    advance(&mut d, 31_000);
    assert_eq!((d.state, d.share, d.due_ms), (State::Deploying, FULL, Some(61_000)));
    let events = advance(&mut d, 61_000);
    assert_eq!(kinds(&events), [EventKind::BakeStarted]);
    assert_eq!((d.state, d.due_ms), (State::Baking, Some(121_000)));
    let events = advance(&mut d, 121_000);
    assert_eq!(kinds(&events), [EventKind::Completed]);
    assert_eq!((d.state, d.ended_ms), (State::Complete, 121_000));
}

#[test]
fn all_at_once_without_bake_completes_on_start() {
    let mut strategy = find_predefined("AllAtOnce").unwrap();
    strategy.bake_ms = 0;
    let mut d = deployment(strategy, vec![]);
    let events = start(&mut d, 5, "alice");
    assert_eq!(kinds(&events), [EventKind::Started, EventKind::PercentageChanged]);
    assert_eq!((d.state, d.share), (State::Deploying, FULL));
    assert!(may_advance(&d, 5), "a 100% step of no duration ends at once");
    assert_eq!(kinds(&advance(&mut d, 5)), [EventKind::Completed]);
    assert_eq!(d.state, State::Complete);
}

#[test]
fn an_indefinite_step_pauses_until_resumed_and_resume_moves_on() {
    let strategy = Strategy {
        id: "manual".into(),
        description: String::new(),
        growth: Growth::Steps {
            steps: vec![Step {
                percentage: 10.0,
                pause_ms: None,
            }],
        },
        duration_ms: 0,
        bake_ms: 0,
    };
    let mut d = deployment(strategy, vec![]);
    start(&mut d, 0, "alice");
    assert_eq!((d.state, d.share), (State::Paused, 100_000));
    assert!(!may_advance(&d, i64::MAX / 2));
    resume(&mut d, 10, "bob").unwrap();
    assert!(may_advance(&d, 10));
    assert_eq!(kinds(&advance(&mut d, 10)), [EventKind::PercentageChanged]);
    assert_eq!((d.state, d.share), (State::Deploying, FULL));
    assert_eq!(kinds(&advance(&mut d, 10)), [EventKind::Completed]);
}

#[test]
fn pausing_keeps_the_rest_of_the_hold_across_the_pause() {
    let mut d = deployment(find_predefined("Linear20PercentEvery6Minutes").unwrap(), vec![]);
    start(&mut d, 0, "alice");
    pause(&mut d, 60_000, "alice", "lunch").unwrap();
    assert_eq!((d.state, d.paused_left_ms), (State::Paused, Some(300_000)));
    assert!(pause(&mut d, 60_001, "alice", "again").is_err());
    resume(&mut d, 1_000_000, "alice").unwrap();
    assert_eq!((d.state, d.due_ms), (State::Deploying, Some(1_300_000)));
}

#[test]
fn promote_skips_to_the_bake_and_promoting_the_bake_completes() {
    let mut d = deployment(find_predefined("Canary10Percent20Minutes").unwrap(), vec![]);
    start(&mut d, 0, "alice");
    let events = promote(&mut d, 10, "alice").unwrap();
    assert_eq!(
        kinds(&events),
        [
            EventKind::Promoted,
            EventKind::PercentageChanged,
            EventKind::BakeStarted
        ]
    );
    assert_eq!((d.state, d.share), (State::Baking, FULL));
    promote(&mut d, 20, "alice").unwrap();
    assert_eq!(d.state, State::Complete);
}

#[test]
fn failures_beyond_the_limit_roll_back_and_inconclusive_pauses() {
    let mut d = deployment(
        find_predefined("Linear50PercentEvery30Seconds").unwrap(),
        vec![gate(1, 0)],
    );
    start(&mut d, 0, "alice");
    let failed = Outcome::Failed("too many errors".into());
    let events = record_check(&mut d, 0, &failed, 1000);
    assert_eq!(kinds(&events), [EventKind::CheckFailed]);
    assert_eq!(d.state, State::Deploying);
    let events = record_check(&mut d, 0, &failed, 2000);
    assert_eq!(
        kinds(&events),
        [EventKind::CheckFailed, EventKind::RollingBack, EventKind::RolledBack]
    );
    assert_eq!((d.state, d.share), (State::RolledBack, 0));
    assert!(d.reason.contains("too many errors"));

    let mut d = deployment(
        find_predefined("Linear50PercentEvery30Seconds").unwrap(),
        vec![gate(0, 0)],
    );
    start(&mut d, 0, "alice");
    let events = record_check(&mut d, 0, &Outcome::Inconclusive("no data".into()), 1000);
    assert_eq!(kinds(&events), [EventKind::CheckInconclusive, EventKind::Paused]);
    assert_eq!(d.state, State::Paused);
    assert!(d.reason.contains("no data"));
}

#[test]
fn a_step_waits_for_its_run_of_passes_and_logs_passes_once_per_run() {
    let mut d = deployment(
        find_predefined("Linear50PercentEvery30Seconds").unwrap(),
        vec![gate(0, 2)],
    );
    start(&mut d, 0, "alice");
    assert_eq!(gates_due(&d, 999), Vec::<usize>::new());
    assert_eq!(gates_due(&d, 1000), [0]);
    let passed = Outcome::Passed("fine".into());
    assert_eq!(kinds(&record_check(&mut d, 0, &passed, 1000)), [EventKind::CheckPassed]);
    assert!(!may_advance(&d, 30_000));
    assert!(record_check(&mut d, 0, &passed, 2000).is_empty());
    assert!(may_advance(&d, 30_000));
    advance(&mut d, 30_000);
    assert!(!may_advance(&d, 60_000), "a new step needs its own run of passes");
}

#[test]
fn revert_is_allowed_only_within_the_window_after_completion() {
    let mut strategy = find_predefined("AllAtOnce").unwrap();
    strategy.bake_ms = 0;
    let mut d = deployment(strategy, vec![]);
    start(&mut d, 0, "alice");
    advance(&mut d, 0);
    assert_eq!(d.state, State::Complete);
    let window = 72 * 3_600_000;
    let mut late = d.clone();
    assert!(revert(&mut late, window + 1, "bob", window).is_err());
    let events = revert(&mut d, window, "bob", window).unwrap();
    assert_eq!(kinds(&events), [EventKind::Reverted]);
    assert_eq!((d.state, d.share), (State::Reverted, 0));
    assert!(revert(&mut d, window, "bob", window).is_err());
}

#[test]
fn a_refused_or_stopped_queue_entry_never_served_anything() {
    let mut d = deployment(find_predefined("AllAtOnce").unwrap(), vec![]);
    let events = refuse(&mut d, 3, "webhook", "change freeze in the CAB calendar");
    assert_eq!(kinds(&events), [EventKind::Refused]);
    assert_eq!((d.state, d.share), (State::RolledBack, 0));

    let mut queued = deployment(find_predefined("AllAtOnce").unwrap(), vec![]);
    queued.state = State::Queued;
    let events = roll_back(&mut queued, 3, "alice", "not needed").unwrap();
    assert_eq!(kinds(&events), [EventKind::RolledBack]);
}
