//! What the command prints: log messages, the live status line while waiting, JSON and
//! times. (The library never prints; this is where its callbacks and logs are rendered.)

#![allow(clippy::print_stderr)]

use flufl_lock::WaitStatus;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

struct StderrLogger(log::LevelFilter);

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            clear_status_line();
            eprintln!(
                "flufl-lock: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

/// `-v` shows the library's waiting, breaking and lost-lock messages; `-vv` every step.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Error,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    if log::set_boxed_logger(Box::new(StderrLogger(level))).is_ok() {
        log::set_max_level(level);
    }
}

/// A message for the user, on stderr.
pub fn say(msg: &str) {
    eprintln!("flufl-lock: {msg}");
}

static LINE_SHOWN: Mutex<bool> = Mutex::new(false);

/// Erases the status line if one is shown.
pub fn clear_status_line() {
    let mut shown = LINE_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    if *shown {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
        *shown = false;
    }
}

/// The wait callback: a live status line on stderr when it is a terminal (holder, time
/// waited, expiry countdown), at most ten updates a second; nothing when `quiet`.
pub fn status_line(quiet: bool) -> impl Fn(&WaitStatus) + Send + Sync + 'static {
    let on = !quiet && std::io::stderr().is_terminal();
    let last: Mutex<Option<Instant>> = Mutex::new(None);
    move |w: &WaitStatus| {
        if !on {
            return;
        }
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
        let holder = w.holder.as_ref().map_or("unknown holder".to_string(), |d| {
            format!("{} pid {}", d.hostname, d.pid)
        });
        let expiry = match w.expires_in {
            Some(d) if d.is_zero() => ", expired".to_string(),
            Some(d) => format!(", expires in {}", human(d)),
            None => String::new(),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2Kflufl-lock: waiting for {} (held by {holder}{expiry}), waited {}",
            w.lockfile.display(),
            human(w.waited)
        );
        let _ = err.flush();
        *LINE_SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }
}

/// `1.2s`, `3m05s`, `2h10m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T12:41:28.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, ms) = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(e) => {
            let d = e.duration();
            let ms = d.subsec_millis();
            if ms == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1000 - ms)
            }
        }
    };
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known instants format as RFC 3339.
    #[test]
    fn rfc3339_known_values() {
        let t = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339(t(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(t(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(t(1_795_000_000, 0)), "2026-11-18T11:06:40.000Z");
    }

    /// JSON strings escape quotes, backslashes and control characters.
    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
