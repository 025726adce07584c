use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};

use super::{parse, TimeError, ACCEPTED_FORMS};

/// Wednesday 2 December 2026, 15:30:00 at UTC+01:00 (14:30:00Z).
fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-12-02T15:30:00+01:00").unwrap()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn at(text: &str) -> DateTime<Utc> {
    parse(text, &now()).unwrap_or_else(|err| panic!("{text:?}: {err}"))
}

#[test]
fn now_today_and_yesterday_are_local_day_starts() {
    assert_eq!(at("now"), utc("2026-12-02T14:30:00Z"));
    assert_eq!(at("today"), utc("2026-12-01T23:00:00Z"));
    assert_eq!(at("yesterday"), utc("2026-11-30T23:00:00Z"));
    assert_eq!(at("  Yesterday\t"), utc("2026-11-30T23:00:00Z"));
    assert_eq!(at("TODAY"), utc("2026-12-01T23:00:00Z"));
}

#[test]
fn last_weekday_is_the_most_recent_such_day_before_today() {
    // Today is a Wednesday.
    for (text, day) in [
        ("last monday", "2026-11-29T23:00:00Z"),
        ("last mon", "2026-11-29T23:00:00Z"),
        ("last tuesday", "2026-11-30T23:00:00Z"),
        ("last wednesday", "2026-11-24T23:00:00Z"),
        ("last thursday", "2026-11-25T23:00:00Z"),
        ("last thu", "2026-11-25T23:00:00Z"),
        ("last friday", "2026-11-26T23:00:00Z"),
        ("last saturday", "2026-11-27T23:00:00Z"),
        ("last sunday", "2026-11-28T23:00:00Z"),
        ("Last  Sun", "2026-11-28T23:00:00Z"),
    ] {
        assert_eq!(at(text), utc(day), "{text}");
    }
    // On a Monday, last Monday is a week ago.
    let monday = DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z").unwrap();
    assert_eq!(
        parse("last monday", &monday).unwrap(),
        utc("2026-11-23T00:00:00Z")
    );
}

#[test]
fn spans_count_back_from_now() {
    let now = utc("2026-12-02T14:30:00Z");
    for (text, seconds) in [
        ("30s", 30),
        ("45 sec", 45),
        ("1 second ago", 1),
        ("30m", 30 * 60),
        ("30 min ago", 30 * 60),
        ("5 minutes", 5 * 60),
        ("1h ago", 3600),
        ("1h", 3600),
        ("2 hrs ago", 7200),
        ("3 hours", 3 * 3600),
        ("2d", 2 * 86_400),
        ("1 day ago", 86_400),
        ("10 days", 10 * 86_400),
        ("1w", 7 * 86_400),
        ("2 weeks ago", 14 * 86_400),
        ("0s", 0),
        ("90M", 90 * 60),
        ("007h", 7 * 3600),
    ] {
        assert_eq!(at(text), now - chrono::Duration::seconds(seconds), "{text}");
    }
}

#[test]
fn timestamps_with_an_offset_are_taken_as_given() {
    for (text, expected) in [
        ("2026-11-30T14:00:00Z", "2026-11-30T14:00:00Z"),
        ("2026-11-30t14:00:00z", "2026-11-30T14:00:00Z"),
        ("2026-11-30 14:00:00Z", "2026-11-30T14:00:00Z"),
        ("2026-11-30T14:00Z", "2026-11-30T14:00:00Z"),
        ("2026-11-30T14:00:00.250Z", "2026-11-30T14:00:00.250Z"),
        ("2026-11-30T14:00:00+02:00", "2026-11-30T12:00:00Z"),
        ("2026-11-30T14:00:00+0200", "2026-11-30T12:00:00Z"),
        ("2026-11-30T14:00+02", "2026-11-30T12:00:00Z"),
        ("2026-11-30T14:00:00-05:30", "2026-11-30T19:30:00Z"),
        ("2026-11-30T00:30:00+01:00", "2026-11-29T23:30:00Z"),
        (
            "2026-11-30T14:00:00.123456789-00:00",
            "2026-11-30T14:00:00.123456789Z",
        ),
    ] {
        assert_eq!(at(text), utc(expected), "{text}");
    }
}

