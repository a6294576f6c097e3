//! XEP-0082 date-times, both ways: `CCYY-MM-DDThh:mm:ss[.sss]TZD` to and from
//! milliseconds since the epoch (UTC). Written out here rather than with a date crate:
//! two small functions on integers, and this crate keeps its dependencies to the wire.

/// XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss]TZD`, TZD `Z` or `±hh:mm`) to
/// milliseconds since the epoch; fractions beyond milliseconds are truncated. Times
/// before 1970 are refused.
pub fn parse(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = bytes.get(from..from + n)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, min, sec) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || bytes.get(10) != Some(&b'T')
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            if pos - start < 3 {
                millis = millis * 10 + i64::from(bytes[pos] - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match bytes.get(pos..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), ..] if bytes.len() == pos + 6 && bytes[pos + 3] == b':' => {
            let (off_h, off_m) = (digits(pos + 1, 2)?, digits(pos + 4, 2)?);
            if off_h > 23 || off_m > 59 {
                return None;
            }
            let off = off_h * 60 + off_m;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    u64::try_from(secs * 1000 + millis).ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch as a XEP-0082 DateTime with milliseconds, in UTC
/// (`2010-07-10T23:08:25.123Z`).
pub fn format(ms: u64) -> String {
    let secs = ms / 1000;
    // u64 milliseconds give at most ~2.1e11 days: an i64 holds them.
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the inverse of
/// `days_from_civil`, same algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_xep0082() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse("1970-01-01T00:00:01.123456Z"), Some(1123));
        assert_eq!(parse("2010-07-10T23:08:25Z"), Some(1_278_803_305_000));
        assert_eq!(parse("2010-07-11T01:08:25+02:00"), Some(1_278_803_305_000));
        assert_eq!(parse("2010-07-10T22:08:25-01:00"), Some(1_278_803_305_000));
        assert_eq!(parse("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        for bad in [
            "",
            "2010-07-10",
            "2010-07-10T23:08:25",
            "2010-13-10T23:08:25Z",
            "2023-02-29T00:00:00Z",
            "2010-07-10T24:08:25Z",
            "2010-07-10T23:08:25.Z",
            "2010-07-10T23:08:25+0200",
            "1969-12-31T23:59:59Z",
            "2010-07-10 23:08:25Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_read_back() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(1_278_803_305_123), "2010-07-10T23:08:25.123Z");
        assert_eq!(format(1_709_164_800_999), "2024-02-29T00:00:00.999Z");
        assert_eq!(format(951_782_400_000), "2000-02-29T00:00:00.000Z");
        // Every day of a few centuries around the leap rules, both ways.
        for day in 0..(400 * 366) {
            let ms = day * 86_400_000 + 45_296_789;
            assert_eq!(parse(&format(ms)), Some(ms), "{}", format(ms));
        }
    }
}
