use chrono::{TimeZone, Utc};

use super::*;

const HOUR: i64 = 3_600_000;

fn at(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
}

fn window(zone: &str, schedule: Schedule) -> FreezeWindow {
    FreezeWindow {
        id: "w".into(),
        title: "Friday lunch".into(),
        environments: vec![],
        zone: zone.into(),
        schedule,
        during: DuringFreeze::Hold,
    }
}

fn friday_lunch() -> FreezeWindow {
    window(
        "Asia/Dhaka",
        Schedule::Recurring {
            start: "2026-01-02T12:30:00".into(),
            rrule: "FREQ=WEEKLY;BYDAY=FR".into(),
            duration_ms: 2 * HOUR,
        },
    )
}

#[test]
fn every_friday_lunch_in_dhaka_is_frozen_and_nothing_else() {
    let lunch = friday_lunch();
    let open = lunch.open_at(at("2026-12-04T12:45:00+06:00")).unwrap().unwrap();
    assert_eq!(open.start_ms, at("2026-12-04T12:30:00+06:00"));
    assert_eq!(open.end_ms, at("2026-12-04T14:30:00+06:00"));
    assert!(lunch.open_at(at("2026-12-04T12:29:59+06:00")).unwrap().is_none());
    assert!(
        lunch.open_at(at("2026-12-04T14:30:00+06:00")).unwrap().is_none(),
        "the end is open"
    );
    assert!(
        lunch.open_at(at("2026-12-03T13:00:00+06:00")).unwrap().is_none(),
        "a Thursday"
    );
    let next = lunch.next_opening(at("2026-12-04T15:00:00+06:00")).unwrap().unwrap();
    assert_eq!(next.start_ms, at("2026-12-11T12:30:00+06:00"));
    let described = lunch.describe(open);
    assert!(described.contains("until 2026-12-04 14:30 Asia/Dhaka"), "{described}");
}

#[test]
fn nightly_cron_windows_cross_the_day_boundary_in_the_zone() {
    let nightly = window(
        "Asia/Dhaka",
        Schedule::Cron {
            expression: "0 0 * * *".into(),
            duration_ms: 6 * HOUR,
        },
    );
    // 01:00 in Dhaka is 19:00 UTC the day before.
    let open = nightly.open_at(at("2026-12-07T19:00:00Z")).unwrap().unwrap();
    assert_eq!(open.start_ms, at("2026-12-08T00:00:00+06:00"));
    assert!(nightly.open_at(at("2026-12-08T06:00:00+06:00")).unwrap().is_none());
    assert!(nightly.open_at(at("2026-12-07T23:59:00+06:00")).unwrap().is_none());
    nightly.validate(at("2026-12-07T00:00:00Z")).unwrap();
}

#[test]
fn a_one_off_holiday_window_opens_once() {
    let eid = window(
        "Asia/Dhaka",
        Schedule::Once {
            start_ms: at("2027-03-09T00:00:00+06:00"),
            end_ms: at("2027-03-12T00:00:00+06:00"),
        },
    );
    eid.validate(at("2026-12-07T00:00:00Z")).unwrap();
    assert!(eid.open_at(at("2027-03-10T10:00:00+06:00")).unwrap().is_some());
    assert!(eid.open_at(at("2027-03-12T00:00:00+06:00")).unwrap().is_none());
    assert!(
        eid.validate(at("2027-04-01T00:00:00Z")).is_err(),
        "a window in the past never opens"
    );
}

#[test]
fn local_times_hold_across_daylight_saving() {
    let berlin = window(
        "Europe/Berlin",
        Schedule::Recurring {
            start: "2026-03-20T12:30".into(),
            rrule: "FREQ=DAILY".into(),
            duration_ms: HOUR,
        },
    );
    // Before the change Berlin is UTC+1, after it UTC+2: 12:30 local both times.
    assert!(berlin.open_at(at("2026-03-27T11:45:00Z")).unwrap().is_some());
    assert!(berlin.open_at(at("2026-03-30T10:45:00Z")).unwrap().is_some());
    assert!(berlin.open_at(at("2026-03-30T11:45:00Z")).unwrap().is_none());
}

#[test]
fn bad_windows_are_refused_with_the_field_named() {
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap().timestamp_millis();
    let refused = |window: FreezeWindow, field: &str| {
        let error = window.validate(now).unwrap_err().to_string();
        assert!(error.contains(field), "{field}: {error}");
    };
    refused(window("Mars/Olympus", friday_lunch().schedule), "time_zone");
    let cron = |expression: &str, duration_ms| Schedule::Cron {
        expression: expression.into(),
        duration_ms,
    };
    refused(window("UTC", cron("0 0 30 2 *", HOUR)), "never opens");
    refused(window("UTC", cron("every day please", HOUR)), "schedule.cron");
    refused(window("UTC", cron("0 0 * * *", 0)), "schedule.duration");
    refused(window("UTC", cron("0 0 * * *", 40 * 24 * HOUR)), "schedule.duration");
    let rrule = |start: &str, rule: &str| Schedule::Recurring {
        start: start.into(),
        rrule: rule.into(),
        duration_ms: HOUR,
    };
    refused(
        window("UTC", rrule("2026-01-01T00:00", "FREQ=SOMETIMES")),
        "schedule.rrule",
    );
    refused(window("UTC", rrule("yesterday", "FREQ=DAILY")), "schedule.start");
    refused(
        window("UTC", rrule("2020-01-01T00:00", "FREQ=DAILY;UNTIL=20200201T000000Z")),
        "never opens",
    );
    refused(
        window("UTC", rrule("2026-01-01T00:00", "FREQ=DAILY\nDTSTART:20200101T000000Z")),
        "schedule.rrule",
    );
    refused(
        window(
            "UTC",
            Schedule::Once {
                start_ms: now + HOUR,
                end_ms: now,
            },
        ),
        "schedule.end_time",
    );
}
