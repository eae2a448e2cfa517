//! nfs-bridge: a FUSE file system that forwards each operation to an NFSv3
//! server, so that ordinary file calls on this machine (whose kernel has no NFS
//! client) get real NFS server behaviour. Test infrastructure for flufl-lock's
//! NFS test bed; see ../README.md.
//!
//! One FUSE operation maps to one NFS call (open adds the GETATTR an NFS
//! client makes for close-to-open consistency, an O_APPEND write the GETATTR
//! for the current size). Counts every NFS call per procedure, and can inject
//! faults: lost replies of non-idempotent calls (the call is performed, its
//! reply "lost", and the caller sees the error a retransmission gets: EEXIST
//! for LINK/CREATE, ENOENT for REMOVE/RENAME; optionally the call really is
//! sent again), and delayed replies.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, MountOption, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Client, Nfs3ConnectionBuilder};
use tokio::net::TcpStream;

type Client = Nfs3Client<TokioIo<TcpStream>>;

// ---------------------------------------------------------------- options

const USAGE: &str = "\
usage: nfs-bridge --export PATH --mountpoint DIR [options]
  --server ADDR          NFS server address (default 127.0.0.1)
  --nfs-port N           NFS port (default 2049)
  --mount-port N         MOUNT port (default 20048)
  --export PATH          exported path to mount (NFSv3: the server's real path)
  --mountpoint DIR       where to mount the bridge
  --name NAME            label used in stats and logs (default: mountpoint)
  --attr-timeout MS      FUSE attribute/entry cache time, like an NFS client's
                         attribute cache (default 0 = none). With MS > 0, open()
                         drops the cached attributes (close-to-open).
  --negative-timeout MS  cache 'name does not exist' answers for MS (default 0)
  --lose-reply SPEC      lose replies: OP[:every=N|:p=P|:first=N][:match=SUBSTR][:resend]
                         OP is link, create (exclusive create), remove or rename;
                         repeatable, or comma-separated. The call is performed,
                         its reply dropped, and the caller gets what a
                         retransmission gets: EEXIST (link, create) or ENOENT
                         (remove, rename) after a call that took effect. With
                         :resend the call is really sent again (new XID) and
                         its reply returned: it may then act on a name another
                         client re-created in between.
  --lose-max N           lose at most N replies in total
  --delay-ms N           delay every NFS reply by N ms
  --delay-ops LIST       comma list of procedures (getattr,lookup,link,...) the
                         delay applies to (default: all)
  --seed N               seed for probabilistic losses
  --stats-file PATH      write per-procedure NFS call counts (JSON) here on
                         SIGUSR1 and at exit
  --threads N            FUSE worker threads (default 4)
  --connections N        NFS TCP connections (default 4)
  --call-timeout MS      give up on an NFS call after MS, returning EIO (default 30000)
  --connect-timeout MS   keep trying to reach the server for MS at start (default 15000)
  --uid N --gid N        AUTH_UNIX credential (default 0 0)
  --machine-name NAME    AUTH_UNIX machine name (default: the host name)
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
enum Proc {
    Null = 0,
    Getattr,
    Setattr,
    Lookup,
    Access,
    Readlink,
    Read,
    Write,
    Create,
    Mkdir,
    Symlink,
    Mknod,
    Remove,
    Rmdir,
    Rename,
    Link,
    Readdir,
    Readdirplus,
    Fsstat,
    Fsinfo,
    Pathconf,
    Commit,
}

const PROC_NAMES: [&str; 22] = [
    "NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE", "CREATE",
    "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR", "READDIRPLUS",
    "FSSTAT", "FSINFO", "PATHCONF", "COMMIT",
];
const ALL_PROCS: [Proc; 22] = [
    Proc::Null,
    Proc::Getattr,
    Proc::Setattr,
    Proc::Lookup,
    Proc::Access,
    Proc::Readlink,
    Proc::Read,
    Proc::Write,
    Proc::Create,
    Proc::Mkdir,
    Proc::Symlink,
    Proc::Mknod,
    Proc::Remove,
    Proc::Rmdir,
    Proc::Rename,
    Proc::Link,
    Proc::Readdir,
    Proc::Readdirplus,
    Proc::Fsstat,
    Proc::Fsinfo,
    Proc::Pathconf,
    Proc::Commit,
];

fn proc_by_name(name: &str) -> Option<Proc> {
    let up = name.to_ascii_uppercase();
    PROC_NAMES.iter().position(|n| *n == up).map(|i| ALL_PROCS[i])
}

#[derive(Clone, Debug)]
enum LoseMode {
    Every(u64),
    Prob(f64),
    First(u64),
}

#[derive(Clone, Debug)]
struct LoseRule {
    proc: Proc,
    mode: LoseMode,
    matching: Option<Vec<u8>>,
    resend: bool,
}

#[derive(Clone, Debug)]
struct Opts {
    server: String,
    nfs_port: u16,
    mount_port: u16,
    export: String,
    mountpoint: PathBuf,
    name: String,
    attr_timeout: Duration,
    negative_timeout: Duration,
    lose: Vec<LoseRule>,
    lose_max: Option<u64>,
    delay: Duration,
    delay_ops: Option<Vec<Proc>>,
    seed: u64,
    stats_file: Option<PathBuf>,
    threads: usize,
    connections: usize,
    call_timeout: Duration,
    connect_timeout: Duration,
    uid: u32,
    gid: u32,
    machine_name: String,
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("nfs-bridge: {msg}");
    std::process::exit(2);
}

fn parse_lose(spec: &str) -> LoseRule {
    let mut parts = spec.split(':');
    let op = parts.next().unwrap_or("");
    let proc = match op {
        "link" => Proc::Link,
        "create" => Proc::Create,
        "remove" | "unlink" => Proc::Remove,
        "rename" => Proc::Rename,
        _ => die(format!("--lose-reply: unknown operation {op:?} (link, create, remove, rename)")),
    };
    let mut rule = LoseRule { proc, mode: LoseMode::Every(1), matching: None, resend: false };
    for p in parts {
        if p == "resend" {
            rule.resend = true;
            continue;
        }
        let (k, v) = p.split_once('=').unwrap_or_else(|| die(format!("--lose-reply: bad part {p:?}")));
        match k {
            "every" => rule.mode = LoseMode::Every(v.parse().unwrap_or_else(|_| die("--lose-reply every=N"))),
            "p" => rule.mode = LoseMode::Prob(v.parse().unwrap_or_else(|_| die("--lose-reply p=P"))),
            "first" => rule.mode = LoseMode::First(v.parse().unwrap_or_else(|_| die("--lose-reply first=N"))),
            "match" => rule.matching = Some(v.as_bytes().to_vec()),
            _ => die(format!("--lose-reply: unknown key {k:?}")),
        }
    }
    if let LoseMode::Every(0) = rule.mode {
        die("--lose-reply every=0");
    }
    rule
}

fn parse_args() -> Opts {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "nfs-bridge".into());
    let mut o = Opts {
        server: "127.0.0.1".into(),
        nfs_port: 2049,
        mount_port: 20048,
        export: String::new(),
        mountpoint: PathBuf::new(),
        name: String::new(),
        attr_timeout: Duration::ZERO,
        negative_timeout: Duration::ZERO,
        lose: Vec::new(),
        lose_max: None,
        delay: Duration::ZERO,
        delay_ops: None,
        seed: 0,
        stats_file: None,
        threads: 4,
        connections: 4,
        call_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(15),
        uid: 0,
        gid: 0,
        machine_name: host,
    };
    let mut args = std::env::args().skip(1);
    let ms = |v: String| Duration::from_millis(v.parse().unwrap_or_else(|_| die(format!("not a number of ms: {v}"))));
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next()).unwrap_or_else(|| die(format!("{key} needs a value")));
        match key.as_str() {
            "--server" => o.server = val(),
            "--nfs-port" => o.nfs_port = val().parse().unwrap_or_else(|_| die("--nfs-port")),
            "--mount-port" => o.mount_port = val().parse().unwrap_or_else(|_| die("--mount-port")),
            "--export" => o.export = val(),
            "--mountpoint" => o.mountpoint = PathBuf::from(val()),
            "--name" => o.name = val(),
            "--attr-timeout" => o.attr_timeout = ms(val()),
            "--negative-timeout" => o.negative_timeout = ms(val()),
            "--lose-reply" => {
                let v = val();
                for spec in v.split(',').filter(|s| !s.is_empty()) {
                    o.lose.push(parse_lose(spec));
                }
            }
            "--lose-max" => o.lose_max = Some(val().parse().unwrap_or_else(|_| die("--lose-max"))),
            "--delay-ms" => o.delay = ms(val()),
            "--delay-ops" => {
                let v = val();
                o.delay_ops = Some(
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| proc_by_name(s).unwrap_or_else(|| die(format!("--delay-ops: unknown procedure {s}"))))
                        .collect(),
                )
            }
            "--seed" => o.seed = val().parse().unwrap_or_else(|_| die("--seed")),
            "--stats-file" => o.stats_file = Some(PathBuf::from(val())),
            "--threads" => o.threads = val().parse().unwrap_or_else(|_| die("--threads")),
            "--connections" => o.connections = val().parse().unwrap_or_else(|_| die("--connections")),
            "--call-timeout" => o.call_timeout = ms(val()),
            "--connect-timeout" => o.connect_timeout = ms(val()),
            "--uid" => o.uid = val().parse().unwrap_or_else(|_| die("--uid")),
            "--gid" => o.gid = val().parse().unwrap_or_else(|_| die("--gid")),
            "--machine-name" => o.machine_name = val(),
            _ => die(format!("unknown option {a}\n{USAGE}")),
        }
    }
    if o.export.is_empty() || o.mountpoint.as_os_str().is_empty() {
        die(format!("--export and --mountpoint are required\n{USAGE}"));
    }
    if o.name.is_empty() {
        o.name = o.mountpoint.display().to_string();
    }
    o.threads = o.threads.max(1);
    o.connections = o.connections.max(1);
    if o.seed == 0 {
        o.seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
    }
    o
}

