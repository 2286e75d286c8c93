//! UTC calendar time for nanosecond timestamps: the proleptic Gregorian date of a day
//! number and back (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms",
//! <https://howardhinnant.github.io/date_algorithms.html>, `civil_from_days` and
//! `days_from_civil`), RFC 3339 parsing and formatting, and the time arguments of the
//! command line (`--from`, `--to`, `--train`).
//!
//! A leaf module (std, and serde for [`UtcMs`] in CSV rows). Every conversion is checked: a time outside the `i64`
//! nanosecond range (1677-09-21 to 2262-04-11) is `None` or an error, never a wrapped
//! value.

use std::fmt;

use thiserror::Error;

use crate::types::{Ts, NS_PER_SEC};

/// Seconds per day.
const SECS_PER_DAY: i64 = 86_400;

/// The proleptic Gregorian `(year, month, day)` of `z` days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d` (`m` in 1..=12, `d`
/// in 1..=31; not checked against the month's length).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC date and time of a timestamp, split for formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute, 0..=59.
    pub minute: u32,
    /// Second, 0..=59.
    pub second: u32,
    /// Nanoseconds past the second, 0..1e9.
    pub nanos: u32,
}

impl Civil {
    /// The UTC calendar time of `ts` (ns since the epoch; before it, toward the past).
    pub fn of(ts: Ts) -> Civil {
        let secs = ts.div_euclid(NS_PER_SEC);
        let nanos = ts.rem_euclid(NS_PER_SEC) as u32;
        let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let rem = secs.rem_euclid(SECS_PER_DAY) as u32;
        Civil { year, month, day, hour: rem / 3600, minute: rem / 60 % 60, second: rem % 60, nanos }
    }
}

/// A time as UTC RFC 3339 with milliseconds, `2024-08-09T00:00:01.234Z` (truncated
/// toward the past, so a time and its milliseconds agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcMs(pub Ts);

impl fmt::Display for UtcMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Civil::of(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.nanos / 1_000_000
        )
    }
}

impl serde::Serialize for UtcMs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` to ns since the epoch;
/// `None` if malformed or outside the `i64` nanosecond range. `T` and `Z` may be lower
/// case; fraction digits past the ninth are dropped (truncated to the nanosecond).
pub fn parse_rfc3339(s: &[u8]) -> Option<Ts> {
    fn digits(s: &[u8], from: usize, n: usize) -> Option<i64> {
        let b = s.get(from..from + n)?;
        b.iter().try_fold(0i64, |a, &c| c.is_ascii_digit().then(|| a * 10 + (c - b'0') as i64))
    }
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || (s[10] != b'T' && s[10] != b't')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let (h, mi, sec) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let mut scale = 100_000_000i64;
        let start = i;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            frac += (c - b'0') as i64 * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset_secs = match s.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (digits(s, i + 1, 2)?, digits(s, i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    // In i128: a time outside the i64 nanosecond range is `None`, never wrapped.
    let secs = days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3600 + mi * 60 + sec - offset_secs;
    Ts::try_from(i128::from(secs) * i128::from(NS_PER_SEC) + i128::from(frac)).ok()
}

/// Why a time or duration argument was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeArgError {
    /// Neither nanoseconds since the epoch nor RFC 3339.
    #[error("{0:?}: not a time (nanoseconds since the epoch, or RFC 3339 such as 2024-08-09T00:00:00Z)")]
    Time(String),
    /// Not a positive duration with a unit.
    #[error("{0:?}: not a duration (a positive number with a unit: 500ms, 90s, 15m, 6h, 2d)")]
    Duration(String),
}

/// A point in time from the command line: an integer (ns since the epoch) or RFC 3339.
pub fn parse_time_arg(s: &str) -> Result<Ts, TimeArgError> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<Ts>().map_err(|_| TimeArgError::Time(s.into()));
    }
    parse_rfc3339(t.as_bytes()).ok_or_else(|| TimeArgError::Time(s.into()))
}

/// A duration from the command line, in ns: a positive integer with a unit, `ns`, `us`,
/// `ms`, `s`, `m`, `h` or `d` (`6h`, `90s`); the product must fit `i64` nanoseconds.
pub fn parse_duration_arg(s: &str) -> Result<Ts, TimeArgError> {
    let t = s.trim();
    let bad = || TimeArgError::Duration(s.into());
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let scale: i64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => NS_PER_SEC,
        "m" => 60 * NS_PER_SEC,
        "h" => 3600 * NS_PER_SEC,
        "d" => SECS_PER_DAY * NS_PER_SEC,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).filter(|&v| v > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_over_four_centuries_and_both_sides_of_the_epoch() {
        for z in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m as i64, d as i64), z, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_from_civil(2024, 8, 9), 19_944);
    }

    #[test]
    fn rfc3339_parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339(b"2000-03-01T00:00:00.5Z"), Some(951_868_800 * NS_PER_SEC + 500_000_000));
        assert_eq!(parse_rfc3339(b"2024-03-12T10:29:43.111588173Z"), Some(1_710_239_383_111_588_173));
        // The same instant written in two offsets.
        assert_eq!(parse_rfc3339(b"2024-08-09T02:00:00+02:00"), parse_rfc3339(b"2024-08-09T00:00:00Z"));
        assert_eq!(parse_rfc3339(b"2024-08-08T19:30:00-04:30"), parse_rfc3339(b"2024-08-09T00:00:00Z"));
        for bad in [
            "2024-08-09 00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-08-09T00:00:00",
            "2024-08-09T00:00:00.Z",
            "2024-08-09T00:00:00+2:00",
            "2024-08-09T00:00:00+24:00",
            "3000-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn formats_milliseconds_truncated_toward_the_past() {
        assert_eq!(UtcMs(1_723_161_601_234_999_999).to_string(), "2024-08-09T00:00:01.234Z");
        assert_eq!(UtcMs(-1).to_string(), "1969-12-31T23:59:59.999Z");
        assert_eq!(UtcMs(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(UtcMs((951_782_400 + 86_399) * NS_PER_SEC).to_string(), "2000-02-29T23:59:59.000Z");
        assert_eq!(
            parse_rfc3339(UtcMs(1_723_161_601_234_000_000).to_string().as_bytes()),
            Some(1_723_161_601_234_000_000)
        );
    }

    #[test]
    fn time_and_duration_arguments() {
        assert_eq!(parse_time_arg("1723161600000000000"), Ok(1_723_161_600_000_000_000));
        assert_eq!(parse_time_arg("2024-08-09T00:00:00Z"), Ok(1_723_161_600_000_000_000));
        assert!(matches!(parse_time_arg("yesterday"), Err(TimeArgError::Time(_))));
        assert!(parse_time_arg("99999999999999999999").is_err());
        assert_eq!(parse_duration_arg("6h"), Ok(6 * 3600 * NS_PER_SEC));
        assert_eq!(parse_duration_arg("90s"), Ok(90 * NS_PER_SEC));
        assert_eq!(parse_duration_arg("250ms"), Ok(250_000_000));
        for bad in ["6", "h", "0h", "-1h", "1.5h", "6 h", "200000d"] {
            assert!(matches!(parse_duration_arg(bad), Err(TimeArgError::Duration(_))), "{bad}");
        }
    }
}
