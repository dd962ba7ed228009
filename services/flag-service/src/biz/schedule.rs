//! Scheduled changes: new rules for some of a flag's environments, applied at a wall-clock time
//! in a named time zone ("2026-12-01T09:00 in Asia/Dhaka").
//!
//! The time is resolved to an instant when the change is scheduled (time zone rules do not move
//! under it afterwards). Every replica looks for due changes; applying one marks it in the same
//! transaction that writes the flag, so exactly one replica applies it. A change that no longer
//! fits the project when it falls due (a segment it names was deleted, say) is marked failed
//! with the reason instead of being half-applied.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use switchyard_platform::{Shutdown, error::FieldViolation};

use super::{management::Manager, model::EnvironmentRules, repository::FlagRepository};

/// Where a scheduled change is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleStatus {
    Pending,
    Applied,
    Cancelled,
    Failed,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "applied" => Self::Applied,
            "cancelled" => Self::Cancelled,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A change waiting for (or past) its time.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledChange {
    pub id: String,
    pub tenant: String,
    pub project: String,
    pub flag: String,
    pub due_ms: i64,
    pub time_zone: String,
    /// The wall-clock time as the scheduler gave it.
    pub local_time: String,
    /// Environment → the rules it gets.
    pub environments: BTreeMap<String, EnvironmentRules>,
    pub author: String,
    pub message: String,
    pub status: ScheduleStatus,
    pub created_ms: i64,
    pub applied_ms: Option<i64>,
    pub applied_version: Option<i64>,
    pub failure: Option<String>,
}

/// The instant `at` names: a local date-time (`2026-12-01T09:00[:00]`) in `time_zone` (an IANA
/// name such as `Asia/Dhaka`), or an RFC 3339 time with its own offset (the zone is then only
/// recorded). Returns the instant in Unix ms and the zone name to record.
pub fn due_instant(at: &str, time_zone: &str) -> Result<(i64, String), FieldViolation> {
    let zone = match time_zone {
        "" => None,
        name => Some(name.parse::<Tz>().map_err(|_| {
            FieldViolation::new(
                "time_zone",
                format!("\"{name}\" is not an IANA time zone such as Asia/Dhaka"),
            )
        })?),
    };
    if let Ok(instant) = DateTime::parse_from_rfc3339(at) {
        let zone = zone.map_or_else(|| "UTC".to_owned(), |zone| zone.name().to_owned());
        return Ok((instant.timestamp_millis(), zone));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(at, format).ok())
    .ok_or_else(|| {
        FieldViolation::new(
            "at",
            format!("\"{at}\" is neither YYYY-MM-DDTHH:MM[:SS] nor an RFC 3339 time"),
        )
    })?;
    let zone = zone.ok_or_else(|| FieldViolation::new("time_zone", "required for a local time"))?;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => Ok((instant.timestamp_millis(), zone.name().to_owned())),
        // A wall-clock time that happens twice (clocks turned back) means its first occurrence.
        LocalResult::Ambiguous(first, _) => Ok((first.timestamp_millis(), zone.name().to_owned())),
        LocalResult::None => Err(FieldViolation::new(
            "at",
            format!(
                "{at} does not exist in {} (clocks skip it for daylight saving)",
                zone.name()
            ),
        )),
    }
}

/// Applies due changes every `interval` until shutdown.
pub async fn apply_due_every<R: FlagRepository>(manager: Arc<Manager<R>>, interval: Duration, shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = manager.apply_due().await {
            tracing::warn!(%error, "applying scheduled flag changes failed; retrying on the next tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_resolve_in_their_zone() {
        // Dhaka is UTC+6 all year.
        let (due, zone) = due_instant("2026-12-01T09:00", "Asia/Dhaka").unwrap_or_default();
        assert_eq!(zone, "Asia/Dhaka");
        assert_eq!(
            due,
            DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z")
                .map(|t| t.timestamp_millis())
                .unwrap_or(1)
        );
        let (due, _) = due_instant("2026-12-01T03:00:00Z", "").unwrap_or_default();
        assert_eq!(
            due,
            DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z")
                .map(|t| t.timestamp_millis())
                .unwrap_or(1)
        );
    }

    #[test]
    fn daylight_saving_gaps_and_overlaps() {
        // 2026-03-29 02:30 does not exist in Berlin; 2026-10-25 02:30 happens twice.
        assert!(due_instant("2026-03-29T02:30", "Europe/Berlin").is_err());
        let (due, _) = due_instant("2026-10-25T02:30", "Europe/Berlin").unwrap_or_default();
        assert_eq!(
            due,
            DateTime::parse_from_rfc3339("2026-10-25T00:30:00Z")
                .map(|t| t.timestamp_millis())
                .unwrap_or(1)
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        assert_eq!(
            due_instant("2026-12-01T09:00", "Mars/Olympus").err().map(|v| v.field),
            Some("time_zone".into())
        );
        assert_eq!(
            due_instant("tomorrow", "Asia/Dhaka").err().map(|v| v.field),
            Some("at".into())
        );
        assert_eq!(
            due_instant("2026-12-01T09:00", "").err().map(|v| v.field),
            Some("time_zone".into())
        );
    }
}
