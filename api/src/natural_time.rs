//! Instants as people type them: RFC 3339 / ISO 8601 timestamps, dates and
//! times in the local time zone, and relative forms (`1h ago`, `30m`,
//! `yesterday`, `last monday`), resolved against a given "now".
//!
//! Accepted forms (case-insensitive, surrounding blanks ignored):
//! - `2026-11-30T14:00:00Z`, `2026-11-30T14:00:00.5+02:00`,
//!   `2026-11-30 14:00+0200`: a timestamp with an offset (`Z`, `+02:00`,
//!   `+0200` or `+02`), with `T` or a space between date and time.
//! - `2026-11-30T14:00:00`, `2026-11-30 14:00`: local time.
//! - `2026-11-30`: the start of that day, local time.
//! - `now`, `today` and `yesterday` (the start of the day, local time).
//! - `last monday` ... `last sunday` (also `last mon`): the start of the
//!   most recent such day before today.
//! - `<n><unit>` or `<n> <unit>`, optionally followed by `ago`: that long
//!   before now. Units: `s`/`sec`/`second`, `m`/`min`/`minute`,
//!   `h`/`hr`/`hour`, `d`/`day`, `w`/`week` (plurals too). `m` is minutes;
//!   a day is 24 hours and a week 7 days.
//!
//! A local time that the clock skips (a daylight-saving gap) is refused; one
//! it shows twice resolves to the earlier instant. A day whose midnight is
//! skipped starts at its first existing minute.

use chrono::{
    DateTime, Datelike as _, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime,
    NaiveTime, TimeZone, Utc, Weekday,
};

/// The longest text looked at: every accepted form is far shorter.
const MAX_LEN: usize = 64;

/// What the accepted forms are, for error messages and `--help`.
pub const ACCEPTED_FORMS: &str = "an RFC 3339 timestamp (2026-11-30T14:00:00Z), \
a local date and time (2026-11-30 14:00, 2026-11-30), now, today, yesterday, \
last monday (... last sunday), or a span before now such as 30s, 15m, 1h ago, 2d, 1w";

/// Why a text is not an instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Nothing was given.
    #[error("no time given: expected {ACCEPTED_FORMS}")]
    Empty,
    /// The text is none of the accepted forms.
    #[error("'{0}' is not a time: expected {ACCEPTED_FORMS}")]
    Unrecognized(String),
    /// A local date and time that the local clock skips (a daylight-saving gap).
    #[error("'{0}' does not exist in the local time zone (the clocks skip it); give an offset such as 2026-03-29T02:30:00+01:00")]
    SkippedLocalTime(String),
    /// A span or date beyond what can be represented.
    #[error("'{0}' is out of range")]
    OutOfRange(String),
}

/// Resolves `text` to an instant, relative forms and local times against
/// `now` and its time zone (pass `Local::now()` for the machine's zone).
///
/// # Errors
/// [`TimeError`]: empty, none of the forms in the module documentation,
/// a skipped local time, or out of range.
pub fn parse<Tz: TimeZone>(text: &str, now: &DateTime<Tz>) -> Result<DateTime<Utc>, TimeError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(TimeError::Empty);
    }
    let shown = || shown(trimmed);
    if trimmed.chars().count() > MAX_LEN || trimmed.chars().any(char::is_control) {
        return Err(TimeError::Unrecognized(shown()));
    }
    let lower = trimmed.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let zone = now.timezone();
    let today = now.date_naive();
    match words.as_slice() {
        ["now"] => return Ok(now.with_timezone(&Utc)),
        ["today"] => return start_of_day(&zone, today, &shown),
        ["yesterday"] => {
            let day = today
                .pred_opt()
                .ok_or_else(|| TimeError::OutOfRange(shown()))?;
            return start_of_day(&zone, day, &shown);
        }
        ["last", day] => {
            let weekday = weekday(day).ok_or_else(|| TimeError::Unrecognized(shown()))?;
            // 1..=7 days back: today itself is never "last <today>".
            let back =
                (today.weekday().num_days_from_monday() + 7 - weekday.num_days_from_monday() - 1)
                    % 7
                    + 1;
            let day = today
                .checked_sub_days(chrono::Days::new(u64::from(back)))
                .ok_or_else(|| TimeError::OutOfRange(shown()))?;
            return start_of_day(&zone, day, &shown);
        }
        _ => {}
    }
    if let Some(span) = span(&words) {
        let span = span.ok_or_else(|| TimeError::OutOfRange(shown()))?;
        return now
            .with_timezone(&Utc)
            .checked_sub_signed(span)
            .ok_or_else(|| TimeError::OutOfRange(shown()));
    }
    if let Some(at) = timestamp(trimmed) {
        return at;
    }
    if let Ok(date) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        return start_of_day(&zone, date, &shown);
    }
    let naive = local(trimmed).ok_or_else(|| TimeError::Unrecognized(shown()))?;
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Ok(at.with_timezone(&Utc)),
        LocalResult::None => Err(TimeError::SkippedLocalTime(shown())),
    }
}

