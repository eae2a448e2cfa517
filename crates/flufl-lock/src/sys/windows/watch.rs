//! The waiter's wake-ups on Windows: `ReadDirectoryChangesW` on the lock's directory and
//! a handle on the holder's process.

use super::*;

/// A directory watch: `ReadDirectoryChangesW` in overlapped mode on the lock's directory,
/// waking on the removal or renaming of the lock file's name, as inotify does on Linux.
#[derive(Debug)]
pub(super) struct DirWatch {
    dir: OwnedHandle,
    event: OwnedHandle,
    /// The lock file's name, lowercased (names compare case-insensitively).
    name: String,
    /// Heap block the pending read writes into; see [`Pending`].
    pending: NonNull<Pending>,
    /// Whether a read is in flight (so the block must not be freed or touched).
    active: bool,
}

/// The `OVERLAPPED` and buffer of one `ReadDirectoryChangesW`, at a fixed heap address from
/// [`DirWatch::new`] to [`Drop`], and never referenced while a read is in flight.
struct Pending {
    ov: OVERLAPPED,
    /// DWORD-aligned, as `ReadDirectoryChangesW` requires.
    buf: [u32; 1024],
}

// SAFETY: the handles are process-wide kernel objects and the heap block is owned by this
// value alone. A pending read is not tied to the thread that issued it except that it is
// cancelled if that thread exits, which completes it with ERROR_OPERATION_ABORTED, and that
// case is handled (the watch is dropped and waiting falls back to polling).
unsafe impl Send for DirWatch {}

impl DirWatch {
    fn new(lock: &Path) -> Option<DirWatch> {
        let dir = lock.parent()?;
        let name = lock.file_name()?.to_string_lossy().to_lowercase();
        let dir: OwnedHandle = OpenOptions::new()
            .access_mode(FILE_LIST_DIRECTORY)
            .share_mode(SHARE_ALL)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OVERLAPPED)
            .open(dir)
            .ok()?
            .into();
        // SAFETY: no security attributes and no name; a manual-reset event, not signalled.
        let ev = unsafe { CreateEventW(ptr::null(), 1, 0, ptr::null()) };
        if ev.is_null() {
            return None;
        }
        // SAFETY: CreateEventW returned a new handle that nothing else owns.
        let event = unsafe { OwnedHandle::from_raw_handle(ev) };
        let pending = Box::new(Pending {
            ov: overlapped(event.as_raw_handle() as HANDLE),
            buf: [0; 1024],
        });
        let mut w = DirWatch {
            dir,
            event,
            name,
            pending: NonNull::from(Box::leak(pending)),
            active: false,
        };
        w.arm().then_some(w)
    }

    /// Starts a read of the directory's changes. It completes when a name in the directory
    /// changes; changes made while no read is in flight are kept by the system for the next.
    fn arm(&mut self) -> bool {
        let p = self.pending.as_ptr();
        let event = self.event.as_raw_handle() as HANDLE;
        // SAFETY: no read is in flight (`active` is false), so the block is ours to write.
        unsafe { (*p).ov = overlapped(event) };
        // The read resets the event as it starts; do it here too, so that a stale signal can
        // never make the wait loop spin.
        // SAFETY: a valid event handle owned by `self`.
        unsafe { ResetEvent(event) };
        // SAFETY: `dir` is a directory handle opened with FILE_LIST_DIRECTORY and
        // FILE_FLAG_OVERLAPPED; the buffer and OVERLAPPED live in the heap block, which stays
        // at its address and untouched until the read completes or is cancelled (Drop waits
        // for that before freeing it).
        let ok = unsafe {
            ReadDirectoryChangesW(
                self.dir.as_raw_handle() as HANDLE,
                ptr::addr_of_mut!((*p).buf).cast::<c_void>(),
                size_of::<[u32; 1024]>() as u32,
                0,
                FILE_NOTIFY_CHANGE_FILE_NAME,
                ptr::null_mut(),
                ptr::addr_of_mut!((*p).ov),
                None,
            )
        };
        self.active = ok != 0;
        self.active
    }

    /// After the event fired: whether the lock's name was removed or renamed away (or
    /// changes were lost), and re-arms. `None` when the watch no longer works.
    fn take(&mut self) -> Option<bool> {
        let p = self.pending.as_ptr();
        let mut n = 0u32;
        // SAFETY: valid handle and the OVERLAPPED of the read in flight; no wait.
        let ok = unsafe {
            GetOverlappedResult(
                self.dir.as_raw_handle() as HANDLE,
                ptr::addr_of!((*p).ov),
                &mut n,
                0,
            )
        };
        if ok == 0 {
            // SAFETY: plain call without pointers.
            match unsafe { GetLastError() } {
                ERROR_IO_INCOMPLETE => return Some(false),
                // Too many changes for the buffer: they were lost, so look again.
                ERROR_NOTIFY_ENUM_DIR => {
                    self.active = false;
                    return self.arm().then_some(true);
                }
                _ => {
                    self.active = false;
                    return None;
                }
            }
        }
        self.active = false;
        // SAFETY: the read completed, so nothing writes the buffer until the next `arm`.
        let words: &[u32; 1024] = unsafe { &(*p).buf };
        let bytes: Vec<u8> = words
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .take(n as usize)
            .collect();
        // Zero bytes: the system's buffer overflowed and the changes were lost.
        let hit = n == 0 || names_removed(&bytes, &self.name);
        if !self.arm() {
            return if hit { Some(true) } else { None };
        }
        Some(hit)
    }
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        let p = self.pending.as_ptr();
        if self.active {
            let h = self.dir.as_raw_handle() as HANDLE;
            let mut n = 0u32;
            // SAFETY: valid handle and the OVERLAPPED of our read; then wait for the read
            // to finish (cancelled or completed) so that the block may be freed.
            let done = unsafe {
                CancelIoEx(h, ptr::addr_of!((*p).ov));
                GetOverlappedResult(h, ptr::addr_of!((*p).ov), &mut n, 1) != 0
                    || GetLastError() != ERROR_IO_INCOMPLETE
            };
            if !done {
                // The kernel may still write into the block: leak it rather than free it.
                return;
            }
        }
        // SAFETY: the block came from Box::leak in `new`, no read is in flight, and it is
        // freed only here.
        drop(unsafe { Box::from_raw(p) });
    }
}

