//! Time: the plugin's clock (SigV4 signs with it) and the ISO-8601
//! timestamps STS answers with (`2026-12-02T18:58:37.979556Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// 2020-01-01T00:00:00Z: a clock before this is the sandbox's frozen one
/// (a mount without `grants.clock` reads the Unix epoch).
pub const PLAUSIBLE_NOW_SECS: u64 = 1_577_836_800;

/// The plugin's clock, in seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch of an ISO-8601 / RFC 3339 UTC time
/// such as `2011-07-15T23:28:33.359Z` or `2026-12-02T18:58:37.979556+00:00`;
/// `None` when it is not one (or before 1970).
pub fn parse_iso8601_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut ms = 0i64;
        for (i, c) in fraction.bytes().take(3).enumerate() {
            if !c.is_ascii_digit() {
                break;
            }
            ms += i64::from(c - b'0') * [100, 10, 1][i];
        }
        millis = ms;
        rest = &fraction[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let o = rest.as_bytes();
            if o.len() != 6 || o[3] != b':' {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    u64::try_from(secs * 1000 + millis).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sts_expirations() {
        // AWS's documented shape and moto's (microseconds).
        assert_eq!(parse_iso8601_ms("2011-07-15T23:28:33.359Z"), Some(1_310_772_513_359));
        assert_eq!(parse_iso8601_ms("2026-12-02T18:58:37.979556Z"), Some(1_796_237_917_979));
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601_ms("2000-02-29T12:00:00Z"), Some(951_825_600_000));
        assert_eq!(
            parse_iso8601_ms("2011-07-16T01:28:33+02:00"),
            parse_iso8601_ms("2011-07-15T23:28:33Z")
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "tomorrow",
            "2011-07-15",
            "2011-07-15T23:28:33",
            "2011-13-15T23:28:33Z",
            "2011-07-15T23:28:33.Z",
            "2011-07-15T23:28:33+0200",
            "1969-12-31T23:59:59Z",
            "20x1-07-15T23:28:33Z",
        ] {
            assert_eq!(parse_iso8601_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn agrees_with_the_signer_calendar() {
        for secs in [0u64, 951_825_600, 1_440_938_160, 1_796_237_917, 4_102_444_800] {
            let amz = tresor_plugin_sdk::sigv4::amz_date(secs);
            let iso = format!(
                "{}-{}-{}T{}:{}:{}Z",
                &amz[0..4],
                &amz[4..6],
                &amz[6..8],
                &amz[9..11],
                &amz[11..13],
                &amz[13..15]
            );
            assert_eq!(parse_iso8601_ms(&iso), Some(secs * 1000), "{iso}");
        }
    }
}
