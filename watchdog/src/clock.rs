//! Times in the host's own zone (/etc/localtime, or TZ), as users read their clocks.

use std::ffi::CStr;

unsafe extern "C" {
    // POSIX; the libc crate does not declare it.
    fn tzset();
}

/// `2026-11-26 14:05 CET`: the minute of `unix_secs` in the local time zone, with its name.
pub fn local_minute(unix_secs: u64) -> String {
    let t = libc::time_t::try_from(unix_secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain data filled by localtime_r; tzset re-reads a changed
    // /etc/localtime. The watchdog is single-threaded, so nothing races the zone state.
    let (offset, zone) = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tzset();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return utc_minute(unix_secs);
        }
        let zone = (!tm.tm_zone.is_null()).then(|| CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned());
        (tm.tm_gmtoff, zone)
    };
    minute(unix_secs, offset, zone.as_deref())
}

/// `2026-11-26 13:05 UTC`.
pub fn utc_minute(unix_secs: u64) -> String {
    minute(unix_secs, 0, Some("UTC"))
}

/// The minute of `unix_secs` shifted by `offset` seconds east of UTC, named `zone` (or by the
/// offset, `+0530`, when the zone has no name).
pub fn minute(unix_secs: u64, offset: i64, zone: Option<&str>) -> String {
    let local = unix_secs as i64 + offset;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let zone = match zone.filter(|z| !z.is_empty() && z.chars().all(|c| c.is_ascii_graphic())) {
        Some(z) => z.to_string(),
        None => {
            let sign = if offset < 0 { '-' } else { '+' };
            let off = offset.unsigned_abs();
            format!("{sign}{:02}{:02}", off / 3600, (off % 3600) / 60)
        }
    };
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} {zone}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_in_the_given_zone() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(1_795_698_300), "2026-11-26 13:05 UTC");
        assert_eq!(minute(1_795_698_300, 3600, Some("CET")), "2026-11-26 14:05 CET");
        // Across midnight backwards, and a zone known only by its offset.
        assert_eq!(minute(1_795_698_300, -14 * 3600, None), "2026-11-25 23:05 -1400");
        assert_eq!(minute(1_795_698_300, 19_800, Some("")), "2026-11-26 18:35 +0530");
    }

    /// The host's zone as coreutils' date(1) sees it, for the same instant.
    #[test]
    fn local_time_agrees_with_date() {
        let t = 1_795_698_300u64;
        let Ok(out) = std::process::Command::new("date")
            .args(["-d", &format!("@{t}"), "+%Y-%m-%d %H:%M %Z"])
            .output()
        else {
            return;
        };
        let want = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(local_minute(t), want);
    }
}
