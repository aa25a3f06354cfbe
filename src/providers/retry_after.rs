//! The one `Retry-After` reader every provider uses (RFC 9110 §10.2.3).
//!
//! The header is either `delay-seconds` (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00
//! GMT`). Push services mostly send seconds, but a front end or proxy in between may send a
//! date, and reading a date as "no value" would drop the service's wish. So both forms are
//! read, the date relative to the `now` the caller passes (the time the answer came), which
//! keeps this pure and testable.
//!
//! The result is a floor on the retry's delay ([`crate::providers::retry`]), bounded by
//! [`MAX_RETRY_AFTER`]: a peer cannot park a push (or, for FCM's quota pause, a whole project)
//! for days with one header. A date in the past means "now" (zero). Anything unreadable is
//! `None`: the retry policy's own backoff still applies.

use crate::vocab::UnixMillis;
use http::HeaderMap;
use http::header::RETRY_AFTER;
use std::time::Duration;

/// The longest wait a `Retry-After` can ask for: a day, the longest push deadline (P2, a
/// missed call), so any push it concerns is over by then anyway.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// The `Retry-After` of `headers`, read at `now` (UNIX milliseconds).
pub fn from_headers(headers: &HeaderMap, now: UnixMillis) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse(value, now)
}

/// Reads a `Retry-After` value at `now` (UNIX milliseconds): seconds or an HTTP-date, at most
/// [`MAX_RETRY_AFTER`]; `None` when it is neither.
pub fn parse(value: &str, now: UnixMillis) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let wait = if value.bytes().all(|byte| byte.is_ascii_digit()) {
        // delay-seconds = 1*DIGIT; a number too large for u64 is "very long", not garbage.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at_ms = http_date_seconds(value)?.saturating_mul(1000);
        Duration::from_millis(at_ms.saturating_sub(now))
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The UNIX seconds of an HTTP-date in any of the three forms a recipient must accept (RFC
/// 9110 §5.6.7): IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). The weekday is
/// not checked against the date: it adds nothing to when.
fn http_date_seconds(value: &str) -> Option<u64> {
    let words: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, time) = match words.as_slice() {
        // IMF-fixdate: "Sun," "06" "Nov" "1994" "08:49:37" "GMT"
        [weekday, day, month, year, time, "GMT"] if weekday.ends_with(',') => {
            (number(day)?, month_number(month)?, number(year)?, *time)
        }
        // RFC 850: "Sunday," "06-Nov-94" "08:49:37" "GMT"
        [weekday, date, time, "GMT"] if weekday.ends_with(',') => {
            let mut parts = date.split('-');
            let day = number(parts.next()?)?;
            let month = month_number(parts.next()?)?;
            let two_digits = parts.next()?;
            if two_digits.len() != 2 || parts.next().is_some() {
                return None;
            }
            let short = number(two_digits)?;
            // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
            let year = if short < 70 {
                2000 + short
            } else {
                1900 + short
            };
            (day, month, year, *time)
        }
        // asctime: "Sun" "Nov" "6" "08:49:37" "1994"
        [_weekday, month, day, time, year] => {
            (number(day)?, month_number(month)?, number(year)?, *time)
        }
        _ => return None,
    };
    let mut clock = time.split(':');
    let hour = number(clock.next()?)?;
    let minute = number(clock.next()?)?;
    let second = number(clock.next()?)?;
    if clock.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if !(1970..=9999).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// A run of ASCII digits (at most four: no date field is longer), as a number.
fn number(text: &str) -> Option<u64> {
    let valid = !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| text.parse().ok()).flatten()
}

/// `Jan` → 1 ... `Dec` → 12 (case-sensitive, as the grammar spells them).
fn month_number(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|month| *month == text)
        .map(|index| index as u64 + 1)
}

/// The number of days in `month` of `year` (Gregorian).
fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a Gregorian date from 1970 on (Howard Hinnant's algorithm, the
/// inverse of the one in `crate::clock`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z, RFC 9110's example date, in UNIX milliseconds.
    const EXAMPLE_MS: UnixMillis = 784_111_777_000;

    #[test]
    fn seconds_are_read_as_seconds_whatever_now_is() {
        assert_eq!(parse("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 30 ", EXAMPLE_MS), Some(Duration::from_secs(30)));
        assert_eq!(parse("0", EXAMPLE_MS), Some(Duration::ZERO));
    }

    #[test]
    fn all_three_date_forms_are_read_relative_to_now() {
        let ten_before = EXAMPLE_MS - 10_000;
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse(form, ten_before),
                Some(Duration::from_secs(10)),
                "{form}"
            );
        }
        // Milliseconds count: an answer read 250 ms into the second waits the rest of it.
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:38 GMT", EXAMPLE_MS + 250),
            Some(Duration::from_millis(750))
        );
    }

    #[test]
    fn known_dates_land_on_the_right_second() {
        assert_eq!(http_date_seconds("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date_seconds("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            http_date_seconds("Fri, 27 Nov 2026 23:58:15 GMT"),
            Some(1_795_823_895)
        );
        // RFC 850's two-digit years: 69 is 2069, 70 is 1970.
        assert_eq!(
            http_date_seconds("Thursday, 01-Jan-70 00:00:00 GMT"),
            Some(0)
        );
        assert!(http_date_seconds("Tuesday, 01-Jan-69 00:00:00 GMT").unwrap() > 3_000_000_000);
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS + 5_000),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn the_wait_is_bounded() {
        assert_eq!(parse("99999999", 0), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse("999999999999999999999999999", 0),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT", EXAMPLE_MS),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn anything_else_is_no_value() {
        for bad in [
            "",
            "  ",
            "-5",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37:01 GMT",
        ] {
            assert_eq!(parse(bad, EXAMPLE_MS), None, "{bad:?}");
        }
    }

    #[test]
    fn the_header_is_found_by_name() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers, 0), None);
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(from_headers(&headers, 0), Some(Duration::from_secs(7)));
    }
}
