//! Claim files: their names and contents, and the pure arithmetic of expiry and state.
//!
//! A claim is `<lockfile><SEP><hostname><SEP><pid><SEP><random>`, written into a file of that
//! name beside the lock file; the lock file is a hard link to it. This is flufl.lock 10.0.0's
//! format. Our `<random>` field is `<digits>.fl1` followed, where the platform can prove it,
//! by `.<boot id>.<pid namespace>.<time namespace>.<process start time>`: flufl.lock ignores
//! the field, and we use it to know that (a) the lock's expiry was written in the file
//! server's clock and (b) whether its holder ran on this machine, in this boot, pid namespace
//! and time namespace. (Claims of earlier builds carried no time namespace; they parse
//! without an origin, so their holders are recovered by expiry, never by a pid check.)

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The most of a lock file that is ever read. A claim is a path plus about 100 bytes.
pub(crate) const MAX_CLAIM_LEN: usize = 8 * 1024;

/// The marker in the random field that tells a claim written by this library.
const OURS: &str = "fl1";

/// Who holds a lock, as read from the lock file: flufl.lock's `details`.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
/// lock.lock()?;
/// let flufl_lock::Details { hostname, pid, lockfile, claimfile } = lock.details()?;
/// assert_eq!((hostname.as_str(), pid, lockfile.as_path(), claimfile.as_path()),
///            (lock.hostname(), std::process::id(), lock.lockfile(), lock.claimfile()));
/// # Ok::<(), flufl_lock::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// The host name the holder wrote (Python's `socket.getfqdn()` on its machine).
    pub hostname: String,
    /// The holder's process id, in its own pid namespace.
    pub pid: u32,
    /// The lock file's path as the holder wrote it.
    pub lockfile: PathBuf,
    /// The holder's claim file: the lock file's whole content.
    pub claimfile: PathBuf,
}

/// The identity a claim of ours carries beyond flufl.lock's four fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// Kernel boot id, 32 hex digits.
    pub boot_id: String,
    /// Inode of the holder's pid namespace.
    pub pid_ns: u64,
    /// Inode of the holder's time namespace (0: a kernel without time namespaces).
    pub time_ns: u64,
    /// Holder's start time in clock ticks since boot.
    pub start_time: u64,
}

/// A parsed claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub details: Details,
    /// The claim file's own path: the whole content.
    pub path: PathBuf,
    /// Written by this library (expiry in the server's clock).
    pub ours: bool,
    /// Proof of where the holder ran, when it carried one.
    pub origin: Option<Origin>,
}

pub(crate) fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
    }
}

pub(crate) fn path_to_bytes(path: &std::path::Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        path.to_string_lossy().into_owned().into_bytes()
    }
}

/// Builds our random field.
pub(crate) fn random_field(random: u64, origin: Option<&Origin>) -> String {
    // flufl.lock draws from 0..=sys.maxsize; keep to the same range.
    let random = random & (i64::MAX as u64);
    match origin {
        Some(o) => format!(
            "{random}.{OURS}.{}.{}.{}.{}",
            o.boot_id, o.pid_ns, o.time_ns, o.start_time
        ),
        None => format!("{random}.{OURS}"),
    }
}

/// The claim file name (and content) for a lock: `lock SEP host SEP pid SEP random`.
pub(crate) fn claim_path(
    lockfile: &std::path::Path,
    sep: char,
    host: &str,
    pid: u32,
    random: &str,
) -> PathBuf {
    let mut s: OsString = lockfile.as_os_str().to_owned();
    let mut tail = String::new();
    for part in [host, &pid.to_string(), random] {
        tail.push(sep);
        tail.push_str(part);
    }
    s.push(tail);
    PathBuf::from(s)
}

/// `path` with `suffix` appended to its last component.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The break marker of a lock: `<lock>.break`.
pub(crate) fn marker_path(lock: &Path) -> PathBuf {
    with_suffix(lock, ".break")
}

/// The private name a breaker of ours renames a lock (or a stale marker) to: `<claim>.brk`.
pub(crate) fn taken_path(claim: &Path) -> PathBuf {
    with_suffix(claim, ".brk")
}

/// The private probe file that reads the server's clock: `<claim>.clk`.
pub(crate) fn probe_path(claim: &Path) -> PathBuf {
    with_suffix(claim, ".clk")
}

