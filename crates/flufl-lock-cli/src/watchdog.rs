//! The watchdog of `flufl-lock run` (POSIX): a process that kills COMMAND's process group
//! when we die, even by SIGKILL, which no handler of ours can see.
//!
//! It is a plain `fork()` of this process, made before COMMAND and before any thread, that
//! never runs Rust code beyond raw system calls: it sits in its own process group, ignores
//! SIGINT, SIGTERM and SIGHUP, and reads a socket whose other end only we hold (and, until
//! its `exec`, COMMAND's child, which inherits it close-on-exec). That child, between its
//! `fork` and its `exec`, writes its pid (its process group's id) on the socket, so the
//! watchdog knows the group before COMMAND runs a single instruction of its own. Then:
//!
//! - a byte from us means the group is gone ([`Watchdog::disarm`]): it exits;
//! - end of file means we exited without disarming, or died: it sends the group SIGKILL and
//!   exits.
//!
//! (A re-exec of this binary did the same job until issue 15; loading the binary a second
//! time was most of `flufl-lock run`'s own cost.)

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

/// Our end of the watchdog's socket. Dropping it without [`Watchdog::disarm`] makes the
/// watchdog kill COMMAND's group (if COMMAND was started).
#[derive(Debug)]
pub struct Watchdog {
    ours: Arc<UnixStream>,
}

impl Watchdog {
    /// Forks the watchdog. Best called before any thread starts (the child makes only
    /// system calls either way).
    ///
    /// # Errors
    ///
    /// `socketpair(2)` or `fork(2)` failed.
    #[allow(unsafe_code)]
    pub fn start() -> io::Result<Watchdog> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: fork() itself is safe to call; what matters is the child. The child runs
        // `watch`, which only makes system calls (rustix's, and libc's `close`, `sigaction`
        // and `_exit`), allocates nothing, takes no lock and never returns, so no state
        // copied from this process (heap, locks, buffers, other threads' work) is used there.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe { watch(&theirs, ours.as_raw_fd()) },
            _ => Ok(Watchdog {
                ours: Arc::new(ours),
            }),
        }
    }

    /// Sets up `cmd`'s child, between its `fork` and its `exec`: (Linux) SIGKILL when we
    /// die, then its pid to the watchdog, then a check that we are still alive (if we died
    /// before the parent-death signal was set, the child was reparented and gives up).
    /// `cmd` must put the child in its own process group (`process_group(0)`). If the
    /// watchdog is gone, COMMAND is not started: spawning fails with `EPIPE`.
    #[allow(unsafe_code)]
    pub fn guard(&self, cmd: &mut Command) {
        use rustix::io::Errno;
        let ours = Arc::clone(&self.ours);
        let parent = std::process::id();
        // Without MSG_NOSIGNAL (macOS) a dead watchdog kills the child with SIGPIPE here.
        #[cfg(not(target_vendor = "apple"))]
        let flags = rustix::net::SendFlags::NOSIGNAL;
        #[cfg(target_vendor = "apple")]
        let flags = rustix::net::SendFlags::empty();
        // SAFETY: the closure runs in the forked child before exec; it only makes the raw
        // prctl, getpid, send and getppid system calls (async-signal-safe) on a socket that
        // `ours` keeps open, and allocates nothing (its errors are bare errno values).
        unsafe {
            cmd.pre_exec(move || {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                let pid = rustix::process::getpid()
                    .as_raw_nonzero()
                    .get()
                    .to_ne_bytes();
                let sent = rustix::io::retry_on_intr(|| rustix::net::send(&*ours, &pid, flags))?;
                if sent != pid.len() {
                    return Err(Errno::PIPE.into());
                }
                if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32)
                    != Some(parent)
                {
                    return Err(Errno::SRCH.into());
                }
                Ok(())
            });
        }
    }

    /// Tells the watchdog that COMMAND's group is gone (or was never started): it exits
    /// without killing anything, so a later group that reuses the id is safe from it.
    pub fn disarm(self) {
        let _ = rustix::io::write(&*self.ours, b"x");
    }
}

/// The watchdog's whole life, in the child of `fork()`: only system calls from here on.
/// `theirs` is its end of the socket; `ours` the parent's end, closed here so that the
/// parent's exit or death is seen as end of file.
#[allow(unsafe_code)]
unsafe fn watch(theirs: &UnixStream, ours: std::os::fd::RawFd) -> ! {
    // SAFETY: plain system calls on descriptors this child owns (copies made by fork), and
    // a zeroed `sigaction` with SIG_IGN. Closing the standard streams keeps pipes on them
    // (`x=$(flufl-lock run ...)`) from waiting for the watchdog; nothing opens a file here.
    unsafe {
        for fd in [ours, 0, 1, 2] {
            libc::close(fd);
        }
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaction(sig, &ignore, std::ptr::null_mut());
        }
    }
    // Out of our process group, so that a Ctrl-C at the terminal does not reach it.
    let _ = rustix::process::setpgid(None, None);
    // The group's id (4 bytes), then either our disarming byte or end of file.
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got <= 4 {
        match rustix::io::retry_on_intr(|| rustix::io::read(theirs, &mut buf[got..])) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if got == 4 {
        let pgid = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        crate::run::kill_group(pgid, rustix::process::Signal::KILL);
    }
    // SAFETY: _exit(2) ends the process at once, without running atexit handlers or
    // destructors that belong to the parent's copy of the state.
    unsafe { libc::_exit(0) }
}
