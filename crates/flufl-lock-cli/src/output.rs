//! What the command prints: log messages, the live status line while waiting, `status`
//! (text and JSON) and times. (The library never prints; this is where its callbacks and
//! logs are rendered.)

#![allow(clippy::print_stderr)]

use flufl_lock::{Details, LockState, WaitStatus};
use serde::Serialize;
use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
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

/// A message for the user, on stderr (a failure to write it is ignored).
pub fn say(msg: &str) {
    let _ = writeln!(io::stderr().lock(), "flufl-lock: {msg}");
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

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T12:41:28.123Z`; `None` for a time
/// it cannot write (beyond the years -9999 to 9999).
pub fn rfc3339(t: SystemTime) -> Option<String> {
    let t = jiff::Timestamp::try_from(t).ok()?;
    Some(format!("{t:.3}"))
}

/// What `status` shows about a lock.
#[derive(Debug)]
pub struct Status<'a> {
    /// The lock file (absolute).
    pub lockfile: &'a Path,
    /// flufl.lock's state.
    pub state: LockState,
    /// Who holds it, if it is held and the holder could be read.
    pub holder: Option<Details>,
    /// When it expires, if it is held and the time could be read.
    pub expiration: Option<SystemTime>,
    /// The time of the reading.
    pub now: SystemTime,
}

impl Status<'_> {
    /// Milliseconds until expiry; negative once expired.
    fn expires_in_ms(&self) -> Option<i128> {
        self.expiration.map(|e| match e.duration_since(self.now) {
            Ok(d) => d.as_millis() as i128,
            Err(e) => -(e.duration().as_millis() as i128),
        })
    }
}

/// `status`: `/shared/db.lck: unknown, held by host pid 42; expires in 9.5s (<RFC 3339>)`,
/// or `/shared/db.lck: unlocked`.
pub fn status_text(status: &Status<'_>, mut out: impl Write) -> io::Result<()> {
    let path = status.lockfile.display();
    let state = status.state;
    match (&status.holder, status.expiration, status.expires_in_ms()) {
        (Some(d), Some(e), Some(ms)) => {
            let when = if ms >= 0 {
                format!("expires in {}", human(Duration::from_millis(ms as u64)))
            } else {
                format!("expired {} ago", human(Duration::from_millis((-ms) as u64)))
            };
            let at = rfc3339(e).map(|t| format!(" ({t})")).unwrap_or_default();
            writeln!(
                out,
                "{path}: {state}, held by {} pid {}; {when}{at}",
                d.hostname, d.pid
            )
        }
        _ => writeln!(out, "{path}: {state}"),
    }
}

/// The JSON object of `status --json` (keys in this order).
#[derive(Serialize)]
struct StatusJson<'a> {
    lockfile: Cow<'a, str>,
    state: &'static str,
    holder: Option<HolderJson<'a>>,
    expires_at: Option<String>,
    expires_in_ms: Option<i128>,
}

#[derive(Serialize)]
struct HolderJson<'a> {
    hostname: &'a str,
    pid: u32,
    claimfile: Cow<'a, str>,
}

/// `status --json`: one line, `{"lockfile": "/shared/db.lck", "state": "unlocked",
/// "holder": null, "expires_at": null, "expires_in_ms": null}` (the README shows a held
/// lock's).
pub fn status_json(status: &Status<'_>, mut out: impl Write) -> io::Result<()> {
    let json = StatusJson {
        lockfile: status.lockfile.to_string_lossy(),
        state: status.state.as_str(),
        holder: status.holder.as_ref().map(|d| HolderJson {
            hostname: &d.hostname,
            pid: d.pid,
            claimfile: d.claimfile.to_string_lossy(),
        }),
        expires_at: status.expiration.and_then(rfc3339),
        expires_in_ms: status.expires_in_ms(),
    };
    json.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, Spaced,
    ))?;
    writeln!(out)
}