#[test]
fn dates_and_times_without_an_offset_are_local() {
    assert_eq!(at("2026-11-30 14:00"), utc("2026-11-30T13:00:00Z"));
    assert_eq!(at("2026-11-30T14:00"), utc("2026-11-30T13:00:00Z"));
    assert_eq!(at("2026-11-30 14:00:30"), utc("2026-11-30T13:00:30Z"));
    assert_eq!(at("2026-11-30T14:00:30.5"), utc("2026-11-30T13:00:30.5Z"));
    assert_eq!(at("2026-11-30"), utc("2026-11-29T23:00:00Z"));
    assert_eq!(at("2024-02-29"), utc("2024-02-28T23:00:00Z"));
    // In UTC, local is UTC.
    let now = Utc::now();
    assert_eq!(
        parse("2026-11-30 14:00", &now).unwrap(),
        utc("2026-11-30T14:00:00Z")
    );
}

#[test]
fn what_is_no_time_is_refused_with_the_accepted_forms() {
    for bad in [
        "soon",
        "tomorrow",
        "last",
        "last funday",
        "next monday",
        "monday",
        "ago",
        "h",
        "5",
        "1.5h",
        "-1h",
        "+1h",
        "1h from now",
        "1 h ago ago",
        "30x",
        "30 mo",
        "1y",
        "m30",
        "2026-13-01",
        "2026-02-30",
        "2023-02-29",
        "2026-11-30 25:00",
        "2026-11-30 14:60",
        "2026-11-30 14",
        "2026-11-30T",
        "2026-11-30Z",
        "2026-11-30+02:00",
        "2026/11/30",
        "30-11-2026",
        "2026-11-30T14:00:00+24:00",
        "2026-11-30T14:00:00+02:60",
        "2026-11-30T14:00:00+2",
        "2026-11-30T14:00:00+020",
        "2026-11-30T14:00:00+02:0",
        "2026-11-30T14:00:00+0a:00",
        "2026-11-30T14:00:00 UTC",
        "2026-11-30T14:00:00ZZ",
        "١h",
        "２h",
        "1h🙂",
        "ä",
    ] {
        let err = parse(bad, &now()).expect_err(bad);
        assert!(matches!(err, TimeError::Unrecognized(_)), "{bad}: {err:?}");
        let message = err.to_string();
        assert!(message.contains(ACCEPTED_FORMS), "{bad}: {message}");
    }
}

