//! Property filters: PostHog's operators on a person's or group's properties.
//!
//! The rules follow PostHog's server-side SDKs: comparisons of text ignore case; a property
//! the caller did not give makes the filter undecidable here (the server may know it); so do
//! `is_not_set`, a date or version that cannot be read, a pattern this regex engine cannot
//! compile, and an operator it does not know.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::definitions::{Operator, PropertyFilter};

/// Why a filter cannot be decided from what the process knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undecidable(pub(crate) &'static str);

/// Whether `properties` satisfy `filter`.
pub(crate) fn matches(
    filter: &PropertyFilter,
    properties: &Map<String, Value>,
    now: SystemTime,
) -> Result<bool, Undecidable> {
    if let Operator::Unknown = filter.operator {
        return Err(Undecidable("an operator this engine does not know"));
    }
    let Some(actual) = properties.get(&filter.key) else {
        return Err(Undecidable("a property the caller did not give"));
    };
    if let Operator::IsNotSet = filter.operator {
        return Err(Undecidable("is_not_set on a partial set of properties"));
    }
    let expected = &filter.value;
    if actual.is_null() && !matches!(filter.operator, Operator::IsNot) {
        return Ok(false);
    }
    let text = || python_str(actual).to_lowercase();
    let wanted = || python_str(expected).to_lowercase();
    Ok(match &filter.operator {
        Operator::Exact => exact(expected, actual),
        Operator::IsNot => !exact(expected, actual),
        Operator::IsSet => true,
        Operator::IContains => text().contains(&wanted()),
        Operator::NotIContains => !text().contains(&wanted()),
        Operator::StartsWith => text().starts_with(&wanted()),
        Operator::NotStartsWith => !text().starts_with(&wanted()),
        Operator::EndsWith => text().ends_with(&wanted()),
        Operator::NotEndsWith => !text().ends_with(&wanted()),
        Operator::Regex(pattern) | Operator::NotRegex(pattern) => {
            let pattern = pattern
                .as_ref()
                .ok_or(Undecidable("a pattern this regex engine cannot compile"))?;
            let found = pattern.is_match(&python_str(actual));
            found == matches!(filter.operator, Operator::Regex(_))
        }
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => {
            compare(&filter.operator, expected, actual)
        }
        Operator::DateBefore | Operator::DateAfter => {
            let bound = flag_date(expected, now)
                .ok_or(Undecidable("a date on the flag that cannot be read"))?;
            let Value::String(actual) = actual else {
                return Err(Undecidable("a date property that is not a string"));
            };
            let actual = parse_datetime(actual, now)
                .ok_or(Undecidable("a date property that cannot be read"))?;
            match filter.operator {
                Operator::DateBefore => actual < bound,
                _ => actual > bound,
            }
        }
        Operator::SemverEq
        | Operator::SemverNeq
        | Operator::SemverGt
        | Operator::SemverGte
        | Operator::SemverLt
        | Operator::SemverLte
        | Operator::SemverTilde
        | Operator::SemverCaret
        | Operator::SemverWildcard => semver_matches(&filter.operator, expected, actual)?,
        Operator::FlagEvaluatesTo => {
            return Err(Undecidable("a flag condition outside a flag filter"))
        }
        Operator::IsNotSet | Operator::Unknown => {
            return Err(Undecidable("an operator this engine does not know"))
        }
    })
}

/// A value as Python's `str()` writes it, which is what PostHog's comparisons of text see:
/// `True`/`False`, `None`, numbers as JSON writes them.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

/// `exact`: equal ignoring case, or equal to one of a list.
fn exact(expected: &Value, actual: &Value) -> bool {
    let actual = python_str(actual).to_lowercase();
    match expected {
        Value::Array(options) => options
            .iter()
            .any(|option| python_str(option).to_lowercase() == actual),
        single => python_str(single).to_lowercase() == actual,
    }
}