/// serde_json's compact format with a space after `:` and `,`, as the command has always
/// printed it (and as Python's `json.dumps` does).
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known instants format as RFC 3339.
    #[test]
    fn rfc3339_known_values() {
        let t = |s: u64, ms: u64| rfc3339(at(s, ms)).unwrap();
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(t(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(t(1_795_000_000, 0), "2026-11-18T11:06:40.000Z");
    }

    /// Milliseconds are truncated; times before 1970 (a lock file's mtime can be) format
    /// too; times past the year 9999, which RFC 3339 cannot write, are `None`.
    #[test]
    fn rfc3339_edges() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_millis(315_619_200_000 - 500);
        assert_eq!(rfc3339(before).unwrap(), "1960-01-01T00:00:00.500Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_999_999);
        assert_eq!(rfc3339(t).unwrap(), "2026-11-18T11:06:40.999Z");
        assert_eq!(rfc3339(at(253_402_300_800, 0)), None);
    }

    fn at(s: u64, ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms)
    }

    fn render(status: &Status<'_>, json: bool) -> String {
        let mut out = Vec::new();
        if json {
            status_json(status, &mut out).unwrap();
        } else {
            status_text(status, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn held<'a>(lockfile: &'a Path, hostname: &str, expiration: SystemTime) -> Status<'a> {
        Status {
            lockfile,
            state: LockState::Unknown,
            holder: Some(Details {
                hostname: hostname.into(),
                pid: 42,
                lockfile: lockfile.into(),
                claimfile: lockfile.with_extension("lck|claim"),
            }),
            expiration: Some(expiration),
            now: at(1_795_000_000, 0),
        }
    }

    /// JSON strings escape quotes, backslashes and control characters.
    #[test]
    fn json_escapes() {
        let status = held(Path::new("/l.lck"), "a\"b\\c\n\u{1}", at(1_795_000_000, 0));
        let json = render(&status, true);
        assert!(json.contains(r#""hostname": "a\"b\\c\n\u0001""#), "{json}");
    }

    /// The JSON shape: keys in order, `": "` and `", "` between them, one line.
    #[test]
    fn status_json_shape() {
        let unlocked = Status {
            lockfile: Path::new("/s/db.lck"),
            state: LockState::Unlocked,
            holder: None,
            expiration: None,
            now: at(1_795_000_000, 0),
        };
        assert_eq!(
            render(&unlocked, true),
            "{\"lockfile\": \"/s/db.lck\", \"state\": \"unlocked\", \"holder\": null, \
             \"expires_at\": null, \"expires_in_ms\": null}\n"
        );
        let status = held(Path::new("/s/db.lck"), "h", at(1_795_000_009, 480));
        assert_eq!(
            render(&status, true),
            "{\"lockfile\": \"/s/db.lck\", \"state\": \"unknown\", \"holder\": {\"hostname\": \"h\", \
             \"pid\": 42, \"claimfile\": \"/s/db.lck|claim\"}, \"expires_at\": \
             \"2026-11-18T11:06:49.480Z\", \"expires_in_ms\": 9480}\n"
        );
    }

    /// The text form, for a live, an expired and an unlocked lock.
    #[test]
    fn status_text_forms() {
        let p = Path::new("/s/db.lck");
        assert_eq!(
            render(&held(p, "h", at(1_795_000_009, 480)), false),
            "/s/db.lck: unknown, held by h pid 42; expires in 9.5s (2026-11-18T11:06:49.480Z)\n"
        );
        assert_eq!(
            render(&held(p, "h", at(1_794_999_880, 0)), false),
            "/s/db.lck: unknown, held by h pid 42; expired 2m00s ago (2026-11-18T11:04:40.000Z)\n"
        );
        let mut unlocked = held(p, "h", at(0, 0));
        unlocked.state = LockState::Unlocked;
        unlocked.holder = None;
        assert_eq!(render(&unlocked, false), "/s/db.lck: unlocked\n");
    }
}