// ---------------------------------------------------------------- shared state

struct Stats {
    calls: [AtomicU64; 22],
    lost: [AtomicU64; 22],
    delayed: AtomicU64,
    jukebox: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
    seq: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            lost: std::array::from_fn(|_| AtomicU64::new(0)),
            delayed: AtomicU64::new(0),
            jukebox: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            seq: AtomicU64::new(0),
        }
    }

    fn json(&self, name: &str, seq: u64) -> String {
        let mut s = String::new();
        let mut total = 0u64;
        s.push_str(&format!(
            "{{\"bridge\":{},\"pid\":{},\"seq\":{},\"time\":{:.6},\"nfs\":{{",
            json_str(name),
            std::process::id(),
            seq,
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
        ));
        let mut first = true;
        for (i, n) in PROC_NAMES.iter().enumerate() {
            let c = self.calls[i].load(Ordering::Relaxed);
            total += c;
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(&format!("\"{n}\":{c}"));
        }
        s.push_str(&format!("}},\"nfs_total\":{total},\"lost_replies\":{{"));
        let mut first = true;
        let mut lost_total = 0;
        for (i, n) in PROC_NAMES.iter().enumerate() {
            let c = self.lost[i].load(Ordering::Relaxed);
            if c == 0 {
                continue;
            }
            lost_total += c;
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(&format!("\"{n}\":{c}"));
        }
        s.push_str(&format!(
            "}},\"lost_total\":{lost_total},\"delayed\":{},\"jukebox\":{},\"transport_errors\":{},\"connects\":{}}}\n",
            self.delayed.load(Ordering::Relaxed),
            self.jukebox.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.reconnects.load(Ordering::Relaxed)
        ));
        s
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn write_stats(opts: &Opts, stats: &Stats) {
    let Some(path) = &opts.stats_file else { return };
    let seq = stats.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let body = stats.json(&opts.name, seq);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(body.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        eprintln!("nfs-bridge[{}]: cannot write stats to {}: {e}", opts.name, path.display());
    }
}

struct Inodes {
    by_ino: HashMap<u64, nfs_fh3>,
    by_fh: HashMap<Vec<u8>, u64>,
    next: u64,
}

struct Faults {
    seen: HashMap<usize, u64>,
    lost_total: u64,
    rng: u64,
}

struct Pool {
    conns: Vec<tokio::sync::Mutex<Option<Client>>>,
    next: AtomicUsize,
}

struct Bridge {
    opts: Opts,
    stats: Arc<Stats>,
    pool: Pool,
    inodes: Mutex<Inodes>,
    faults: Mutex<Faults>,
    dirs: Mutex<HashMap<u64, Vec<(u64, FileType, OsString)>>>,
    next_dir: AtomicU64,
    notifier: Arc<OnceLock<Notifier>>,
    rt: tokio::runtime::Runtime,
}

fn credential(opts: &Opts) -> opaque_auth<'static> {
    let au = auth_unix {
        stamp: std::process::id(),
        machinename: Opaque::owned(opts.machine_name.as_bytes().to_vec()),
        uid: opts.uid,
        gid: opts.gid,
        gids: vec![],
    };
    opaque_auth::auth_unix(&au)
}

