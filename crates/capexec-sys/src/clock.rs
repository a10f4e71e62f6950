//! Wall-clock time as RFC 3339, the one format capexec writes times in
//! (logs, state files, learnt declarations), and the time as file times
//! are taken.

/// The time by the kernel's coarse real-time clock, the one file times are
/// taken from: up to a tick (4 ms here) behind `SystemTime::now()`, so a
/// file made right after `now()` may look older than it. Compared with a
/// file's times, this is never ahead of them.
pub fn coarse_now() -> std::time::SystemTime {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer to a timespec; CLOCK_REALTIME_COARSE
    // exists on every kernel capexec runs on (2.6.32 and later).
    let r = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if r != 0 {
        return std::time::SystemTime::now();
    }
    std::time::UNIX_EPOCH + std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// UTC now as `2026-11-22T10:11:12.345Z`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_millis())
}

pub fn rfc3339(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
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
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory made right after is never older than the coarse time
    /// (with SystemTime::now() it often was: learn's forget_creations).
    #[test]
    fn a_directory_made_after_coarse_now_is_not_older() {
        let base = std::env::temp_dir().join(format!("capexec-clock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        for i in 0..200 {
            let t = coarse_now();
            let d = base.join(i.to_string());
            std::fs::create_dir(&d).unwrap();
            let m = std::fs::metadata(&d).unwrap();
            let made = m.created().or_else(|_| m.modified()).unwrap();
            assert!(made >= t, "{d:?}: made {made:?} before {t:?}");
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_350_896, 123), "2026-11-22T12:34:56.123Z");
    }
}
