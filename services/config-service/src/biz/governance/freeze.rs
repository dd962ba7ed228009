//! Freeze windows: times during which a project's (or some environments') configuration and
//! flags do not change — every Friday 12:30–14:30 in Asia/Dhaka, the Eid holidays, nightly
//! 00:00–06:00. A window is one-off, or recurring by an RFC 5545 RRULE (from a local start
//! time in the window's zone) or a cron expression (each firing opens the window), always in
//! an IANA zone so that "12:30" means 12:30 there, across daylight-saving changes.
//!
//! This module is pure: whether a window is open at an instant, and when it next opens.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::biz::error::{ConfigError, ConfigResult};

/// The longest a window may last (a holiday season), in milliseconds.
pub const MAX_WINDOW_MS: i64 = 31 * 24 * 3_600_000;

/// When a window is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Schedule {
    /// From `start_ms` until `end_ms`, once.
    Once { start_ms: i64, end_ms: i64 },
    /// An RRULE (`FREQ=WEEKLY;BYDAY=FR`) from `start` (local time in the zone,
    /// `2026-01-02T12:30:00`), each occurrence open for `duration_ms`.
    Recurring {
        start: String,
        rrule: String,
        duration_ms: i64,
    },
    /// A cron expression (five fields, minute first; or six with seconds first), each firing
    /// open for `duration_ms`.
    Cron { expression: String, duration_ms: i64 },
}

/// What happens to deployments while a window is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuringFreeze {
    /// Steps wait for the window to close, then go on by themselves.
    Hold,
    /// Deployments are paused; someone resumes them.
    Pause,
}

/// A window as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeWindow {
    /// `{window}` of `projects/{project}/freezeWindows/{window}`.
    pub id: String,
    pub title: String,
    /// Environment ids it covers; every environment of the project when empty.
    pub environments: Vec<String>,
    /// IANA zone name.
    pub zone: String,
    pub schedule: Schedule,
    pub during: DuringFreeze,
}

/// An open occurrence of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    pub start_ms: i64,
    pub end_ms: i64,
}

fn zone(name: &str) -> ConfigResult<Tz> {
    Tz::from_str(name).map_err(|_| ConfigError::invalid("time_zone", format!("`{name}` is not an IANA zone")))
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Cron expressions of five fields (crontab's) get a seconds field of 0.
fn cron_schedule(expression: &str) -> ConfigResult<cron::Schedule> {
    let fields = expression.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expression}")
    } else {
        expression.to_owned()
    };
    cron::Schedule::from_str(&full)
        .map_err(|error| ConfigError::invalid("schedule.cron", format!("not a cron expression: {error}")))
}

fn rrule_set(start: &str, rrule: &str, tz: Tz) -> ConfigResult<rrule::RRuleSet> {
    let local = NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M"))
        .map_err(|_| ConfigError::invalid("schedule.start", "a local time such as 2026-01-02T12:30:00"))?;
    if rrule.contains('\n') || rrule.to_ascii_uppercase().contains("DTSTART") {
        return Err(ConfigError::invalid(
            "schedule.rrule",
            "the RRULE value alone, such as FREQ=WEEKLY;BYDAY=FR",
        ));
    }
    let text = format!(
        "DTSTART;TZID={}:{}\nRRULE:{}",
        tz.name(),
        local.format("%Y%m%dT%H%M%S"),
        rrule.trim_start_matches("RRULE:")
    );
    rrule::RRuleSet::from_str(&text)
        .map_err(|error| ConfigError::invalid("schedule.rrule", format!("not a valid RRULE: {error}")))
}

impl FreezeWindow {
    /// Checks the window as given by a user: a known zone, a schedule that parses, lasts
    /// between a minute and a month, and opens at least once from `now_ms` on.
    pub fn validate(&self, now_ms: i64) -> ConfigResult<()> {
        if self.title.chars().count() > 200 {
            return Err(ConfigError::invalid("title", "at most 200 characters"));
        }
        let tz = zone(&self.zone)?;
        let duration = match &self.schedule {
            Schedule::Once { start_ms, end_ms } => {
                if end_ms <= start_ms {
                    return Err(ConfigError::invalid("schedule.end_time", "after the start"));
                }
                end_ms - start_ms
            }
            Schedule::Recurring {
                start,
                rrule,
                duration_ms,
            } => {
                rrule_set(start, rrule, tz)?;
                *duration_ms
            }
            Schedule::Cron {
                expression,
                duration_ms,
            } => {
                cron_schedule(expression)?;
                *duration_ms
            }
        };
        if !(60_000..=MAX_WINDOW_MS).contains(&duration) {
            return Err(ConfigError::invalid(
                "schedule.duration",
                "between 1 minute and 31 days",
            ));
        }
        if self.next_opening(now_ms)?.is_none() && self.open_at(now_ms)?.is_none() {
            return Err(ConfigError::invalid(
                "schedule",
                "never opens from now on (a past date, or a rule that never fires)",
            ));
        }
        Ok(())
    }