/// Connects (MOUNT + NFS connection) and returns the client and the root handle.
async fn connect(opts: &Opts) -> Result<(Client, nfs_fh3), String> {
    let conn = Nfs3ConnectionBuilder::new(TokioConnector, &opts.server, &opts.export)
        .mount_port(opts.mount_port)
        .nfs3_port(opts.nfs_port)
        .credential(credential(opts))
        .mount()
        .await
        .map_err(|e| format!("cannot mount {}:{}: {e}", opts.server, opts.export))?;
    let root = conn.root_nfs_fh3();
    Ok((conn.into_nfs3_client(), root))
}

fn errno_of(st: nfsstat3) -> Errno {
    use nfsstat3::*;
    let e = match st {
        NFS3_OK => 0,
        NFS3ERR_PERM => libc::EPERM,
        NFS3ERR_NOENT => libc::ENOENT,
        NFS3ERR_IO => libc::EIO,
        NFS3ERR_NXIO => libc::ENXIO,
        NFS3ERR_ACCES => libc::EACCES,
        NFS3ERR_EXIST => libc::EEXIST,
        NFS3ERR_XDEV => libc::EXDEV,
        NFS3ERR_NODEV => libc::ENODEV,
        NFS3ERR_NOTDIR => libc::ENOTDIR,
        NFS3ERR_ISDIR => libc::EISDIR,
        NFS3ERR_INVAL => libc::EINVAL,
        NFS3ERR_FBIG => libc::EFBIG,
        NFS3ERR_NOSPC => libc::ENOSPC,
        NFS3ERR_ROFS => libc::EROFS,
        NFS3ERR_MLINK => libc::EMLINK,
        NFS3ERR_NAMETOOLONG => libc::ENAMETOOLONG,
        NFS3ERR_NOTEMPTY => libc::ENOTEMPTY,
        NFS3ERR_DQUOT => libc::EDQUOT,
        NFS3ERR_STALE | NFS3ERR_BADHANDLE => libc::ESTALE,
        NFS3ERR_REMOTE => libc::EREMOTE,
        NFS3ERR_NOT_SYNC => libc::EIO,
        NFS3ERR_BAD_COOKIE => libc::EINVAL,
        NFS3ERR_NOTSUPP => libc::EOPNOTSUPP,
        NFS3ERR_TOOSMALL => libc::EINVAL,
        NFS3ERR_SERVERFAULT => libc::EREMOTEIO,
        NFS3ERR_BADTYPE => libc::EINVAL,
        NFS3ERR_JUKEBOX => libc::EAGAIN,
    };
    Errno::from_i32(if e == 0 { libc::EIO } else { e })
}

