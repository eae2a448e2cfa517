//! Small shared pieces: `--key value` arguments, atomic log appends, signals and `/proc`.
//! (The shared clock and the random generator are the test kit's: `flufl_lock_testkit`.)

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// `--key value` and `--flag` arguments.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses `args`; names in `flags` take no value.
    pub fn parse(args: impl IntoIterator<Item = String>, flags: &[&str]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            if flags.contains(&name) {
                values.insert(name.to_string(), "true".to_string());
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                values.insert(name.to_string(), v);
            }
        }
        Ok(Args { values })
    }

    /// A required value.
    pub fn req<T: FromStr>(&self, name: &str) -> Result<T, String> {
        let v = self
            .values
            .get(name)
            .ok_or_else(|| format!("--{name} is required"))?;
        v.parse()
            .map_err(|_| format!("--{name}: cannot parse {v:?}"))
    }

    /// A value, or `default` when absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        if self.values.contains_key(name) {
            self.req(name)
        } else {
            Ok(default)
        }
    }

    /// An optional string value.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether a flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// Opens `path` for appending (`O_APPEND`), creating it.
pub fn open_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

/// Appends `line` and a newline in a single `write(2)`, so that records of concurrent
/// writers never interleave and a SIGKILL leaves either the whole record or none.
pub fn append(log: &File, line: &str) -> io::Result<()> {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let n = (&*log).write(buf.as_bytes())?;
    if n != buf.len() {
        return Err(io::Error::other(format!(
            "short append: {n} of {}",
            buf.len()
        )));
    }
    Ok(())
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: rustix::process::Signal) -> io::Result<()> {
    let p = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("pid 0"))?;
    rustix::process::kill_process(p, sig).map_err(io::Error::from)
}

/// The state letter of `pid` in `/proc/PID/stat` (`R`, `S`, `T`, `Z`, ...).
pub fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].trim_start().chars().next()
}

/// The state letter and start time (field 22, clock ticks since boot as the *reader's* time
/// namespace shows it) of `pid` in `/proc/PID/stat`, or why it cannot be read.
pub fn proc_stat(pid: u32) -> io::Result<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: {s:?}"),
        )
    };
    let rest = &s[s.rfind(')').ok_or_else(bad)? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields
        .next()
        .and_then(|f| f.chars().next())
        .ok_or_else(bad)?;
    // After the state (field 3), field 22 is the 19th.
    let start = fields
        .nth(18)
        .and_then(|f| f.parse().ok())
        .ok_or_else(bad)?;
    Ok((state, start))
}

/// Waits, at most `limit`, until `pid` is stopped (`T`): only then is it certain that it
/// runs no more instructions. False if it did not stop in time (or is gone).
pub fn wait_stopped(pid: u32, limit: Duration) -> bool {
    let t = Instant::now();
    loop {
        match proc_state(pid) {
            Some('T') | Some('t') => return true,
            None | Some('Z') | Some('X') => return false,
            _ => {}
        }
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// The pid named in a claim (`lock|host|pid|random`, split from the right), if `path`
/// holds one.
pub fn claim_pid(path: &Path) -> Option<u32> {
    let s = std::fs::read(path).ok()?;
    let s = String::from_utf8_lossy(&s);
    let mut fields = s.trim().rsplitn(4, flufl_lock::SEP);
    let _random = fields.next()?;
    fields.next()?.parse().ok()
}

/// The inode of this process's pid namespace, if readable.
pub fn pid_ns() -> Option<u64> {
    let l = std::fs::read_link("/proc/self/ns/pid").ok()?;
    l.to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inode of this process's time namespace, if readable.
pub fn time_ns() -> Option<u64> {
    let l = std::fs::read_link("/proc/self/ns/time").ok()?;
    l.to_str()?
        .strip_prefix("time:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags take no value; values are parsed on demand with a clear error.
    #[test]
    fn args() {
        let a = Args::parse(
            ["--n", "3", "--die", "--name", "x"].map(String::from),
            &["die"],
        )
        .unwrap();
        assert_eq!(a.req::<u32>("n").unwrap(), 3);
        assert!(a.flag("die"));
        assert_eq!(a.opt("name"), Some("x"));
        assert_eq!(a.get("missing", 7u8).unwrap(), 7);
        assert!(a.req::<u32>("name").is_err());
        assert!(Args::parse(["--n".to_string()], &[]).is_err());
    }
}