/// Whether `name` is a claim file name for the lock named `lock_name`:
/// `<lock name><SEP>...`, with separator `sep` or the other platform's.
pub(crate) fn is_claim_name(lock_name: &OsStr, sep: char, name: &OsStr) -> bool {
    let lock = path_to_bytes(Path::new(lock_name));
    let name = path_to_bytes(Path::new(name));
    name.len() > lock.len() + 1
        && name.starts_with(&lock)
        && [sep, if sep == '|' { '^' } else { '|' }]
            .iter()
            .any(|c| name[lock.len()..].starts_with(c.to_string().as_bytes()))
}

fn parse_origin(random: &str) -> (bool, Option<Origin>) {
    let mut parts = random.split('.');
    let _digits = parts.next();
    if parts.next() != Some(OURS) {
        return (false, None);
    }
    let rest: Vec<&str> = parts.collect();
    let origin = match rest.as_slice() {
        [boot, ns, tns, start]
            if boot.len() == 32 && boot.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            match (ns.parse(), tns.parse(), start.parse()) {
                (Ok(pid_ns), Ok(time_ns), Ok(start_time)) => Some(Origin {
                    boot_id: boot.to_ascii_lowercase(),
                    pid_ns,
                    time_ns,
                    start_time,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    (true, origin)
}

/// Parses a lock file's content with separator `sep`. Like flufl.lock, surrounding white
/// space is ignored; unlike it, a lock path that itself contains `sep` still parses (the
/// last three fields are split off from the right). `None` when it is not a claim.
pub(crate) fn parse(content: &[u8], sep: char) -> Option<Claim> {
    let mut buf = [0u8; 4];
    let sep_bytes = sep.encode_utf8(&mut buf).as_bytes();
    let content = trim(content);
    if content.is_empty() || content.len() > MAX_CLAIM_LEN || content.contains(&0) {
        return None;
    }
    // Split off random, pid, host from the right.
    let mut fields: Vec<&[u8]> = Vec::with_capacity(4);
    let mut rest = content;
    for _ in 0..3 {
        let at = find_last(rest, sep_bytes)?;
        fields.push(&rest[at + sep_bytes.len()..]);
        rest = &rest[..at];
    }
    let (random, pid, host, lock) = (fields[0], fields[1], fields[2], rest);
    if lock.is_empty() || host.is_empty() {
        return None;
    }
    let host = std::str::from_utf8(host).ok()?;
    let pid_str = std::str::from_utf8(pid).ok()?;
    // Python's int() accepts surrounding blanks and a sign; a claim's pid never has them.
    if pid_str.is_empty() || !pid_str.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: u32 = pid_str.parse().ok()?;
    let random = std::str::from_utf8(random).ok()?;
    let (ours, origin) = parse_origin(random);
    Some(Claim {
        details: Details {
            hostname: host.to_string(),
            pid,
            lockfile: bytes_to_path(lock),
            claimfile: bytes_to_path(content),
        },
        path: bytes_to_path(content),
        ours,
        origin,
    })
}

/// Parses with `sep`, then with the other platform's separator (`|` or `^`), so that a lock
/// written by flufl.lock on the other platform family is still understood.
pub(crate) fn parse_any(content: &[u8], sep: char) -> Option<Claim> {
    parse(content, sep).or_else(|| {
        let other = if sep == '|' { '^' } else { '|' };
        parse(content, other)
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| &hay[i..i + needle.len()] == needle)
}

fn to_nanos(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The file server's clock, learned from a time the server stamped on a file during one of our
/// calls, and carried forward on our boot clock ([`crate::sys::Fs::boot_clock`], which runs on
/// while the machine is suspended, unlike the monotonic clock).
///
/// It is known only within bounds, and each use takes the safe one:
/// - **at least** `server + (now - after)`: the stamp was made before the call returned at
///   `after`, and stored times are truncated to the filesystem's granularity, never rounded
///   up. Judging others' locks uses this, so a lock is never judged expired early.
/// - **at most** `server + granularity + (now - before)`: the stamp was made after the call
///   began at `before`. Our own lease's deadline uses this, so the holder never believes its
///   lock lasts longer than the file says, however slow the calls were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerClock {
    server: SystemTime,
    before: Duration,
    after: Duration,
    granularity: Duration,
}

impl ServerClock {
    /// The server stamped `server` during a call made between boot-clock times `before` and
    /// `after`. The timestamp granularity is guessed from the stamp.
    pub fn learn(server: SystemTime, before: Duration, after: Duration) -> ServerClock {
        ServerClock {
            server,
            before: before.min(after),
            after,
            granularity: granularity_of(server),
        }
    }

    /// The least the server's time can be at boot-clock time `now`.
    pub fn now(&self, now: Duration) -> SystemTime {
        add_signed(self.server, nanos(now) - nanos(self.after))
    }

    /// The expiry to write for a lease of `lifetime` taken at boot-clock time `now`: a
    /// `lifetime` after the least the server's time can be then, on a multiple of the
    /// granularity (so storing it truncates nothing). With coarse timestamps (1 ms or
    /// coarser) the granularity is added and the sum rounded up, so a truncated stamp does
    /// not cost the holder a second of its lease; with fine ones it is rounded down, so the
    /// file never says more than a lifetime. A slow call is not added:
    /// [`ServerClock::deadline`] takes it off the holder's own belief instead.
    pub fn expiry(&self, now: Duration, lifetime: Duration) -> SystemTime {
        let g = self.granularity.as_nanos().max(1) as i128;
        let coarse = self.granularity >= Duration::from_millis(1);
        let t = to_nanos(self.server)
            .saturating_add(nanos(now) - nanos(self.after))
            .saturating_add(lifetime.as_nanos() as i128)
            .saturating_add(if coarse { 2 * g - 1 } else { 0 });
        from_nanos(t.div_euclid(g).saturating_mul(g).min(LATEST_EXPIRY))
    }

    /// The boot-clock time until which a lock whose file says it expires at `expiry` is
    /// surely unexpired: until then the server's time is, at most, `expiry`.
    pub fn deadline(&self, expiry: SystemTime) -> Duration {
        let d = nanos(self.before) + to_nanos(expiry)
            - to_nanos(self.server)
            - self.granularity.as_nanos() as i128;
        Duration::from_nanos(d.clamp(0, u64::MAX as i128) as u64)
    }

    /// How far this clock's least estimate lags `other`'s at boot-clock time `now`: how much
    /// an expiry written with this clock falls short, if `other` is the fresher reading.
    pub fn behind(&self, other: &ServerClock, now: Duration) -> Duration {
        let d = to_nanos(other.now(now)) - to_nanos(self.now(now));
        Duration::from_nanos(d.clamp(0, u64::MAX as i128) as u64)
    }

    /// The timestamp granularity guessed from the stamp.
    pub fn granularity(&self) -> Duration {
        self.granularity
    }
}

/// The latest expiry written, in ns since the epoch: 2038-01-19, the last second that
/// every filesystem stores (ext4 with 128-byte inodes, XFS without bigtime, 32-bit
/// `time_t`). A later time could be stored clamped, shorter than the holder believes; an
/// absurd lifetime gives a lock that lasts until then.
const LATEST_EXPIRY: i128 = i32::MAX as i128 * 1_000_000_000;

/// The coarsest common granularity a stored time shows: 1 s for whole seconds (ext3, ext4
/// with 128-byte inodes, HFS+), then 1 ms, 1 µs (NFSv3 from some servers), 100 ns (NTFS),
/// else 1 ns. A finer filesystem that happened to stamp a round time makes us round expiries
/// up a little more than needed, never less. (FAT's 2 s do not matter: FAT has no hard
/// links, so no lock of this kind works on it.)
fn granularity_of(t: SystemTime) -> Duration {
    let sub = to_nanos(t).rem_euclid(1_000_000_000);
    [1_000_000_000u64, 1_000_000, 1_000, 100]
        .into_iter()
        .find(|g| sub % *g as i128 == 0)
        .map_or(Duration::from_nanos(1), Duration::from_nanos)
}

fn nanos(d: Duration) -> i128 {
    d.as_nanos() as i128
}

fn from_nanos(n: i128) -> SystemTime {
    add_signed(SystemTime::UNIX_EPOCH, n)
}

fn add_signed(t: SystemTime, n: i128) -> SystemTime {
    let d = Duration::from_nanos(n.unsigned_abs().min(u64::MAX as u128) as u64);
    if n >= 0 {
        t.checked_add(d).unwrap_or(t)
    } else {
        t.checked_sub(d).unwrap_or(t)
    }
}

/// Whether a lock whose file says it expires at `expiry` has expired at `now` (both in the
/// same clock), allowing `slop` for clocks we cannot reconcile.
pub(crate) fn expired(expiry: SystemTime, now: SystemTime, slop: Duration) -> bool {
    to_nanos(now) > to_nanos(expiry) + slop.as_nanos() as i128
}

/// How long until `expiry` (+ `slop`) at `now`; zero if already past.
pub(crate) fn time_left(expiry: SystemTime, now: SystemTime, slop: Duration) -> Duration {
    let left = to_nanos(expiry) + slop.as_nanos() as i128 - to_nanos(now);
    if left <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(left.min(u64::MAX as i128) as u64)
    }
}

/// flufl.lock's six lock states.
///
/// # Examples
///
/// ```
/// use flufl_lock::LockState;
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
/// assert_eq!(lock.state()?.as_str(), "unlocked");
/// lock.lock()?;
/// assert_eq!(lock.state()?, LockState::Ours);
/// # Ok::<(), flufl_lock::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockState {
    /// There is no lock file.
    Unlocked,
    /// We hold the lock and it has not expired.
    Ours,
    /// We hold the lock but it has expired; another process may break it.
    OursExpired,
    /// Someone else's lock whose holder is known to be gone (it ran on this host and its
    /// process no longer exists).
    Stale,
    /// Someone else's lock that has expired; a waiter will break it.
    TheirsExpired,
    /// Someone else's live lock, or a lock whose content cannot be read as a claim.
    Unknown,
}

impl LockState {
    /// The name flufl.lock gives this state (`unlocked`, `ours`, `ours_expired`, `stale`,
    /// `theirs_expired`, `unknown`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(flufl_lock::LockState::TheirsExpired.as_str(), "theirs_expired");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            LockState::Unlocked => "unlocked",
            LockState::Ours => "ours",
            LockState::OursExpired => "ours_expired",
            LockState::Stale => "stale",
            LockState::TheirsExpired => "theirs_expired",
            LockState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for LockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the process that wrote a claim is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Proven gone (same host, boot and pid namespace; no such process, a zombie, or its
    /// pid now belongs to a process started later).
    Dead,
    /// Running, as far as we can tell.
    Alive,
    /// Cannot be known from here.
    Unknown,
}

/// The facts `state()` is decided from; kept pure so it can be property-tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    /// A lock file exists.
    pub present: bool,
    /// Its content parses as a claim.
    pub parsed: bool,
    /// It is the same file as our claim.
    pub ours: bool,
    /// Its expiry has passed.
    pub expired: bool,
    /// Liveness of its holder.
    pub liveness: Liveness,
}

/// flufl.lock's state logic, with our stronger proofs: ours when the lock is our file;
/// stale when its holder is proven gone; theirs_expired when expired; else unknown.
pub(crate) fn classify(f: Facts) -> LockState {
    if !f.present {
        return LockState::Unlocked;
    }
    if f.ours {
        return if f.expired {
            LockState::OursExpired
        } else {
            LockState::Ours
        };
    }
    if !f.parsed {
        return LockState::Unknown;
    }
    match (f.liveness, f.expired) {
        (Liveness::Dead, _) => LockState::Stale,
        (_, true) => LockState::TheirsExpired,
        _ => LockState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origin() -> Origin {
        Origin {
            boot_id: "bc80367d307347aab258975974cfa98a".into(),
            pid_ns: 4026531836,
            time_ns: 4026531834,
            start_time: 12345,
        }
    }

    /// The private names hang off the lock's and the claim's names; claim names of a lock
    /// are told from other files beside it, with either platform's separator.
    #[test]
    fn names() {
        assert_eq!(
            marker_path(Path::new("/l/x.lck")),
            PathBuf::from("/l/x.lck.break")
        );
        assert_eq!(
            taken_path(Path::new("/l/x.lck|h|1|2")),
            PathBuf::from("/l/x.lck|h|1|2.brk")
        );
        assert_eq!(
            probe_path(Path::new("/l/x.lck|h|1|2")),
            PathBuf::from("/l/x.lck|h|1|2.clk")
        );
        let yes = |n: &str| is_claim_name(OsStr::new("x.lck"), '|', OsStr::new(n));
        assert!(yes("x.lck|h|1|2"));
        assert!(yes("x.lck^h^1^2"));
        assert!(!yes("x.lck"));
        assert!(!yes("x.lck|"));
        assert!(!yes("x.lck.break"));
        assert!(!yes("y.lck|h|1|2"));
        assert!(!yes("x.lckz|h"));
    }

    /// A claim name is lock, host, pid and random joined by the separator, as flufl writes it.
    #[test]
    fn claim_name_layout() {
        let p = claim_path("/var/lock/x.lck".as_ref(), '|', "host.example", 42, "7.fl1");
        assert_eq!(p, PathBuf::from("/var/lock/x.lck|host.example|42|7.fl1"));
    }

    /// Our claims parse back, with origin; flufl's parse as foreign (not ours, no origin).
    #[test]
    fn parse_ours_and_flufls() {
        let r = random_field(99, Some(&origin()));
        let p = claim_path("/l".as_ref(), '|', "h", 7, &r);
        let c = parse(&path_to_bytes(&p), '|').unwrap();
        assert!(c.ours);
        assert_eq!(c.origin, Some(origin()));
        assert_eq!(c.details.pid, 7);
        assert_eq!(c.details.hostname, "h");
        assert_eq!(c.details.lockfile, PathBuf::from("/l"));
        assert_eq!(c.path, p);

        let c = parse(b"/tmp/l|localhost|1234|5577006791947779410\n", '|').unwrap();
        assert!(!c.ours);
        assert_eq!(c.origin, None);
        assert_eq!(c.details.pid, 1234);
    }

    /// Garbage, empty content, a non-integer pid and too few fields are not claims.
    #[test]
    fn parse_rejects_non_claims() {
        for bad in [
            &b""[..],
            b"   ",
            b"hello",
            b"/l|h|notapid|1",
            b"/l|h|-1|1",
            b"|h|1|1",
            b"/l||1|1",
            b"/l|h|99999999999|1",
            b"/l|h|1\0|1",
        ] {
            assert_eq!(parse(bad, '|'), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// A lock path containing the separator still parses, from the right.
    #[test]
    fn parse_separator_in_path() {
        let c = parse(b"/tmp/a|b.lock|host|12|34", '|').unwrap();
        assert_eq!(c.details.lockfile, PathBuf::from("/tmp/a|b.lock"));
        assert_eq!(c.details.hostname, "host");
    }

    /// A Windows-written claim (`^`) is understood on POSIX, and the other way round.
    #[test]
    fn parse_other_platform_separator() {
        assert_eq!(parse_any(b"C:\\l^h^3^4", '|').unwrap().details.pid, 3);
        assert_eq!(parse_any(b"/l|h|3|4", '^').unwrap().details.pid, 3);
    }

    /// The learned server clock runs on from what the server said, on the boot clock given.
    #[test]
    fn server_clock_runs_on_the_boot_clock() {
        let server = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_000_000_123);
        let c = ServerClock::learn(server, Duration::from_secs(50), Duration::from_secs(51));
        assert_eq!(c.now(Duration::from_secs(51)), server);
        assert_eq!(
            c.now(Duration::from_secs(61)),
            server + Duration::from_secs(10)
        );
    }

    /// The holder's deadline never passes the written expiry in the server's clock: a slow
    /// call (1 s between `before` and `after`) shortens the deadline by that second.
    #[test]
    fn deadline_takes_the_slow_call_off_the_lease() {
        let server = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_000_000_123);
        let c = ServerClock::learn(server, Duration::from_secs(50), Duration::from_secs(51));
        let lifetime = Duration::from_secs(4);
        let e = c.expiry(Duration::from_secs(51), lifetime);
        // Written: a lifetime after the least server time (plus 1 ns of granularity).
        assert!(e >= server + lifetime);
        assert!(e <= server + lifetime + Duration::from_micros(1));
        // Surely unexpired until boot time 54 (= 50 + 4, the call began at 50), not 55.
        let d = c.deadline(e);
        assert!(d >= Duration::from_secs(54) - Duration::from_micros(1));
        assert!(d <= Duration::from_secs(54));
    }

    /// On a filesystem with 1-second timestamps the expiry is rounded up to a whole second
    /// and the deadline allows for the truncated stamp.
    #[test]
    fn coarse_timestamps_round_the_expiry_up() {
        let server = SystemTime::UNIX_EPOCH + Duration::from_secs(1001);
        let c = ServerClock::learn(server, Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(c.granularity(), Duration::from_secs(1));
        let e = c.expiry(Duration::from_secs(10), Duration::from_millis(1900));
        // The server's time was in [1001, 1002): 1002 + 1.9 s, rounded up to 1004.
        assert_eq!(e, SystemTime::UNIX_EPOCH + Duration::from_secs(1004));
        // Surely unexpired while the server's time is at most 1004: for 2 s after `before`.
        assert_eq!(c.deadline(e), Duration::from_secs(12));
        let even = ServerClock::learn(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(even.granularity(), Duration::from_secs(1));
        let micros = ServerClock::learn(
            SystemTime::UNIX_EPOCH + Duration::from_micros(1_000_000_017),
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(micros.granularity(), Duration::from_micros(1));
    }

    /// A fresher reading that is ahead says how far an older estimate fell behind (a suspend
    /// the clock missed, a step of the server's clock).
    #[test]
    fn behind_measures_a_stale_estimate() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(s * 1_000_000_000 + 7);
        let old = ServerClock::learn(t(100), Duration::ZERO, Duration::ZERO);
        let fresh = ServerClock::learn(t(118), Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(
            old.behind(&fresh, Duration::from_secs(10)),
            Duration::from_secs(8)
        );
        assert_eq!(fresh.behind(&old, Duration::from_secs(10)), Duration::ZERO);
    }

    /// Expiry includes the slop: not expired at expiry + slop, expired just after.
    #[test]
    fn expiry_with_slop() {
        let e = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let slop = Duration::from_secs(10);
        assert!(!expired(e, e + slop, slop));
        // 100 ns: Windows' SystemTime resolution.
        assert!(expired(e, e + slop + Duration::from_nanos(100), slop));
        assert_eq!(time_left(e, e, slop), slop);
        assert_eq!(
            time_left(e, e + Duration::from_secs(60), slop),
            Duration::ZERO
        );
    }

    /// The six states follow flufl.lock's meanings.
    #[test]
    fn classify_states() {
        let f = Facts {
            present: true,
            parsed: true,
            ours: false,
            expired: false,
            liveness: Liveness::Alive,
        };
        assert_eq!(
            classify(Facts {
                present: false,
                ..f
            }),
            LockState::Unlocked
        );
        assert_eq!(classify(Facts { ours: true, ..f }), LockState::Ours);
        assert_eq!(
            classify(Facts {
                ours: true,
                expired: true,
                ..f
            }),
            LockState::OursExpired
        );
        assert_eq!(
            classify(Facts {
                liveness: Liveness::Dead,
                ..f
            }),
            LockState::Stale
        );
        assert_eq!(
            classify(Facts { expired: true, ..f }),
            LockState::TheirsExpired
        );
        assert_eq!(classify(f), LockState::Unknown);
        assert_eq!(classify(Facts { parsed: false, ..f }), LockState::Unknown);
    }

    proptest! {
        /// The parser never panics and never reads a claim out of more than MAX_CLAIM_LEN.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), sep in prop::sample::select(vec!['|', '^'])) {
            if let Some(c) = parse_any(&bytes, sep) {
                prop_assert!(bytes.len() <= MAX_CLAIM_LEN + 64 || trim(&bytes).len() <= MAX_CLAIM_LEN);
                prop_assert!(!c.details.hostname.is_empty());
            }
        }

        /// Any claim we write parses back to exactly what we wrote.
        #[test]
        fn roundtrip(lock in "/[a-zA-Z0-9_./ |-]{1,40}", host in "[a-zA-Z0-9.-]{1,30}", pid in 0u32.., rnd in any::<u64>(), with_origin in any::<bool>()) {
            let o = origin();
            let r = random_field(rnd, if with_origin { Some(&o) } else { None });
            let p = claim_path(lock.trim_end().as_ref(), '|', &host, pid, &r);
            prop_assume!(!lock.trim_end().is_empty() && lock.trim_end() == lock);
            let c = parse(&path_to_bytes(&p), '|').unwrap();
            prop_assert_eq!(c.details.pid, pid);
            prop_assert_eq!(&c.details.hostname, &host);
            prop_assert_eq!(c.details.lockfile, PathBuf::from(&lock));
            prop_assert!(c.ours);
            prop_assert_eq!(c.origin.is_some(), with_origin);
        }

        /// State logic: "ours" only for our own file; a live or unknown holder's unexpired
        /// lock is never called stale or expired; a proven-dead holder is always stale.
        #[test]
        fn classify_props(present in any::<bool>(), parsed in any::<bool>(), ours in any::<bool>(), expired in any::<bool>(), l in 0..3u8) {
            let liveness = [Liveness::Dead, Liveness::Alive, Liveness::Unknown][l as usize];
            let s = classify(Facts { present, parsed, ours, expired, liveness });
            if !present { prop_assert_eq!(s, LockState::Unlocked); }
            if matches!(s, LockState::Ours | LockState::OursExpired) { prop_assert!(ours && present); }
            if present && !ours && parsed && liveness == Liveness::Dead { prop_assert_eq!(s, LockState::Stale); }
            if present && !ours && !expired && liveness != Liveness::Dead { prop_assert_eq!(s, LockState::Unknown); }
        }
    }
}
