//! The few date operations the cloud APIs need: read Keystone's and
//! Glance's UTC timestamps, write SCS-0102 build dates. Small enough that a
//! date crate would be more code to review than this.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch of `2026-11-29T12:03:18Z`,
/// `2026-11-29T12:03:18.000000Z` or `2026-11-29T12:03:18+00:00`.
/// Only UTC: OpenStack services write UTC.
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))
        .unwrap_or(time);
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let m: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// `YYYY-MM-DD hh:mm:ss` in UTC, the form SCS-0102 asks for.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDThh:mm:ssZ`.
pub fn format_rfc3339(secs: i64) -> String {
    format_utc(secs).replacen(' ', "T", 1) + "Z"
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

// Howard Hinnant's days-from-civil algorithm (public domain), proleptic
// Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_services_write() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2026-11-29T12:03:18Z"), Some(1_795_953_798));
        assert_eq!(
            parse_utc("2026-11-29T12:03:18.000000Z"),
            Some(1_795_953_798)
        );
        assert_eq!(parse_utc("2026-11-29T12:03:18+00:00"), Some(1_795_953_798));
        assert_eq!(parse_utc("2000-02-29T23:59:59Z"), Some(951_868_799));
        assert_eq!(parse_utc("yesterday"), None);
        assert_eq!(parse_utc("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn formats_round_trip() {
        for s in [0, 951_868_799, 1_795_953_798, 4_102_444_800] {
            assert_eq!(parse_utc(&format_rfc3339(s)), Some(s));
        }
        assert_eq!(format_utc(1_795_953_798), "2026-11-29 12:03:18");
    }
}
