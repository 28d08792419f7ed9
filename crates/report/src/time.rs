//! UTC dates for people, without a calendar crate.

/// `YYYY-MM-DD` of a Unix time in milliseconds (UTC).
pub fn utc_day(unix_ms: u64) -> String {
    let (year, month, day) = civil(unix_ms / 86_400_000);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time in milliseconds.
pub fn utc_text(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let of_day = seconds % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        utc_day(unix_ms),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_text(1_795_953_600_000), "2026-11-29 12:00:00 UTC");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(1_709_164_800_000), "2024-02-29");
        assert_eq!(utc_text(1_735_689_599_000), "2024-12-31 23:59:59 UTC");
    }
}
