//! feed_dates.py's reading of the two common date forms, compiled: RFC 822 with a day name
//! and W3C-DTF with a time and a zone, as feedparser's handlers read them, to the UTC
//! struct_time fields. None for anything else or a date the datetime arithmetic refuses
//! (the Python reading, then feedparser, decide).
use pyo3::prelude::*;
use std::collections::HashMap;

#[pyclass(frozen)]
pub struct DateReader {
    /// feedparser's `months` and `timezone_names` (rfc822.py), given by Python
    months: HashMap<String, i64>,
    zones: HashMap<String, i64>,
}

type Fields = (i64, i64, i64, i64, i64, i64, i64, i64, i64);

#[pymethods]
impl DateReader {
    #[new]
    fn new(months: HashMap<String, i64>, zones: HashMap<String, i64>) -> Self {
        DateReader { months, zones }
    }

    /// `parse_date(value)`'s fields (utctimetuple's nine), or None when unsure.
    fn read(&self, value: &str) -> Option<Fields> {
        let b = value.as_bytes();
        self.rfc822(b).or_else(|| w3dtf(value))
    }
}

/// The number of `n` ASCII digits at `b[at..]`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let run = b.get(at..at + n)?;
    run.iter().try_fold(0i64, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0')))
}

impl DateReader {
    /// `_RFC822` (a full match) and `_rfc822`.
    fn rfc822(&self, b: &[u8]) -> Option<Fields> {
        let day_name = b.get(..3)?.to_ascii_lowercase();
        if !matches!(&day_name[..], b"mon" | b"tue" | b"wed" | b"thu" | b"fri" | b"sat" | b"sun")
            || b.get(3..5)? != b", "
        {
            return None;
        }
        let (day, mut i) = match (digits(b, 5, 2), b.get(6)) {
            (Some(day), _) if b.get(7) == Some(&b' ') => (day, 8),
            (_, Some(b' ')) => (digits(b, 5, 1)?, 7),
            _ => return None,
        };
        let month_name = b.get(i..i + 3)?;
        if !month_name.iter().all(u8::is_ascii_alphabetic) || b.get(i + 3) != Some(&b' ') {
            return None;
        }
        let month = *self.months.get(&String::from_utf8_lossy(month_name).to_ascii_lowercase())?;
        i += 4;
        let year = digits(b, i, 4)?;
        if b.get(i + 4) != Some(&b' ') {
            return None;
        }
        i += 5;
        let (hour, minute, second) = clock(b, i)?;
        i += 8;
        if b.get(i) != Some(&b' ') {
            return None;
        }
        let zone = b.get(i + 1..)?;
        let (hours, minutes) = match zone.first()? {
            sign @ (b'+' | b'-') if zone.len() == 5 => {
                let (h, m) = (digits(zone, 1, 2)?, digits(zone, 3, 2)?);
                if *sign == b'-' { (-h, -m) } else { (h, m) }
            }
            _ if (1..=4).contains(&zone.len()) && zone.iter().all(u8::is_ascii_alphabetic) => {
                let name = String::from_utf8_lossy(zone).to_ascii_lowercase();
                if name.starts_with("gmt") && name != "gmt" {
                    return None; // feedparser reads "gmt+3" its own way
                }
                (self.zones.get(&name).copied().unwrap_or(0), 0)
            }
            _ => return None,
        };
        utc(year, month, day, hour, minute, second, hours, minutes)
    }
}

/// "hh:mm:ss" at `b[at..]`.
fn clock(b: &[u8], at: usize) -> Option<(i64, i64, i64)> {
    if b.get(at + 2) != Some(&b':') || b.get(at + 5) != Some(&b':') {
        return None;
    }
    Some((digits(b, at, 2)?, digits(b, at + 3, 2)?, digits(b, at + 6, 2)?))
}

/// `_W3DTF` (a full match) and `_w3dtf`.
fn w3dtf(value: &str) -> Option<Fields> {
    let b = value.as_bytes();
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let (month, day) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, whole) = clock(b, 11)?;
    let mut i = 19;
    let mut second = whole;
    if b.get(i) == Some(&b'.') {
        let end = i + 1 + b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if end == i + 1 {
            return None;
        }
        // int(float("ss.fff")): Rust's parse rounds as Python's float() does
        second = value[17..end].parse::<f64>().ok()?.trunc() as i64;
        i = end;
    }
    let (hours, minutes) = match b.get(i..)? {
        [b'Z' | b'z'] => (0, 0),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
            if *sign == b'-' { (-h, -m) } else { (h, m) }
        }
        _ => return None,
    };
    utc(year, month, day, hour, minute, second, hours, minutes)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `_utc`: datetime(...) less the zone's offset, as utctimetuple() gives it; None where
/// datetime refuses (a field out of range, a year past 1..9999).
#[allow(clippy::too_many_arguments)]
fn utc(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64,
       zone_hours: i64, zone_minutes: i64) -> Option<Fields> {
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || !(0..24).contains(&hour) || !(0..60).contains(&minute) || !(0..60).contains(&second)
    {
        return None;
    }
    let stamp = (days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
        - (zone_hours * 3_600 + zone_minutes * 60);
    let days = stamp.div_euclid(86_400);
    let rest = stamp.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(1..=9999).contains(&year) {
        return None; // OverflowError
    }
    let weekday = (days + 3).rem_euclid(7); // 1970-01-01 was a Thursday; Monday is 0
    let yearday = days - days_from_civil(year, 1, 1) + 1;
    Some((year, month, day, rest / 3_600, rest / 60 % 60, rest % 60, weekday, yearday, 0))
}