#[test]
fn empty_long_and_control_character_input_is_refused_and_shown_safely() {
    assert_eq!(parse("", &now()), Err(TimeError::Empty));
    assert_eq!(parse(" \t\n", &now()), Err(TimeError::Empty));
    assert!(TimeError::Empty.to_string().contains(ACCEPTED_FORMS));

    let long = "1".repeat(10_000) + "h";
    let message = parse(&long, &now()).unwrap_err().to_string();
    assert!(message.len() < 500, "{} bytes", message.len());
    assert!(message.contains("..."), "{message}");

    for bad in [
        "1h\u{0}",
        "yester\u{7}day",
        "2026-11-30\r\n14:00",
        "last\u{1b}[2Jmonday",
    ] {
        let message = parse(bad, &now()).unwrap_err().to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
}

#[test]
fn spans_too_large_to_represent_are_out_of_range() {
    for big in [
        "99999999999999999999d",
        "9223372036854775807s",
        "999999999999w",
        "99999999999 weeks ago",
    ] {
        assert!(
            matches!(parse(big, &now()), Err(TimeError::OutOfRange(_))),
            "{big}"
        );
    }
}

/// A zone with one change of offset at `at` (UTC), like a daylight-saving
/// change.
#[derive(Clone, Copy, Debug)]
struct Shift {
    at: NaiveDateTime,
    before: FixedOffset,
    after: FixedOffset,
}

impl Shift {
    fn offset_at_utc(&self, utc: &NaiveDateTime) -> FixedOffset {
        if *utc < self.at {
            self.before
        } else {
            self.after
        }
    }
}

/// The zone's offset at one instant (what `DateTime<Shift>` carries).
#[derive(Clone, Copy, Debug)]
struct ShiftOffset(FixedOffset, Shift);

impl Offset for ShiftOffset {
    fn fix(&self) -> FixedOffset {
        self.0
    }
}

impl std::fmt::Display for ShiftOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl TimeZone for Shift {
    type Offset = ShiftOffset;

    fn from_offset(offset: &ShiftOffset) -> Self {
        offset.1
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<ShiftOffset> {
        self.offset_from_local_datetime(&local.and_hms_opt(0, 0, 0).unwrap())
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<ShiftOffset> {
        let fits = |offset: FixedOffset| {
            let utc = *local - offset;
            (self.offset_at_utc(&utc) == offset).then_some(ShiftOffset(offset, *self))
        };
        match (fits(self.before), fits(self.after)) {
            (Some(a), Some(b)) if a.0 != b.0 => LocalResult::Ambiguous(a, b),
            (Some(one), _) | (None, Some(one)) => LocalResult::Single(one),
            (None, None) => LocalResult::None,
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ShiftOffset {
        self.offset_from_utc_datetime(&utc.and_hms_opt(0, 0, 0).unwrap())
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ShiftOffset {
        ShiftOffset(self.offset_at_utc(utc), *self)
    }
}

fn hours(h: i32) -> FixedOffset {
    FixedOffset::east_opt(h * 3600).unwrap()
}

fn naive(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
}

/// Central Europe, 2026: summer time from 29 March 01:00Z to 25 October 01:00Z.
fn berlin_spring() -> Shift {
    Shift {
        at: naive("2026-03-29 01:00"),
        before: hours(1),
        after: hours(2),
    }
}

fn berlin_autumn() -> Shift {
    Shift {
        at: naive("2026-10-25 01:00"),
        before: hours(2),
        after: hours(1),
    }
}

#[test]
fn a_local_time_the_clock_skips_is_refused_and_one_it_repeats_is_the_earlier() {
    let spring = berlin_spring().from_utc_datetime(&naive("2026-03-29 12:00"));
    let err = parse("2026-03-29 02:30", &spring).unwrap_err();
    assert!(matches!(err, TimeError::SkippedLocalTime(_)), "{err:?}");
    assert!(err.to_string().contains("offset"), "{err}");
    assert_eq!(
        parse("2026-03-29 03:30", &spring).unwrap(),
        utc("2026-03-29T01:30:00Z")
    );
    assert_eq!(
        parse("2026-03-29 01:30", &spring).unwrap(),
        utc("2026-03-29T00:30:00Z")
    );
    // An explicit offset is never refused.
    assert_eq!(
        parse("2026-03-29T02:30:00+01:00", &spring).unwrap(),
        utc("2026-03-29T01:30:00Z")
    );

    let autumn = berlin_autumn().from_utc_datetime(&naive("2026-10-25 12:00"));
    assert_eq!(
        parse("2026-10-25 02:30", &autumn).unwrap(),
        utc("2026-10-25T00:30:00Z")
    );
}

#[test]
fn day_starts_follow_the_local_offset_of_that_day() {
    // Monday after the spring change: yesterday (Sunday) began in winter time.
    let monday = berlin_spring().from_utc_datetime(&naive("2026-03-30 10:00"));
    assert_eq!(
        parse("today", &monday).unwrap(),
        utc("2026-03-29T22:00:00Z")
    );
    assert_eq!(
        parse("yesterday", &monday).unwrap(),
        utc("2026-03-28T23:00:00Z")
    );
    assert_eq!(
        parse("last saturday", &monday).unwrap(),
        utc("2026-03-27T23:00:00Z")
    );
    // A day is 24 hours, not a calendar day.
    assert_eq!(parse("1d", &monday).unwrap(), utc("2026-03-29T10:00:00Z"));
}

#[test]
fn a_day_whose_midnight_is_skipped_starts_at_its_first_minute() {
    // Clocks go from 00:00 straight to 01:00 (as in Santiago or Havana).
    let zone = Shift {
        at: naive("2026-09-06 04:00"),
        before: hours(-4),
        after: hours(-3),
    };
    let noon = zone.from_utc_datetime(&naive("2026-09-06 15:00"));
    assert_eq!(parse("today", &noon).unwrap(), utc("2026-09-06T04:00:00Z"));
    assert_eq!(
        parse("2026-09-06", &noon).unwrap(),
        utc("2026-09-06T04:00:00Z")
    );
    let err = parse("2026-09-06 00:30", &noon).unwrap_err();
    assert_eq!(err, TimeError::SkippedLocalTime("2026-09-06 00:30".into()));
}