/// The text as an error message shows it: bounded, control characters escaped.
fn shown(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(MAX_LEN)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > MAX_LEN {
        shown.push_str("...");
    }
    shown
}

/// The first instant of `day` in `zone`.
fn start_of_day<Tz: TimeZone>(
    zone: &Tz,
    day: NaiveDate,
    shown: &impl Fn() -> String,
) -> Result<DateTime<Utc>, TimeError> {
    let midnight = day.and_time(NaiveTime::MIN);
    // Daylight-saving gaps are at most a few hours; step over one a minute
    // at a time.
    for minute in 0..(4 * 60) {
        let local = midnight + Duration::minutes(minute);
        match zone.from_local_datetime(&local) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                return Ok(at.with_timezone(&Utc))
            }
            LocalResult::None => {}
        }
    }
    Err(TimeError::SkippedLocalTime(shown()))
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

/// `30m`, `1h ago`, `2 days ago`: `None` when the words are no span,
/// `Some(None)` when they are one too large to represent.
fn span(words: &[&str]) -> Option<Option<Duration>> {
    let words = match words {
        [rest @ .., "ago"] => rest,
        _ => words,
    };
    let (number, unit) = match words {
        [one] => {
            let digits = one.find(|c: char| !c.is_ascii_digit())?;
            one.split_at(digits)
        }
        [number, unit] => (*number, *unit),
        _ => return None,
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds_per_unit: i64 = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    Some(
        number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds_per_unit))
            .and_then(Duration::try_seconds),
    )
}

/// Time layouts, after the date and its separator.
const TIME_LAYOUTS: [&str; 2] = ["%H:%M:%S%.f", "%H:%M"];

/// Where the time starts: after the first `T` or space.
fn time_separator(text: &str) -> Option<usize> {
    text.find(['T', 't', ' '])
}

/// `2026-11-30T14:00`, `2026-11-30 14:00:05.25`.
fn local(text: &str) -> Option<NaiveDateTime> {
    let separator = time_separator(text)?;
    let (date, time) = (&text[..separator], &text[separator + 1..]);
    if !time.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    TIME_LAYOUTS
        .iter()
        .find_map(|layout| NaiveTime::parse_from_str(time, layout).ok())
        .map(|time| date.and_time(time))
}

/// A date and time followed by an offset: `Z`, `+02:00`, `+0200`, `+02`.
/// `None` when there is no offset; `Some(Err)` when the offset is there but
/// the rest is no date and time.
fn timestamp(text: &str) -> Option<Result<DateTime<Utc>, TimeError>> {
    let (rest, offset) = split_offset(text)?;
    let result = local(rest)
        .and_then(|naive| offset.from_local_datetime(&naive).single())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| TimeError::Unrecognized(shown(text)));
    Some(result)
}

/// Splits the offset off the end of a date and time.
fn split_offset(text: &str) -> Option<(&str, FixedOffset)> {
    let separator = time_separator(text)?;
    if let Some(rest) = text.strip_suffix(['Z', 'z']) {
        return Some((rest, FixedOffset::east_opt(0)?));
    }
    let sign_at = text[separator..].rfind(['+', '-'])? + separator;
    let (rest, offset) = text.split_at(sign_at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let (hours, minutes) = match offset.as_bytes()[1..] {
        [h1, h2] => ([h1, h2], [b'0', b'0']),
        [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => ([h1, h2], [m1, m2]),
        _ => return None,
    };
    let number = |digits: [u8; 2]| -> Option<i32> {
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| i32::from(digits[0] - b'0') * 10 + i32::from(digits[1] - b'0'))
    };
    let (hours, minutes) = (number(hours)?, number(minutes)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).map(|offset| (rest, offset))
}

#[cfg(test)]
mod tests;
