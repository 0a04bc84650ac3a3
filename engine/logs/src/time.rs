//! Timestamps as the servers write them, to Unix nanoseconds. No time
//! zone database: UTC and numeric offsets are read exactly; a zone
//! abbreviation other than UTC/GMT is not (the caller falls back to the
//! time the line was read and says so once). The README asks for
//! `log_timezone = 'UTC'`.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |n, d| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

/// `YYYY-MM-DD?HH:MM:SS[.frac]` (any one separator between date and
/// time) → (seconds since the epoch in that zone, nanoseconds, rest).
fn civil(s: &str) -> Option<(i64, u32, &str)> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        let mut scale = 100_000_000u32;
        for d in frac.as_bytes()[..n].iter().take(9) {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
        }
        rest = &frac[n..];
    }
    let seconds = days_from_civil(i64::from(year), month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some((seconds, nanos, rest))
}

/// A zone written after a timestamp: `UTC`, `GMT`, `Z`, `+02`, `-0530`,
/// `+05:30`; the offset in seconds east of UTC.
fn zone(z: &str) -> Option<i64> {
    match z {
        "UTC" | "GMT" | "Z" | "" | "UCT" | "Etc/UTC" => return Some(0),
        _ => {}
    }
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let rest = rest.replace(':', "");
    let (h, m) = match rest.len() {
        2 => (digits(rest.as_bytes())?, 0),
        4 => (digits(&rest.as_bytes()[..2])?, digits(&rest.as_bytes()[2..])?),
        _ => return None,
    };
    Some(sign * i64::from(h * 3600 + m * 60))
}

fn to_nanos(seconds: i64, nanos: u32) -> Option<u64> {
    u64::try_from(seconds).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::from(nanos))
}

/// PostgreSQL's `%m`/`%t` and jsonlog/csvlog timestamps:
/// `2024-05-01 12:34:56.789 UTC` (zone after a space; `+02` numeric).
pub fn pg(text: &str) -> Option<u64> {
    let (seconds, nanos, rest) = civil(text)?;
    let offset = zone(rest.trim())?;
    to_nanos(seconds - offset, nanos)
}

/// PostgreSQL's `%n`: seconds since the epoch with milliseconds.
pub fn epoch(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = whole.parse().ok()?;
    let mut nanos = 0u32;
    let mut scale = 100_000_000u32;
    for d in frac.bytes().take(9) {
        if !d.is_ascii_digit() {
            return None;
        }
        nanos += u32::from(d - b'0') * scale;
        scale /= 10;
    }
    to_nanos(seconds, nanos)
}

/// MySQL / MariaDB: `2024-05-01T12:34:56.123456Z` or `+02:00` (MySQL 8,
/// `log_timestamps`), `2024-05-01 12:34:56` (MariaDB's error log, the
/// server's local time: read as UTC), `240501 12:34:56` or
/// `240501  9:04:05` (MariaDB's slow log and old error logs, local).
pub fn mysql(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some((seconds, nanos, rest)) = civil(text) {
        return to_nanos(seconds - zone(rest.trim())?, nanos);
    }
    // YYMMDD H:MM:SS
    let (date, time) = text.split_once(' ')?;
    let time = time.trim_start();
    if date.len() != 6 {
        return None;
    }
    let d = date.as_bytes();
    let (year, month, day) = (2000 + digits(&d[0..2])?, digits(&d[2..4])?, digits(&d[4..6])?);
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let (h, m, s) = (digits(h.as_bytes())?, digits(m.as_bytes())?, digits(s.as_bytes())?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    to_nanos(days_from_civil(i64::from(year), month, day) * 86_400 + i64::from(h * 3600 + m * 60 + s), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_timestamps_in_utc_and_offsets() {
        // 2024-05-01T12:34:56.789Z
        let utc = 1_714_566_896_789_000_000;
        assert_eq!(pg("2024-05-01 12:34:56.789 UTC"), Some(utc));
        assert_eq!(pg("2024-05-01 14:34:56.789 +02"), Some(utc));
        assert_eq!(pg("2024-05-01 07:04:56.789 -0530"), Some(utc));
        assert_eq!(pg("2024-05-01 12:34:56 GMT"), Some(utc - 789_000_000));
        assert_eq!(pg("2024-05-01 12:34:56.789 CEST"), None, "abbreviations other than UTC are not guessed");
        assert_eq!(pg("2024-13-01 12:34:56.789 UTC"), None);
        assert_eq!(pg("garbage"), None);
        assert_eq!(epoch("1714566896.789"), Some(utc));
    }

    #[test]
    fn mysql_and_mariadb_timestamps() {
        assert_eq!(mysql("2024-05-01T12:34:56.789000Z"), Some(1_714_566_896_789_000_000));
        assert_eq!(mysql("2024-05-01T14:34:56.789000+02:00"), Some(1_714_566_896_789_000_000));
        assert_eq!(mysql("2024-05-01 12:34:56"), Some(1_714_566_896_000_000_000));
        assert_eq!(mysql("240501 12:34:56"), Some(1_714_566_896_000_000_000));
        assert_eq!(mysql("240501  9:04:05"), Some(1_714_554_245_000_000_000));
        assert_eq!(mysql("24050 12:34:56"), None);
    }
}
