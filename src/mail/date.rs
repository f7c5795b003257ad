//! Calendar dates: the proleptic Gregorian day count (Howard Hinnant's civil-date
//! algorithms) and the two wire formats letterbox writes, RFC 5322 §3.3 and IMAP's
//! date-time (RFC 3501 §9). All times are written in UTC.
//!
//! Our own code rather than a date crate: the three functions below are all that mail
//! needs, and a calendar crate with time zones would add a zone database to the binary.

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// 1-based month number of a three-letter English month name (any case).
pub fn month_number(name: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A Unix time split into its civil date and time of day.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
}

fn civil(unix: i64) -> Civil {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
    }
}

/// RFC 5322 §3.3, in UTC: `Mon, 23 Nov 2026 22:51:08 +0000`.
pub fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let c = civil(unix);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[c.weekday],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// IMAP's date-time (RFC 3501 §9), in UTC: `17-Jul-1996 02:44:25 +0000`.
pub fn imap_date_time(unix: i64) -> String {
    let c = civil(unix);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// `YYYYMMDD-HHMMSS` in UTC, for file names that sort by time.
pub fn file_stamp(unix: i64) -> String {
    let c = civil(unix);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// C's asctime form, in UTC, as an mbox `From ` line carries it: `Thu Jan  1 00:00:00 1970`.
pub fn asctime(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let c = civil(unix);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[c.weekday],
        MONTHS[(c.month - 1) as usize],
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.year
    )
}

/// Parses the asctime form (`Thu Jan  1 00:00:00 1970`, taken as UTC; a trailing zone
/// or year order some writers use is tolerated): the date of an mbox `From ` line.
pub fn parse_asctime(text: &str) -> Option<i64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    // weekday month day time year [zone], or weekday month day time [zone] year.
    if words.len() < 5 {
        return None;
    }
    let month = month_number(words[1])?;
    let day: u32 = words[2].parse().ok()?;
    let mut hms = words[3].split(':').map(|p| p.parse::<i64>());
    let (h, mi) = (hms.next()?.ok()?, hms.next()?.ok()?);
    let s = hms.next().transpose().ok()?.unwrap_or(0);
    let year: i64 = words[4..].iter().find_map(|w| {
        (w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit())).then(|| w.parse().ok())?
    })?;
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn asctime_round_trip() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_795_474_268), "Mon Nov 23 22:51:08 2026");
        assert_eq!(
            parse_asctime("Mon Nov 23 22:51:08 2026"),
            Some(1_795_474_268)
        );
        assert_eq!(parse_asctime("Thu Jan  1 00:00:00 1970"), Some(0));
        assert_eq!(
            parse_asctime("Mon Nov 23 22:51:08 +0000 2026"),
            Some(1_795_474_268)
        );
        assert_eq!(parse_asctime("Mon Nov 23 22:51 2026"), Some(1_795_474_260));
        assert_eq!(parse_asctime("garbage"), None);
        assert_eq!(file_stamp(1_795_474_268), "20261123-225108");
    }

    use super::*;

    #[test]
    fn rfc5322_dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_474_268),
            "Mon, 23 Nov 2026 22:51:08 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc5322_date(-1), "Wed, 31 Dec 1969 23:59:59 +0000");
    }

    #[test]
    fn imap_dates() {
        assert_eq!(imap_date_time(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(imap_date_time(837_596_665), "17-Jul-1996 09:44:25 +0000");
    }

    #[test]
    fn civil_round_trip_and_months() {
        for days in [-800_000, -1, 0, 1, 10_957, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(month_number("feb"), Some(2));
        assert_eq!(month_number("Dec"), Some(12));
        assert_eq!(month_number("Foo"), None);
    }
}