/// One NFS call: counted, on a pooled connection, with a time limit, retried
/// after NFS3ERR_JUKEBOX (as a kernel client does), reconnecting after a
/// transport error, sent once more on a new connection when no reply came
/// within the time limit. Evaluates to Result<resok, Errno>.
macro_rules! nfs {
    ($b:expr, $proc:expr, $c:ident => $call:expr) => {{
        let b: &Bridge = $b;
        let mut out = Err(Errno::EIO);
        let mut backoff = Duration::from_millis(5);
        let mut retransmitted = false;
        for attempt in 0..100 {
            b.stats.calls[$proc as usize].fetch_add(1, Ordering::Relaxed);
            let mut guard = b.pool.get().await;
            if guard.is_none() {
                match connect(&b.opts).await {
                    Ok((c, _)) => {
                        b.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        *guard = Some(c);
                    }
                    Err(e) => {
                        eprintln!("nfs-bridge[{}]: {e}", b.opts.name);
                        b.stats.errors.fetch_add(1, Ordering::Relaxed);
                        out = Err(Errno::EIO);
                        break;
                    }
                }
            }
            let $c = guard.as_mut().unwrap();
            let res = tokio::time::timeout(b.opts.call_timeout, $call).await;
            match res {
                Ok(Ok(Nfs3Result::Ok(ok))) => {
                    out = Ok(ok);
                    break;
                }
                Ok(Ok(Nfs3Result::Err((nfsstat3::NFS3ERR_JUKEBOX, _)))) => {
                    // "Try again later", as a kernel client does.
                    drop(guard);
                    b.stats.jukebox.fetch_add(1, Ordering::Relaxed);
                    if attempt == 99 {
                        eprintln!("nfs-bridge[{}]: {} still NFS3ERR_JUKEBOX after 100 tries: EIO", b.opts.name, PROC_NAMES[$proc as usize]);
                        out = Err(Errno::EIO);
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                    continue;
                }
                Ok(Ok(Nfs3Result::Err((st, _)))) => {
                    out = Err(errno_of(st));
                    break;
                }
                Ok(Err(e)) => {
                    eprintln!("nfs-bridge[{}]: {} failed: {e}", b.opts.name, PROC_NAMES[$proc as usize]);
                    b.stats.errors.fetch_add(1, Ordering::Relaxed);
                    *guard = None;
                    out = Err(Errno::EIO);
                    break;
                }
                Err(_) => {
                    b.stats.errors.fetch_add(1, Ordering::Relaxed);
                    *guard = None;
                    if !retransmitted {
                        // No reply (nfs-ganesha 4.3 drops some calls it cannot answer, e.g.
                        // "Not enough memory in nfs3_FhandleToCache"): send it again on a new
                        // connection, once, as a kernel client retransmits after its timeout.
                        eprintln!("nfs-bridge[{}]: {} timed out; sending it again", b.opts.name, PROC_NAMES[$proc as usize]);
                        retransmitted = true;
                        continue;
                    }
                    eprintln!("nfs-bridge[{}]: {} timed out", b.opts.name, PROC_NAMES[$proc as usize]);
                    out = Err(Errno::EIO);
                    break;
                }
            }
        }
        b.delay($proc).await;
        out
    }};
}

/// A non-idempotent call that may have its reply lost. When a loss rule fires,
/// the call is made and its reply discarded; the caller gets what the
/// retransmission gets when the server's duplicate request cache misses it:
/// EEXIST (LINK, CREATE) or ENOENT (REMOVE, RENAME) after a call that took
/// effect, the same error after one that failed. By default that answer is
/// made up, as if the retransmission changed nothing; with a rule's `resend`
/// the call really is sent again, and may then act on a name another client
/// re-created in between (the NFSv3 hazard no client can prevent).
macro_rules! nfs_lossy {
    ($b:expr, $proc:expr, $name:expr, $c:ident => $call:expr) => {{
        let b: &Bridge = $b;
        let first = nfs!(b, $proc, $c => $call);
        match b.should_lose($proc, $name) {
            None => first,
            Some(resend) => {
                let was = match &first { Ok(_) => "OK".to_string(), Err(e) => errno_name(*e) };
                let second = if resend {
                    nfs!(b, $proc, $c => $call)
                } else {
                    match first {
                        Ok(_) => Err(retransmission_errno($proc)),
                        Err(e) => Err(e),
                    }
                };
                eprintln!(
                    "nfs-bridge[{}]: lost reply of {} {:?} (was {}), {} got {}",
                    b.opts.name,
                    PROC_NAMES[$proc as usize],
                    String::from_utf8_lossy($name),
                    was,
                    if resend { "retransmission" } else { "simulated retransmission" },
                    match &second { Ok(_) => "OK".to_string(), Err(e) => errno_name(*e) }
                );
                second
            }
        }
    }};
}

fn retransmission_errno(p: Proc) -> Errno {
    match p {
        Proc::Link | Proc::Create | Proc::Mkdir | Proc::Symlink | Proc::Mknod => Errno::EEXIST,
        _ => Errno::ENOENT,
    }
}

fn errno_name(e: Errno) -> String {
    let n: i32 = e.into();
    let name = match n {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ESTALE => "ESTALE",
        libc::EIO => "EIO",
        libc::EACCES => "EACCES",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EINVAL => "EINVAL",
        _ => return format!("errno {n}"),
    };
    name.to_string()
}

impl Pool {
    async fn get(&self) -> tokio::sync::MutexGuard<'_, Option<Client>> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(g) = self.conns[(start + i) % n].try_lock() {
                return g;
            }
        }
        self.conns[start % n].lock().await
    }
}