/// A number, or text that reads as one.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// `gt`, `gte`, `lt`, `lte`: numerically when both sides read as numbers, else as text.
fn compare(operator: &Operator, expected: &Value, actual: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (as_number(actual), as_number(expected)) {
        (Some(actual), Some(expected)) => actual.partial_cmp(&expected),
        _ => Some(python_str(actual).cmp(&python_str(expected))),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match operator {
        Operator::Gt => ordering == Ordering::Greater,
        Operator::Gte => ordering != Ordering::Less,
        Operator::Lt => ordering == Ordering::Less,
        _ => ordering != Ordering::Greater,
    }
}

// ---- dates --------------------------------------------------------------------------------

/// Seconds since the Unix epoch, UTC, with microseconds.
type Instant = f64;

fn unix_seconds(time: SystemTime) -> Instant {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// The date a flag filter names: relative (`-7d`, `3h`, `2w`, `6m`, `1y`, meaning that long
/// ago) or absolute.
fn flag_date(value: &Value, now: SystemTime) -> Option<Instant> {
    let text = python_str(value);
    if let Some(relative) = relative_date(&text, now) {
        return relative;
    }
    parse_datetime(&text, now)
}

/// `Some(result)` when `text` has the relative shape (`result` is `None` when it is out of
/// range); `None` when it does not.
fn relative_date(text: &str, now: SystemTime) -> Option<Option<Instant>> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let unit = body.chars().last()?;
    let digits = &body[..body.len() - unit.len_utf8()];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !unit.is_ascii_lowercase()
    {
        return None;
    }
    let Ok(number) = digits.parse::<u64>() else {
        return Some(None);
    };
    if number >= 10_000 {
        return Some(None);
    }
    let hours = |hours: u64| now.checked_sub(Duration::from_secs(hours * 3600));
    Some(match unit {
        'h' => hours(number).map(unix_seconds),
        'd' => hours(number * 24).map(unix_seconds),
        'w' => hours(number * 24 * 7).map(unix_seconds),
        'm' => months_before(unix_seconds(now), number as i64),
        'y' => months_before(unix_seconds(now), number as i64 * 12),
        _ => None,
    })
}

/// `months` calendar months before `instant`, the day clamped to the month's last.
fn months_before(instant: Instant, months: i64) -> Option<Instant> {
    let days = instant.div_euclid(86_400.0);
    let time_of_day = instant - days * 86_400.0;
    let (year, month, day) = civil_from_days(days as i64);
    let index = year * 12 + (month as i64 - 1) - months;
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
    if !(1..=9999).contains(&year) {
        return None;
    }
    let day = day.min(days_in_month(year, month));
    Some(days_from_civil(year, month, day) as f64 * 86_400.0 + time_of_day)
}

/// Reads the date and time shapes PostHog's SDKs accept: ISO 8601 dates and date-times
/// (`2024-05-01`, `2024-05-01T12:30:00Z`, `2024-05-01 12:30:00.5+02:00`, a trailing ` UTC`),
/// and a bare year (this day of that year). Without an offset, UTC.
pub(crate) fn parse_datetime(text: &str, now: SystemTime) -> Option<Instant> {
    let text = text.trim();
    if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
        let year: i64 = text.parse().ok()?;
        let (_, month, day) = civil_from_days(unix_seconds(now).div_euclid(86_400.0) as i64);
        let day = day.min(days_in_month(year, month));
        return Some(days_from_civil(year, month, day) as f64 * 86_400.0);
    }
    let (text, mut offset_seconds) = if let Some(rest) = text.strip_suffix('Z') {
        (rest, Some(0))
    } else if let Some(rest) = text
        .strip_suffix(" UTC")
        .or_else(|| text.strip_suffix(" utc"))
    {
        (rest, Some(0))
    } else {
        (text, None)
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(at) => (&text[..at], Some(text[at + 1..].trim_start())),
        None => (text, None),
    };
    let (year, month, day) = parse_date(date)?;
    let mut seconds = days_from_civil(year, month, day) as f64 * 86_400.0;
    if let Some(time) = time {
        let (clock, offset) = split_offset(time)?;
        if let Some(offset) = offset {
            if offset_seconds.is_some() {
                return None;
            }
            offset_seconds = Some(offset);
        }
        seconds += parse_clock(clock.trim_end())?;
    }
    Some(seconds - offset_seconds.unwrap_or(0) as f64)
}

fn parse_date(text: &str) -> Option<(i64, u32, u32)> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let year: i64 = digits(year)?;
    let month: u32 = digits(month)?;
    let day: u32 = digits(day)?;
    ((1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day))
        .then_some((year, month, day))
}

fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Splits `12:30:00+02:00` into the clock and the offset in seconds east of UTC.
fn split_offset(time: &str) -> Option<(&str, Option<i64>)> {
    let Some(at) = time.rfind(['+', '-']) else {
        return Some((time, None));
    };
    let (clock, offset) = (&time[..at], &time[at..]);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let offset = &offset[1..];
    let (hours, minutes) = match offset.split_once(':') {
        Some((hours, minutes)) => (hours, minutes),
        None if offset.len() == 4 => offset.split_at(2),
        None => (offset, "00"),
    };
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (i64, i64) = (digits(hours)?, digits(minutes)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((clock, Some(sign * (hours * 3600 + minutes * 60))))
}

/// `HH`, `HH:MM`, `HH:MM:SS` or `HH:MM:SS.ffffff` as seconds into the day.
fn parse_clock(clock: &str) -> Option<f64> {
    let (clock, fraction) = match clock.split_once(['.', ',']) {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (clock, None),
    };
    let mut parts = clock.split(':');
    let hours: u32 = parts.next().filter(|p| p.len() == 2).and_then(digits)?;
    let minutes: u32 = match parts.next() {
        Some(part) if part.len() == 2 => digits(part)?,
        Some(_) => return None,
        None => 0,
    };
    let seconds: u32 = match parts.next() {
        Some(part) if part.len() == 2 => digits(part)?,
        Some(_) => return None,
        None => 0,
    };
    if parts.next().is_some() || hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let fraction = match fraction {
        Some(fraction) => {
            let _: u64 = digits(fraction)?;
            format!("0.{fraction}").parse::<f64>().ok()?
        }
        None => 0.0,
    };
    Some(f64::from(hours * 3600 + minutes * 60 + seconds) + fraction)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---- versions -----------------------------------------------------------------------------

type Version = (u64, u64, u64);

/// `major[.minor[.patch]]`, a leading `v` and any pre-release or build suffix ignored, no
/// leading zeros.
fn parse_version(text: &str) -> Option<Version> {
    let text = text.trim().trim_start_matches(['v', 'V']);
    let text = text.split(['-', '+']).next().unwrap_or("");
    let mut parts = text.split('.');
    let major = version_number(parts.next()?)?;
    let mut next = || match parts.next() {
        Some("") | None => Some(0),
        Some(part) => version_number(part),
    };
    let (minor, patch) = (next()?, next()?);
    Some((major, minor, patch))
}

fn version_number(part: &str) -> Option<u64> {
    if part.len() > 1 && part.starts_with('0') {
        return None;
    }
    digits(part)
}

/// The half-open range a `1.*` / `1.2.*` pattern covers.
fn wildcard_bounds(text: &str) -> Option<(Version, Version)> {
    let cleaned = text.trim().trim_start_matches(['v', 'V']).replace('*', "");
    let parts: Vec<&str> = cleaned
        .trim_end_matches('.')
        .split('.')
        .filter(|part| !part.is_empty())
        .collect();
    match parts.as_slice() {
        [major] => {
            let major = version_number(major)?;
            Some(((major, 0, 0), (major + 1, 0, 0)))
        }
        [major, minor] => {
            let (major, minor) = (version_number(major)?, version_number(minor)?);
            Some(((major, minor, 0), (major, minor + 1, 0)))
        }
        [major, minor, patch, ..] => {
            let version = (
                version_number(major)?,
                version_number(minor)?,
                version_number(patch)?,
            );
            Some((version, (version.0, version.1, version.2 + 1)))
        }
        [] => None,
    }
}

fn semver_matches(
    operator: &Operator,
    expected: &Value,
    actual: &Value,
) -> Result<bool, Undecidable> {
    let actual = parse_version(&python_str(actual))
        .ok_or(Undecidable("a version property that cannot be read"))?;
    let expected_text = python_str(expected);
    if let Operator::SemverWildcard = operator {
        let (low, high) = wildcard_bounds(&expected_text).ok_or(Undecidable(
            "a version pattern on the flag that cannot be read",
        ))?;
        return Ok(low <= actual && actual < high);
    }
    let target = parse_version(&expected_text)
        .ok_or(Undecidable("a version on the flag that cannot be read"))?;
    Ok(match operator {
        Operator::SemverEq => actual == target,
        Operator::SemverNeq => actual != target,
        Operator::SemverGt => actual > target,
        Operator::SemverGte => actual >= target,
        Operator::SemverLt => actual < target,
        Operator::SemverLte => actual <= target,
        Operator::SemverTilde => target <= actual && actual < (target.0, target.1 + 1, 0),
        _ => {
            let upper = match target {
                (0, 0, patch) => (0, 0, patch + 1),
                (0, minor, _) => (0, minor + 1, 0),
                (major, _, _) => (major + 1, 0, 0),
            };
            target <= actual && actual < upper
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(key: &str, operator: &str, value: Value) -> PropertyFilter {
        let definitions = super::super::definitions::Definitions::from_json(&json!({"flags": [{
            "key": "f", "active": true,
            "filters": {"groups": [{"properties": [{"key": key, "operator": operator, "value": value}]}]}
        }]}))
        .unwrap();
        definitions.flags["f"].conditions[0].properties[0].clone()
    }

    fn check(filter: &PropertyFilter, properties: Value) -> Result<bool, Undecidable> {
        let Value::Object(properties) = properties else {
            panic!()
        };
        // 2024-06-15T12:00:00Z
        matches(
            filter,
            &properties,
            UNIX_EPOCH + Duration::from_secs(1_718_452_800),
        )
    }

    #[test]
    fn exact_and_is_not_ignore_case_and_take_lists() {
        let f = filter("email", "exact", json!("A@B.com"));
        assert_eq!(check(&f, json!({"email": "a@b.COM"})), Ok(true));
        assert_eq!(check(&f, json!({"email": "x"})), Ok(false));
        assert_eq!(check(&f, json!({"email": null})), Ok(false));
        assert!(check(&f, json!({})).is_err(), "missing property");
        let f = filter("plan", "exact", json!(["pro", "team"]));
        assert_eq!(check(&f, json!({"plan": "Team"})), Ok(true));
        assert_eq!(check(&f, json!({"plan": "free"})), Ok(false));
        let f = filter("beta", "exact", json!(true));
        assert_eq!(check(&f, json!({"beta": "true"})), Ok(true));
        assert_eq!(check(&f, json!({"beta": true})), Ok(true));
        let f = filter("n", "exact", json!(5));
        assert_eq!(check(&f, json!({"n": "5"})), Ok(true));
        let f = filter("plan", "is_not", json!(["pro"]));
        assert_eq!(check(&f, json!({"plan": "free"})), Ok(true));
        assert_eq!(check(&f, json!({"plan": "PRO"})), Ok(false));
    }

    #[test]
    fn set_text_and_pattern_operators() {
        assert_eq!(
            check(&filter("a", "is_set", json!("")), json!({"a": 1})),
            Ok(true)
        );
        assert!(check(&filter("a", "is_not_set", json!("")), json!({})).is_err());
        let f = filter("email", "icontains", json!("@Example"));
        assert_eq!(check(&f, json!({"email": "ada@example.com"})), Ok(true));
        let f = filter("email", "not_icontains", json!("@example"));
        assert_eq!(check(&f, json!({"email": "ada@EXAMPLE.com"})), Ok(false));
        let f = filter("path", "starts_with", json!("/API"));
        assert_eq!(check(&f, json!({"path": "/api/x"})), Ok(true));
        let f = filter("path", "not_ends_with", json!(".JS"));
        assert_eq!(check(&f, json!({"path": "a.js"})), Ok(false));
        let f = filter("email", "regex", json!(r"^.+@posthog\.com$"));
        assert_eq!(check(&f, json!({"email": "a@posthog.com"})), Ok(true));
        assert_eq!(check(&f, json!({"email": "a@posthog.org"})), Ok(false));
        let f = filter("email", "not_regex", json!(r"@posthog\.com$"));
        assert_eq!(check(&f, json!({"email": "a@posthog.org"})), Ok(true));
        // Look-around is Python's, not this engine's: the server decides.
        let f = filter("email", "regex", json!(r"^(?!admin).+"));
        assert!(check(&f, json!({"email": "a"})).is_err());
        assert!(check(&filter("a", "within_radius", json!(1)), json!({"a": 1})).is_err());
    }

    #[test]
    fn numeric_comparisons_read_numbers_in_text() {
        let f = filter("age", "gt", json!(18));
        assert_eq!(check(&f, json!({"age": 21})), Ok(true));
        assert_eq!(check(&f, json!({"age": "21"})), Ok(true));
        assert_eq!(check(&f, json!({"age": 18})), Ok(false));
        assert_eq!(
            check(&filter("age", "gte", json!("18")), json!({"age": 18})),
            Ok(true)
        );
        assert_eq!(
            check(&filter("age", "lt", json!(10)), json!({"age": 9.5})),
            Ok(true)
        );
        assert_eq!(
            check(&filter("age", "lte", json!(10)), json!({"age": 11})),
            Ok(false)
        );
        // Text against text compares as text.
        assert_eq!(
            check(&filter("tier", "gt", json!("b")), json!({"tier": "c"})),
            Ok(true)
        );
    }

    #[test]
    fn dates_absolute_and_relative() {
        let before = filter("signup", "is_date_before", json!("2024-01-01"));
        assert_eq!(
            check(&before, json!({"signup": "2023-12-31T23:59:59Z"})),
            Ok(true)
        );
        assert_eq!(
            check(&before, json!({"signup": "2024-01-01 00:00:01"})),
            Ok(false)
        );
        assert_eq!(
            check(&before, json!({"signup": "2024-01-01T01:00:00+02:00"})),
            Ok(true),
            "23:00 UTC the day before"
        );
        assert!(check(&before, json!({"signup": "yesterday"})).is_err());
        assert!(check(&before, json!({"signup": 5})).is_err());
        let after = filter("seen", "is_date_after", json!("-7d"));
        assert_eq!(check(&after, json!({"seen": "2024-06-10"})), Ok(true));
        assert_eq!(check(&after, json!({"seen": "2024-06-07"})), Ok(false));
        let after = filter("seen", "is_date_after", json!("-1m"));
        assert_eq!(check(&after, json!({"seen": "2024-05-16"})), Ok(true));
        assert_eq!(check(&after, json!({"seen": "2024-05-14"})), Ok(false));
        let after = filter("seen", "is_date_after", json!("1y"));
        assert_eq!(
            check(&after, json!({"seen": "2023-06-16T00:00:00.5Z"})),
            Ok(true)
        );
        assert!(check(
            &filter("s", "is_date_after", json!("soon")),
            json!({"s": "2024-01-01"})
        )
        .is_err());
    }

    #[test]
    fn calendar_arithmetic_round_trips() {
        for days in [-719_468, -1, 0, 59, 60, 11_016, 19_889, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(19_889), (2024, 6, 15));
        // 31 March minus one month is the last of February.
        let march_31 = days_from_civil(2024, 3, 31) as f64 * 86_400.0;
        let feb = months_before(march_31, 1).unwrap();
        assert_eq!(civil_from_days((feb / 86_400.0) as i64), (2024, 2, 29));
    }

    #[test]
    fn versions() {
        let f = |op: &str, value: &str, actual: &str| {
            check(&filter("v", op, json!(value)), json!({ "v": actual }))
        };
        assert_eq!(f("semver_eq", "1.2", "v1.2.0"), Ok(true));
        assert_eq!(f("semver_neq", "1.2.3", "1.2.3-beta"), Ok(false));
        assert_eq!(f("semver_gt", "1.2.3", "1.10.0"), Ok(true));
        assert_eq!(f("semver_gte", "1.2.3", "1.2.3"), Ok(true));
        assert_eq!(f("semver_lt", "2.0.0", "1.99.99"), Ok(true));
        assert_eq!(f("semver_lte", "1.0.0", "1.0.1"), Ok(false));
        assert_eq!(f("semver_tilde", "1.2.3", "1.2.9"), Ok(true));
        assert_eq!(f("semver_tilde", "1.2.3", "1.3.0"), Ok(false));
        assert_eq!(f("semver_caret", "1.2.3", "1.9.0"), Ok(true));
        assert_eq!(f("semver_caret", "0.2.3", "0.3.0"), Ok(false));
        assert_eq!(f("semver_caret", "0.0.3", "0.0.3"), Ok(true));
        assert_eq!(f("semver_wildcard", "1.2.*", "1.2.7"), Ok(true));
        assert_eq!(f("semver_wildcard", "1.*", "2.0.0"), Ok(false));
        assert!(f("semver_eq", "1.2.3", "01.2.3").is_err());
        assert!(f("semver_eq", "x", "1.2.3").is_err());
    }
}