fn overlapped(event: HANDLE) -> OVERLAPPED {
    OVERLAPPED {
        Internal: 0,
        InternalHigh: 0,
        Anonymous: OVERLAPPED_0 {
            Anonymous: OVERLAPPED_0_0 {
                Offset: 0,
                OffsetHigh: 0,
            },
        },
        hEvent: event,
    }
}

/// Whether `FILE_NOTIFY_INFORMATION` records in `bytes` remove or rename away `name`
/// (lowercase), comparing case-insensitively.
pub(super) fn names_removed(bytes: &[u8], name: &str) -> bool {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    let mut off = 0usize;
    loop {
        let (Some(next), Some(action), Some(len)) = (u32_at(off), u32_at(off + 4), u32_at(off + 8))
        else {
            return false;
        };
        let Some(raw) = bytes.get(off + 12..off + 12 + len as usize) else {
            return false;
        };
        if action == FILE_ACTION_REMOVED || action == FILE_ACTION_RENAMED_OLD_NAME {
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]))
                .collect();
            if String::from_utf16_lossy(&units).to_lowercase() == name {
                return true;
            }
        }
        if next == 0 {
            return false;
        }
        off += next as usize;
    }
}

/// A change notification on the lock's directory and a handle on the holder's process.
#[derive(Debug, Default)]
pub struct WaiterImpl {
    pub(super) dir: Option<DirWatch>,
    pub(super) process: Option<(u32, OwnedHandle)>,
}

impl WaiterImpl {
    pub fn new(lock: &Path, notify: bool) -> WaiterImpl {
        WaiterImpl {
            dir: if notify { DirWatch::new(lock) } else { None },
            process: None,
        }
    }

    pub fn watching(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.0)
    }

    /// Never counted on to wake a waiter for a release: waiters poll at their usual
    /// rate here (the directory watch only makes hand-off faster).
    pub fn notifies(&self) -> bool {
        false
    }

    /// `OpenProcess(SYNCHRONIZE)` on the holder, whose handle is signalled when it exits.
    pub fn watch_process(&mut self, pid: Option<u32>) {
        match pid {
            None => self.process = None,
            Some(pid) => {
                if self.process.as_ref().map(|p| p.0) == Some(pid) {
                    return;
                }
                self.process = open_process(PROCESS_SYNCHRONIZE, pid)
                    .ok()
                    .map(|h| (pid, h));
            }
        }
    }

    /// `WaitForMultipleObjects` on the directory watch and the process handle, else a sleep.
    pub fn wait(&mut self, timeout: Duration) {
        if self.dir.is_none() && self.process.is_none() {
            // std sleeps on a high-resolution timer; waits are at the mercy of the
            // (by default 15.6 ms) system tick.
            std::thread::sleep(timeout);
            return;
        }
        let start = Instant::now();
        let deadline = start
            .checked_add(timeout)
            .unwrap_or(start + Duration::from_secs(86_400 * 365));
        loop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let left = deadline - now;
            let mut handles: [HANDLE; 2] = [ptr::null_mut(); 2];
            let mut n = 0;
            if let Some(w) = &self.dir {
                handles[n] = w.event.as_raw_handle() as HANDLE;
                n += 1;
            }
            let dir_at = self.dir.as_ref().map(|_| 0);
            if let Some((_, h)) = &self.process {
                handles[n] = h.as_raw_handle() as HANDLE;
                n += 1;
            }
            // Round up, so that a sub-millisecond pause still waits.
            let ms = left
                .as_micros()
                .div_ceil(1000)
                .min(u128::from(u32::MAX - 1)) as u32;
            // SAFETY: `handles[..n]` are valid handles owned by `self` for the whole call.
            let r = unsafe { WaitForMultipleObjects(n as u32, handles.as_ptr(), 0, ms) };
            if r == WAIT_TIMEOUT {
                return;
            }
            let i = r.wrapping_sub(WAIT_OBJECT_0) as usize;
            if i >= n {
                // WAIT_FAILED or an abandoned object: poll instead.
                std::thread::sleep(left.min(Duration::from_millis(10)));
                return;
            }
            if Some(i) == dir_at {
                match self.dir.as_mut().and_then(DirWatch::take) {
                    Some(true) => return,
                    Some(false) => continue,
                    None => {
                        self.dir = None;
                        return;
                    }
                }
            }
            // The holder exited.
            self.process = None;
            return;
        }
    }
}