fn kind_of(t: ftype3) -> FileType {
    match t {
        ftype3::NF3REG => FileType::RegularFile,
        ftype3::NF3DIR => FileType::Directory,
        ftype3::NF3BLK => FileType::BlockDevice,
        ftype3::NF3CHR => FileType::CharDevice,
        ftype3::NF3LNK => FileType::Symlink,
        ftype3::NF3SOCK => FileType::Socket,
        ftype3::NF3FIFO => FileType::NamedPipe,
    }
}

fn to_attr(ino: u64, a: &fattr3) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.used.div_ceil(512),
        atime: SystemTime::from(&a.atime),
        mtime: SystemTime::from(&a.mtime),
        ctime: SystemTime::from(&a.ctime),
        crtime: SystemTime::from(&a.ctime),
        kind: kind_of(a.type_),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: libc::makedev(a.rdev.specdata1, a.rdev.specdata2) as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn name3(name: &OsStr) -> filename3<'_> {
    filename3(Opaque::borrowed(name.as_bytes()))
}

fn dirop<'a>(dir: &nfs_fh3, name: &'a OsStr) -> diropargs3<'a> {
    diropargs3 { dir: dir.clone(), name: name3(name) }
}

fn nfstime(t: SystemTime) -> nfstime3 {
    nfstime3::try_from(t).unwrap_or(nfstime3 { seconds: 0, nseconds: 0 })
}

fn sattr_mode(mode: u32) -> sattr3 {
    sattr3 {
        mode: Nfs3Option::Some(mode & 0o7777),
        uid: Nfs3Option::None,
        gid: Nfs3Option::None,
        size: Nfs3Option::None,
        atime: set_atime::DONT_CHANGE,
        mtime: set_mtime::DONT_CHANGE,
    }
}

impl Bridge {
    fn ttl(&self) -> Duration {
        self.opts.attr_timeout
    }

    fn fh(&self, ino: INodeNo) -> Result<nfs_fh3, Errno> {
        self.inodes.lock().unwrap().by_ino.get(&ino.0).cloned().ok_or(Errno::ESTALE)
    }

    fn intern(&self, fh: &nfs_fh3) -> u64 {
        let mut t = self.inodes.lock().unwrap();
        if let Some(ino) = t.by_fh.get(fh.data.as_ref()) {
            return *ino;
        }
        let ino = t.next;
        t.next += 1;
        t.by_fh.insert(fh.data.to_vec(), ino);
        t.by_ino.insert(ino, fh.clone());
        ino
    }

