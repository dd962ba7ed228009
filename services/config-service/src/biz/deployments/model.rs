//! The nouns of progressive delivery: a deployment, its state, its event log.

use serde::{Deserialize, Serialize};

use super::{
    gates::{Gate, Tally},
    strategy::Strategy,
};
use crate::biz::model::EnvKey;

/// What a deployment moves: a config's release or a flag's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Config,
    Flag,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Config => "config",
            TargetKind::Flag => "flag",
        }
    }

    pub fn parse(text: &str) -> Option<TargetKind> {
        match text {
            "config" => Some(TargetKind::Config),
            "flag" => Some(TargetKind::Flag),
            _ => None,
        }
    }
}

/// Where a deployment is in its life. Queued deployments wait for the active one of the same
/// target; the five active states hold the target's one active slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Queued,
    Validating,
    Deploying,
    Paused,
    Baking,
    Complete,
    RollingBack,
    RolledBack,
    Reverted,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Queued,
        State::Validating,
        State::Deploying,
        State::Paused,
        State::Baking,
        State::Complete,
        State::RollingBack,
        State::RolledBack,
        State::Reverted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Queued => "QUEUED",
            State::Validating => "VALIDATING",
            State::Deploying => "DEPLOYING",
            State::Paused => "PAUSED",
            State::Baking => "BAKING",
            State::Complete => "COMPLETE",
            State::RollingBack => "ROLLING_BACK",
            State::RolledBack => "ROLLED_BACK",
            State::Reverted => "REVERTED",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.name() == text)
    }

    /// Holds the target's active slot (the store keeps at most one such deployment per target).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            State::Validating | State::Deploying | State::Paused | State::Baking | State::RollingBack
        )
    }

    /// Needs a driver: active, or queued behind an active one.
    pub fn is_driven(self) -> bool {
        self.is_active() || self == State::Queued
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Complete | State::RolledBack | State::Reverted)
    }
}

/// One deployment, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub env: EnvKey,
    /// `{deployment}` of `projects/{p}/environments/{e}/deployments/{deployment}`, from 1.
    pub number: i64,
    pub kind: TargetKind,
    /// The config id or flag key.
    pub target: String,
    /// The release (config) or version (flag) being rolled out.
    pub version: i64,
    /// What clients had before; they keep it outside the rollout share.
    pub previous: i64,
    pub strategy: Strategy,
    pub gates: Vec<Gate>,
    /// Mixed into every client's bucket, so that two deployments pick independent samples.
    pub seed: String,
    pub state: State,
    /// Index of the current step of `strategy.steps()`.
    pub step: i64,
    /// Share of clients on `version` now, in parts per million.
    pub share: u32,
    /// When the current step (or the bake) began.
    pub step_started_ms: i64,
    /// When the current step or the bake may end; `None` waits for a human.
    pub due_ms: Option<i64>,
    /// While paused: what was left of the hold when it paused (`None`: an indefinite hold).
    pub paused_left_ms: Option<i64>,
    /// Why it is paused, rolled back or was refused; empty otherwise.
    pub reason: String,
    /// Per gate, in the order of `gates`.
    pub tallies: Vec<Tally>,
    pub description: String,
    pub created_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When it reached COMPLETE, ROLLED_BACK or REVERTED; 0 before.
    pub ended_ms: i64,
    /// Bumped by every transition: the optimistic-concurrency token and the etag.
    pub revision: i64,
    /// Asked before the first step; may refuse the deployment. Empty for none.
    pub pre_start_webhook: String,
    /// Told of every event.
    pub webhooks: Vec<String>,
    /// Created by breaking the glass: freeze windows do not hold it.
    pub break_glass: bool,
    /// The last event written and the last one announced (set by the store).
    pub event_sequence: i64,
    pub notified_sequence: i64,
}

impl Deployment {
    pub fn resource(&self) -> String {
        format!("{}/deployments/{}", self.env.resource(), self.number)
    }

    /// `projects/{p}/environments/{e}/configs/{c}` or `.../flags/{f}`.
    pub fn target_resource(&self) -> String {
        format!("{}/{}s/{}", self.env.resource(), self.kind.name(), self.target)
    }
}

/// What happened to a deployment, for its event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Queued,
    Started,
    Refused,
    PercentageChanged,
    CheckPassed,
    CheckFailed,
    CheckInconclusive,
    Paused,
    Resumed,
    Promoted,
    BakeStarted,
    /// A freeze window keeps the deployment from moving on.
    Held,
    RollingBack,
    RolledBack,
    Completed,
    Reverted,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        EventKind::Queued,
        EventKind::Started,
        EventKind::Refused,
        EventKind::PercentageChanged,
        EventKind::CheckPassed,
        EventKind::CheckFailed,
        EventKind::CheckInconclusive,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Promoted,
        EventKind::BakeStarted,
        EventKind::Held,
        EventKind::RollingBack,
        EventKind::RolledBack,
        EventKind::Completed,
        EventKind::Reverted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Started => "started",
            EventKind::Refused => "refused",
            EventKind::PercentageChanged => "percentage_changed",
            EventKind::CheckPassed => "check_passed",
            EventKind::CheckFailed => "check_failed",
            EventKind::CheckInconclusive => "check_inconclusive",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::Promoted => "promoted",
            EventKind::BakeStarted => "bake_started",
            EventKind::Held => "held",
            EventKind::RollingBack => "rolling_back",
            EventKind::RolledBack => "rolled_back",
            EventKind::Completed => "completed",
            EventKind::Reverted => "reverted",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.name() == text)
    }
}

/// One entry of a deployment's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// From 1, per deployment; assigned by the store.
    pub sequence: i64,
    pub kind: EventKind,
    /// The state after the event.
    pub state: State,
    pub share: u32,
    /// Who or what caused it: a principal, `driver`, or `gate:{name}`.
    pub actor: String,
    pub detail: String,
    pub created_ms: i64,
}

impl Event {
    pub fn new(kind: EventKind, deployment: &Deployment, actor: &str, detail: impl Into<String>) -> Event {
        Event {
            sequence: 0,
            kind,
            state: deployment.state,
            share: deployment.share,
            actor: actor.to_owned(),
            detail: detail.into(),
            created_ms: deployment.updated_ms,
        }
    }
}