    /// The occurrence open at `now_ms`, if any.
    pub fn open_at(&self, now_ms: i64) -> ConfigResult<Option<Opening>> {
        let tz = zone(&self.zone)?;
        let opening = match &self.schedule {
            Schedule::Once { start_ms, end_ms } => (*start_ms <= now_ms && now_ms < *end_ms).then_some(Opening {
                start_ms: *start_ms,
                end_ms: *end_ms,
            }),
            Schedule::Recurring {
                start,
                rrule,
                duration_ms,
            } => {
                let from = utc(now_ms - duration_ms).with_timezone(&rrule::Tz::Tz(tz));
                let until = utc(now_ms + 1).with_timezone(&rrule::Tz::Tz(tz));
                let starts = rrule_set(start, rrule, tz)?.after(from).before(until).all(64).dates;
                starts
                    .into_iter()
                    .map(|start| start.timestamp_millis())
                    .filter(|start| *start <= now_ms && now_ms < start + duration_ms)
                    .max()
                    .map(|start_ms| Opening {
                        start_ms,
                        end_ms: start_ms + duration_ms,
                    })
            }
            Schedule::Cron {
                expression,
                duration_ms,
            } => {
                let from = utc(now_ms - duration_ms - 1000).with_timezone(&tz);
                cron_schedule(expression)?
                    .after(&from)
                    .map(|start| start.timestamp_millis())
                    .take_while(|start| *start <= now_ms)
                    .filter(|start| now_ms < start + duration_ms)
                    .last()
                    .map(|start_ms| Opening {
                        start_ms,
                        end_ms: start_ms + duration_ms,
                    })
            }
        };
        Ok(opening)
    }

    /// The next occurrence that opens after `now_ms`, if it ever opens again.
    pub fn next_opening(&self, now_ms: i64) -> ConfigResult<Option<Opening>> {
        let tz = zone(&self.zone)?;
        let opening = match &self.schedule {
            Schedule::Once { start_ms, end_ms } => (*start_ms > now_ms).then_some(Opening {
                start_ms: *start_ms,
                end_ms: *end_ms,
            }),
            Schedule::Recurring {
                start,
                rrule,
                duration_ms,
            } => {
                let after = utc(now_ms).with_timezone(&rrule::Tz::Tz(tz));
                let next = rrule_set(start, rrule, tz)?
                    .after(after)
                    .all(1)
                    .dates
                    .into_iter()
                    .next();
                next.map(|start| Opening {
                    start_ms: start.timestamp_millis(),
                    end_ms: start.timestamp_millis() + duration_ms,
                })
            }
            Schedule::Cron {
                expression,
                duration_ms,
            } => {
                let after = utc(now_ms).with_timezone(&tz);
                let next = cron_schedule(expression)?.after(&after).next();
                next.map(|start| Opening {
                    start_ms: start.timestamp_millis(),
                    end_ms: start.timestamp_millis() + duration_ms,
                })
            }
        };
        Ok(opening)
    }

    /// Whether the window covers `environment`.
    pub fn covers(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|covered| covered == environment)
    }

    /// How the window reads in an error: `friday-lunch ("Friday lunch") until 14:30 Asia/Dhaka`.
    pub fn describe(&self, opening: Opening) -> String {
        let end = zone(&self.zone)
            .map(|tz| {
                utc(opening.end_ms)
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        let title = if self.title.is_empty() {
            String::new()
        } else {
            format!(" (\"{}\")", self.title)
        };
        format!("freeze window {}{title}, until {end} {}", self.id, self.zone)
    }
}

#[cfg(test)]
#[path = "freeze_tests.rs"]
mod tests;