    async fn delay(&self, p: Proc) {
        if self.opts.delay.is_zero() {
            return;
        }
        if let Some(ops) = &self.opts.delay_ops {
            if !ops.contains(&p) {
                return;
            }
        }
        self.stats.delayed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.opts.delay).await;
    }

    /// Whether to lose this call's reply: None, or Some(resend).
    fn should_lose(&self, p: Proc, name: &[u8]) -> Option<bool> {
        let mut f = self.faults.lock().unwrap();
        if let Some(max) = self.opts.lose_max {
            if f.lost_total >= max {
                return None;
            }
        }
        for (i, rule) in self.opts.lose.iter().enumerate() {
            if rule.proc != p {
                continue;
            }
            if let Some(m) = &rule.matching {
                if !name.windows(m.len().max(1)).any(|w| w == m.as_slice()) {
                    continue;
                }
            }
            let n = {
                let e = f.seen.entry(i).or_insert(0);
                *e += 1;
                *e
            };
            let fire = match rule.mode {
                LoseMode::Every(k) => n % k == 0,
                LoseMode::First(k) => n <= k,
                LoseMode::Prob(pr) => {
                    // xorshift64*
                    let mut x = f.rng;
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    f.rng = x;
                    let r = (x.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64;
                    r < pr
                }
            };
            if fire {
                f.lost_total += 1;
                self.stats.lost[p as usize].fetch_add(1, Ordering::Relaxed);
                return Some(rule.resend);
            }
        }
        None
    }

    async fn getattr_fh(&self, fh: &nfs_fh3) -> Result<fattr3, Errno> {
        let args = GETATTR3args { object: fh.clone() };
        nfs!(self, Proc::Getattr, c => c.getattr(&args)).map(|r| r.obj_attributes)
    }

    /// Attributes from a post-op result, or a GETATTR when the server sent none.
    async fn attrs_or_getattr(&self, fh: &nfs_fh3, post: post_op_attr) -> Result<fattr3, Errno> {
        match post {
            Nfs3Option::Some(a) => Ok(a),
            Nfs3Option::None => self.getattr_fh(fh).await,
        }
    }

    /// Handle and attributes of a newly made object; LOOKUP when the server
    /// sent no handle.
    async fn new_object(
        &self,
        dir: &nfs_fh3,
        name: &OsStr,
        obj: post_op_fh3,
        attrs: post_op_attr,
    ) -> Result<(nfs_fh3, fattr3), Errno> {
        let fh = match obj {
            Nfs3Option::Some(fh) => fh,
            Nfs3Option::None => {
                let args = LOOKUP3args { what: dirop(dir, name) };
                nfs!(self, Proc::Lookup, c => c.lookup(&args))?.object
            }
        };
        let a = self.attrs_or_getattr(&fh, attrs).await?;
        Ok((fh, a))
    }

    fn entry(&self, reply: ReplyEntry, r: Result<(nfs_fh3, fattr3), Errno>) {
        match r {
            Ok((fh, a)) => {
                let ino = self.intern(&fh);
                reply.entry(&self.ttl(), &to_attr(ino, &a), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    async fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> Result<(nfs_fh3, fattr3), Errno> {
        let dir = self.fh(parent)?;
        let args = LOOKUP3args { what: dirop(&dir, name) };
        let r = nfs!(self, Proc::Lookup, c => c.lookup(&args))?;
        let a = self.attrs_or_getattr(&r.object, r.obj_attributes).await?;
        Ok((r.object, a))
    }

    async fn do_create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        exclusive: bool,
    ) -> Result<(nfs_fh3, fattr3), Errno> {
        let dir = self.fh(parent)?;
        let r = if exclusive {
            // GUARDED: the server refuses an existing name. (EXCLUSIVE with a
            // verifier would make a retransmission succeed; the lost-reply
            // fault models the classic O_EXCL-over-NFS problem instead.)
            let args = CREATE3args { where_: dirop(&dir, name), how: createhow3::GUARDED(sattr_mode(mode)) };
            nfs_lossy!(self, Proc::Create, name.as_bytes(), c => c.create(&args))?
        } else {
            let args = CREATE3args { where_: dirop(&dir, name), how: createhow3::UNCHECKED(sattr_mode(mode)) };
            nfs!(self, Proc::Create, c => c.create(&args))?
        };
        self.new_object(&dir, name, r.obj, r.obj_attributes).await
    }

    async fn load_dir(&self, dir: &nfs_fh3) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        let mut out = Vec::new();
        let mut cookie = 0u64;
        let mut verf = cookieverf3::default();
        loop {
            let args = READDIRPLUS3args { dir: dir.clone(), cookie, cookieverf: verf, dircount: 65536, maxcount: 262144 };
            let r = nfs!(self, Proc::Readdirplus, c => c.readdirplus(&args))?;
            verf = r.cookieverf;
            let eof = r.reply.eof;
            for e in r.reply.entries.into_inner() {
                cookie = e.cookie;
                let name = OsString::from_vec(e.name.0.to_vec());
                let kind = match &e.name_attributes {
                    Nfs3Option::Some(a) => kind_of(a.type_),
                    Nfs3Option::None => FileType::RegularFile,
                };
                let ino = match &e.name_handle {
                    Nfs3Option::Some(fh) if name != "." && name != ".." => self.intern(fh),
                    _ => e.fileid,
                };
                out.push((ino, kind, name));
            }
            if eof {
                break;
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- FUSE ops

impl Filesystem for Bridge {
    fn init(&mut self, _req: &Request, _config: &mut KernelConfig) -> std::io::Result<()> {
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.rt.block_on(self.do_lookup(parent, name));
        match r {
            Err(e) if e == Errno::ENOENT && !self.opts.negative_timeout.is_zero() => {
                reply.entry(&self.opts.negative_timeout, &negative_attr(), Generation(0))
            }
            r => self.entry(reply, r),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.rt.block_on(async {
            let fh = self.fh(ino)?;
            self.getattr_fh(&fh).await
        });
        match r {
            Ok(a) => reply.attr(&self.ttl(), &to_attr(ino.0, &a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.rt.block_on(async {
            let fh = self.fh(ino)?;
            let opt = |v: Option<u32>| v.map_or(Nfs3Option::None, Nfs3Option::Some);
            let sattr = sattr3 {
                mode: opt(mode.map(|m| m & 0o7777)),
                uid: opt(uid),
                gid: opt(gid),
                size: size.map_or(Nfs3Option::None, Nfs3Option::Some),
                atime: match atime {
                    None => set_atime::DONT_CHANGE,
                    Some(TimeOrNow::Now) => set_atime::SET_TO_SERVER_TIME,
                    Some(TimeOrNow::SpecificTime(t)) => set_atime::SET_TO_CLIENT_TIME(nfstime(t)),
                },
                mtime: match mtime {
                    None => set_mtime::DONT_CHANGE,
                    Some(TimeOrNow::Now) => set_mtime::SET_TO_SERVER_TIME,
                    Some(TimeOrNow::SpecificTime(t)) => set_mtime::SET_TO_CLIENT_TIME(nfstime(t)),
                },
            };
            let args = SETATTR3args { object: fh.clone(), new_attributes: sattr, guard: Nfs3Option::None };
            let r = nfs!(self, Proc::Setattr, c => c.setattr(&args))?;
            self.attrs_or_getattr(&fh, r.obj_wcc.after).await
        });
        match r {
            Ok(a) => reply.attr(&self.ttl(), &to_attr(ino.0, &a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self.rt.block_on(async {
            let args = READLINK3args { symlink: self.fh(ino)? };
            nfs!(self, Proc::Readlink, c => c.readlink(&args))
        });
        match r {
            Ok(r) => reply.data(r.data.0.as_ref()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let perm = mode & !umask;
        let r = self.rt.block_on(async {
            let fmt = mode & libc::S_IFMT;
            if fmt == libc::S_IFREG || fmt == 0 {
                return self.do_create(parent, name, perm, true).await;
            }
            let dir = self.fh(parent)?;
            let what = match fmt {
                libc::S_IFIFO => mknoddata3::NF3FIFO(sattr_mode(perm)),
                libc::S_IFSOCK => mknoddata3::NF3SOCK(sattr_mode(perm)),
                libc::S_IFCHR | libc::S_IFBLK => {
                    let dev = devicedata3 {
                        dev_attributes: sattr_mode(perm),
                        spec: specdata3 {
                            specdata1: libc::major(rdev as libc::dev_t),
                            specdata2: libc::minor(rdev as libc::dev_t),
                        },
                    };
                    if fmt == libc::S_IFCHR { mknoddata3::NF3CHR(dev) } else { mknoddata3::NF3BLK(dev) }
                }
                _ => return Err(Errno::EINVAL),
            };
            let args = MKNOD3args { where_: dirop(&dir, name), what };
            let r = nfs!(self, Proc::Mknod, c => c.mknod(&args))?;
            self.new_object(&dir, name, r.obj, r.obj_attributes).await
        });
        self.entry(reply, r);
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let r = self.rt.block_on(async {
            let dir = self.fh(parent)?;
            let args = MKDIR3args { where_: dirop(&dir, name), attributes: sattr_mode(mode & !umask) };
            let r = nfs!(self, Proc::Mkdir, c => c.mkdir(&args))?;
            self.new_object(&dir, name, r.obj, r.obj_attributes).await
        });
        self.entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.rt.block_on(async {
            let dir = self.fh(parent)?;
            let args = REMOVE3args { object: dirop(&dir, name) };
            nfs_lossy!(self, Proc::Remove, name.as_bytes(), c => c.remove(&args)).map(|_| ())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.rt.block_on(async {
            let dir = self.fh(parent)?;
            let args = RMDIR3args { object: dirop(&dir, name) };
            nfs!(self, Proc::Rmdir, c => c.rmdir(&args)).map(|_| ())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let r = self.rt.block_on(async {
            let dir = self.fh(parent)?;
            let args = SYMLINK3args {
                where_: dirop(&dir, link_name),
                symlink: symlinkdata3 {
                    symlink_attributes: sattr_mode(0o777),
                    symlink_data: nfspath3(Opaque::borrowed(target.as_os_str().as_bytes())),
                },
            };
            let r = nfs!(self, Proc::Symlink, c => c.symlink(&args))?;
            self.new_object(&dir, link_name, r.obj, r.obj_attributes).await
        });
        self.entry(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            // NFSv3 has no RENAME_NOREPLACE / RENAME_EXCHANGE; the kernel's
            // NFS client refuses them the same way.
            reply.error(Errno::EINVAL);
            return;
        }
        let r = self.rt.block_on(async {
            let from = self.fh(parent)?;
            let to = self.fh(newparent)?;
            let args = RENAME3args { from: dirop(&from, name), to: dirop(&to, newname) };
            nfs_lossy!(self, Proc::Rename, name.as_bytes(), c => c.rename(&args)).map(|_| ())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let r = self.rt.block_on(async {
            let file = self.fh(ino)?;
            let dir = self.fh(newparent)?;
            let args = LINK3args { file: file.clone(), link: dirop(&dir, newname) };
            let r = nfs_lossy!(self, Proc::Link, newname.as_bytes(), c => c.link(&args))?;
            let a = self.attrs_or_getattr(&file, r.file_attributes).await?;
            Ok((file, a))
        });
        self.entry(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Close-to-open: an NFS client revalidates attributes at open.
        let r = self.rt.block_on(async {
            let fh = self.fh(ino)?;
            self.getattr_fh(&fh).await
        });
        match r {
            Ok(_) => {
                if !self.ttl().is_zero() {
                    if let Some(n) = self.notifier.get() {
                        // Drop the kernel's cached attributes so that the next
                        // fstat asks the server (offset < 0: attributes only).
                        if let Err(e) = n.inval_inode(ino, -1, 0) {
                            eprintln!("nfs-bridge[{}]: notify inval_inode: {e}", self.opts.name);
                        }
                    }
                }
                reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.rt.block_on(async {
            let args = READ3args { file: self.fh(ino)?, offset, count: size };
            nfs!(self, Proc::Read, c => c.read(&args))
        });
        match r {
            Ok(r) => reply.data(r.data.as_ref()),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.rt.block_on(async {
            let file = self.fh(ino)?;
            // O_APPEND: like the kernel's NFS client, which revalidates the
            // size before each appending write, write at the server's size
            // rather than at the kernel's (possibly cached) one.
            let offset = if flags.0 & libc::O_APPEND != 0 { self.getattr_fh(&file).await?.size } else { offset };
            let args = WRITE3args {
                file,
                offset,
                count: data.len() as u32,
                stable: stable_how::FILE_SYNC,
                data: Opaque::borrowed(data),
            };
            nfs!(self, Proc::Write, c => c.write(&args))
        });
        match r {
            Ok(r) => reply.written(r.count),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lo: fuser::LockOwner, reply: ReplyEmpty) {
        reply.ok(); // writes are FILE_SYNC: nothing to flush
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = self.rt.block_on(async {
            let fh = self.fh(ino)?;
            self.load_dir(&fh).await
        });
        match r {
            Ok(list) => {
                let id = self.next_dir.fetch_add(1, Ordering::Relaxed);
                self.dirs.lock().unwrap().insert(id, list);
                reply.opened(FileHandle(id), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let dirs = self.dirs.lock().unwrap();
        let Some(list) = dirs.get(&fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        for (i, (ino, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let r = self.rt.block_on(async {
            let fh = self.fh(ino).or_else(|_| self.fh(INodeNo::ROOT))?;
            let args = FSSTAT3args { fsroot: fh };
            nfs!(self, Proc::Fsstat, c => c.fsstat(&args))
        });
        match r {
            Ok(s) => {
                let bs = 4096u64;
                reply.statfs(s.tbytes / bs, s.fbytes / bs, s.abytes / bs, s.tfiles, s.ffiles, bs as u32, 255, bs as u32)
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let exclusive = flags & libc::O_EXCL != 0;
        let r = self.rt.block_on(self.do_create(parent, name, mode & !umask, exclusive));
        match r {
            Ok((fh, a)) => {
                let ino = self.intern(&fh);
                reply.created(&self.ttl(), &to_attr(ino, &a), Generation(0), FileHandle(0), FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let opts = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(format!("tokio: {e}")));

    // Reach the server, retrying while it starts.
    let deadline = std::time::Instant::now() + opts.connect_timeout;
    let (first, root) = loop {
        match rt.block_on(connect(&opts)) {
            Ok(x) => break x,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("nfs-bridge[{}]: {e}; retrying", opts.name);
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => die(e),
        }
    };

    let stats = Arc::new(Stats::new());
    let mut conns = vec![tokio::sync::Mutex::new(Some(first))];
    for _ in 1..opts.connections {
        conns.push(tokio::sync::Mutex::new(None));
    }
    let mut inodes = Inodes { by_ino: HashMap::new(), by_fh: HashMap::new(), next: 2 };
    inodes.by_fh.insert(root.data.to_vec(), 1);
    inodes.by_ino.insert(1, root.clone());
    let notifier = Arc::new(OnceLock::new());
    let bridge = Bridge {
        opts: opts.clone(),
        stats: stats.clone(),
        pool: Pool { conns, next: AtomicUsize::new(0) },
        inodes: Mutex::new(inodes),
        faults: Mutex::new(Faults { seen: HashMap::new(), lost_total: 0, rng: opts.seed }),
        dirs: Mutex::new(HashMap::new()),
        next_dir: AtomicU64::new(1),
        notifier: notifier.clone(),
        rt,
    };
    // Check the root handle works before mounting.
    if let Err(e) = bridge.rt.block_on(bridge.getattr_fh(&root)) {
        die(format!("GETATTR of the export root failed: {e:?}"));
    }
    // A separate small runtime for signals, so the bridge's runtime can move
    // into the FUSE session.
    let sig_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(format!("tokio: {e}")));

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("nfs-bridge:{}:{}", opts.server, opts.export)),
        MountOption::Subtype("nfs-bridge".into()),
        MountOption::DefaultPermissions,
        MountOption::RW,
        MountOption::NoAtime,
    ];
    config.n_threads = Some(opts.threads);
    config.clone_fd = opts.threads > 1;
    let session = fuser::Session::new(bridge, &opts.mountpoint, &config)
        .unwrap_or_else(|e| die(format!("cannot mount {}: {e}", opts.mountpoint.display())));
    let _ = notifier.set(session.notifier());
    let bg = session.spawn().unwrap_or_else(|e| die(format!("cannot start FUSE session: {e}")));
    eprintln!(
        "nfs-bridge[{}]: mounted {}:{} on {} (attr-timeout {} ms, {} loss rule(s), delay {} ms)",
        opts.name,
        opts.server,
        opts.export,
        opts.mountpoint.display(),
        opts.attr_timeout.as_millis(),
        opts.lose.len(),
        opts.delay.as_millis()
    );
    write_stats(&opts, &stats);

    sig_rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
        let mut term = signal(SignalKind::terminate()).unwrap();
        let mut int = signal(SignalKind::interrupt()).unwrap();
        let mut hup = signal(SignalKind::hangup()).unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = usr1.recv() => write_stats(&opts, &stats),
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => break,
                _ = tick.tick() => {
                    if bg.guard.is_finished() {
                        eprintln!("nfs-bridge[{}]: file system was unmounted", opts.name);
                        break;
                    }
                }
            }
        }
    });
    write_stats(&opts, &stats);
    // Lazy unmount; exiting closes /dev/fuse, which ends the session even if
    // some process still has a file open on the mount.
    let _ = std::process::Command::new("umount").arg("-l").arg(&opts.mountpoint).status();
    eprintln!("nfs-bridge[{}]: stopped", opts.name);
    std::process::exit(0);
}
