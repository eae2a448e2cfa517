//! Windows backend, on `windows-sys` and std's `OpenOptionsExt`.
//!
//! Files are opened with std (`access_mode`, `share_mode`, `custom_flags`), which also takes
//! care of long paths; `windows-sys` supplies what std does not expose: file ids and link
//! counts (`GetFileInformationByHandle`, as same-file and winapi-util do, since std's
//! `number_of_links` is unstable, rust-lang/rust#63010), POSIX-semantics deletion, process
//! handles, directory change notification and the host name.
//!
//! Platform notes, beside the code they concern:
//!
//! - **Reparse points** (symbolic links, junctions, ...) are never followed: every open passes
//!   `FILE_FLAG_OPEN_REPARSE_POINT`, so it names the reparse point itself, and they are all
//!   reported as [`FileKind::Symlink`].
//! - **Sharing**: every handle shares read, write *and delete*, so a process reading a lock
//!   never stops its holder from removing it. Handles are held only for the duration of one
//!   [`Fs`] call, except the `File`s the algorithm holds, which it drops before unlinking or
//!   renaming.
//! - **Deletion**: [`Fs::unlink`] frees the name at once, as `unlink(2)` does, even while
//!   other handles are open: it renames the file to a private name and deletes it on close.
//!   A plain delete leaves the name "delete pending" until the last handle closes, wherever
//!   Windows cannot delete with POSIX semantics (Windows before 10, FAT, some SMB servers,
//!   and Wine, which accepts the POSIX flag and ignores it). Opening a delete-pending name
//!   fails with `ERROR_ACCESS_DENIED`; the backend reports such a name (left by another
//!   program's delete) as not found, and a hard link onto it as already existing.
//! - **No boot id, no pid namespace**: [`host_identity`] proves nothing, so a crashed holder's
//!   lock is recovered by expiry, never by a process check (pids are recycled quickly on
//!   Windows anyway).

#![allow(unsafe_code)]

use super::{FileId, FileKind, Fs, HostIdentity, Meta, ProcState};
use std::ffi::c_void;
use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::{Component, Path, PathBuf, Prefix};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_PARAMETER, ERROR_IO_INCOMPLETE, ERROR_LOCK_VIOLATION, ERROR_NOTIFY_ENUM_DIR,
    ERROR_SHARING_VIOLATION, ERROR_STOPPED_ON_SYMLINK, FILETIME, HANDLE, NTSTATUS,
    STATUS_DELETE_PENDING, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    FileAttributeTagInfo, FileRenameInfo, GetDriveTypeW, GetFileInformationByHandle,
    GetFileInformationByHandleEx, GetVolumePathNameW, ReadDirectoryChangesW,
    SetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION, DELETE, FILE_ACTION_REMOVED,
    FILE_ACTION_RENAMED_OLD_NAME, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_ATTRIBUTE_TAG_INFO, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_DELETE_ON_CLOSE,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_FLAG_OVERLAPPED, FILE_GENERIC_READ, FILE_LIST_DIRECTORY,
    FILE_NOTIFY_CHANGE_FILE_NAME, FILE_READ_ATTRIBUTES, FILE_RENAME_INFO, FILE_SHARE_DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_ATTRIBUTES,
};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNameDnsFullyQualified, ComputerNameDnsHostname, ComputerNameNetBIOS,
    GetComputerNameExW, GetTickCount64, COMPUTER_NAME_FORMAT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, OpenProcess, ResetEvent, WaitForMultipleObjects, WaitForSingleObject,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, GetOverlappedResult, OVERLAPPED, OVERLAPPED_0, OVERLAPPED_0_0,
};

/// `GetDriveTypeW`: a network drive (in `Win32_System_WindowsProgramming`, which this crate
/// does not otherwise need).
const DRIVE_REMOTE: u32 = 4;
/// `GetDriveTypeW`: the type cannot be determined.
const DRIVE_UNKNOWN: u32 = 0;
/// `GetDriveTypeW`: the root path is invalid.
const DRIVE_NO_ROOT_DIR: u32 = 1;

/// Every handle shares read, write and delete access, as std's default does: a reader must
/// never stop the holder from removing or renaming the lock.
const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

/// 100 ns intervals from 1601-01-01 (the `FILETIME` epoch) to 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

#[link(name = "ntdll.dll", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    /// `RtlGetLastNtStatus` (ntdll, exported since Windows XP): the `NTSTATUS` behind the
    /// calling thread's last Win32 error. It tells "delete pending" apart from a real
    /// `ERROR_ACCESS_DENIED`. `windows-sys` does not bind it.
    fn RtlGetLastNtStatus() -> NTSTATUS;
}

/// Retried by default: a sharing violation, from a reader such as Python's `open()`, which
/// does not share delete access. (Windows has no `ESTALE`.)
pub const DEFAULT_RETRY_ERRNOS: &[i32] = &[ERROR_SHARING_VIOLATION as i32];

/// Never: there is no `ESTALE` on Windows.
pub fn is_stale(_e: &io::Error) -> bool {
    false
}

/// A sharing or lock violation: another process has the file open without sharing what the
/// call needs, so the call was refused, not made, and can be retried.
pub fn is_sharing_violation(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(n) if n == ERROR_SHARING_VIOLATION as i32 || n == ERROR_LOCK_VIOLATION as i32)
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

fn from_filetime(ft: FILETIME) -> SystemTime {
    let t = (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime);
    let since = |d: u64| Duration::new(d / 10_000_000, (d % 10_000_000) as u32 * 100);
    if t >= FILETIME_UNIX_EPOCH {
        UNIX_EPOCH + since(t - FILETIME_UNIX_EPOCH)
    } else {
        UNIX_EPOCH - since(FILETIME_UNIX_EPOCH - t)
    }
}

/// The kind of file from its attributes. Every reparse point counts as a symbolic link: a
/// lock or claim is never one, and none is ever followed.
fn kind_of(attributes: u32) -> FileKind {
    if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        FileKind::Symlink
    } else if attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
        FileKind::Directory
    } else {
        FileKind::Regular
    }
}

fn meta_of(info: &BY_HANDLE_FILE_INFORMATION) -> Meta {
    let modified = from_filetime(info.ftLastWriteTime);
    Meta {
        id: FileId {
            dev: u64::from(info.dwVolumeSerialNumber),
            ino: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        },
        nlink: u64::from(info.nNumberOfLinks),
        modified,
        // Windows has no POSIX ctime. NTFS's `ChangeTime` comes close, but whether creating
        // a hard link updates it is not documented, and the algorithm dates break markers
        // (hard links) by `changed`. The last write time is the claim's expiry, which is
        // never earlier than its last stamp, so a marker is presumed abandoned later than on
        // POSIX, never earlier.
        changed: modified,
        len: (u64::from(info.nFileSizeHigh) << 32) | u64::from(info.nFileSizeLow),
        kind: kind_of(info.dwFileAttributes),
    }
}

/// `GetFileInformationByHandle`: id, link count, times, size and attributes of an open file.
fn file_info(file: &File) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: the handle is open for as long as `file` is borrowed, and `info` is a valid,
    // writable BY_HANDLE_FILE_INFORMATION for the call to fill.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// `GetFileInformationByHandleEx(FileAttributeTagInfo)`: attributes and reparse tag.
fn attribute_tag(file: &File) -> io::Result<FILE_ATTRIBUTE_TAG_INFO> {
    let mut info = FILE_ATTRIBUTE_TAG_INFO::default();
    // SAFETY: valid open handle (borrowed from `file`); the buffer is a writable
    // FILE_ATTRIBUTE_TAG_INFO and its exact size is passed.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            file.as_raw_handle() as HANDLE,
            FileAttributeTagInfo,
            ptr::from_mut(&mut info).cast::<c_void>(),
            size_of::<FILE_ATTRIBUTE_TAG_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// Opens `path` without following a reparse point, sharing everything.
fn open(path: &Path, access: u32, flags: u32) -> io::Result<File> {
    OpenOptions::new()
        .access_mode(access)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | flags)
        .open(path)
}

/// Whether the call that just failed on this thread with `err` met a "delete pending" file:
/// one removed without POSIX semantics whose name lingers until its last handle closes.
/// Windows reports that as `ERROR_ACCESS_DENIED`; the `NTSTATUS` behind it tells.
fn is_delete_pending(err: &io::Error) -> bool {
    if err.raw_os_error() != Some(ERROR_ACCESS_DENIED as i32) {
        return false;
    }
    // SAFETY: no arguments; it reads the calling thread's TEB.
    let status = unsafe { RtlGetLastNtStatus() };
    status == STATUS_DELETE_PENDING
}

/// A "delete pending" name is as good as gone: report it as not found, as POSIX would.
/// Must be called right after the failed call, on the same thread.
fn pending_as(err: io::Error, code: u32) -> io::Error {
    if is_delete_pending(&err) {
        io::Error::from_raw_os_error(code as i32)
    } else {
        err
    }
}

fn to_wide(path: &Path) -> io::Result<Vec<u16>> {
    let mut wide: Vec<u16> = path.as_os_str().encode_wide().collect();
    if wide.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL character",
        ));
    }
    wide.push(0);
    Ok(wide)
}

/// A fresh name beside `path` for a file on its way out: short (so it fits whatever `path`'s
/// name is), unique across processes and calls, and never a claim or lock name.
fn private_name(path: &Path) -> Option<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(".flufl-unlinked.{:x}.{n:x}.{nanos:x}", std::process::id());
    Some(path.parent()?.join(name))
}

/// `path` in the `\\?\` form, which Windows takes without the `MAX_PATH` limit and without
/// reinterpreting it.
fn verbatim(path: &Path) -> io::Result<Vec<u16>> {
    let mut wide: Vec<u16> = match path.components().next() {
        Some(Component::Prefix(p)) => match p.kind() {
            Prefix::Disk(_) => r"\\?\"
                .encode_utf16()
                .chain(path.as_os_str().encode_wide())
                .collect(),
            Prefix::UNC(..) => r"\\?\UNC"
                .encode_utf16()
                .chain(path.as_os_str().encode_wide().skip(1))
                .collect(),
            _ => path.as_os_str().encode_wide().collect(),
        },
        _ => path.as_os_str().encode_wide().collect(),
    };
    if wide.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL character",
        ));
    }
    wide.push(0);
    Ok(wide)
}

/// `SetFileInformationByHandle(FileRenameInfo)`: renames the open file to `to` (absolute,
/// same volume), failing if `to` exists.
fn rename_by_handle(file: &File, to: &Path) -> io::Result<()> {
    let name = verbatim(to)?; // NUL-terminated
    let head = std::mem::offset_of!(FILE_RENAME_INFO, FileName);
    let size = head + name.len() * 2;
    // Zeroed (ReplaceIfExists false, no RootDirectory) and aligned for FILE_RENAME_INFO.
    let mut buf = vec![0u64; size.div_ceil(8)];
    let info = buf.as_mut_ptr().cast::<FILE_RENAME_INFO>();
    // SAFETY: `buf` is 8-byte aligned (enough for FILE_RENAME_INFO) and `size` bytes long,
    // room for the header and the whole name from offset `head`.
    unsafe {
        (*info).FileNameLength = ((name.len() - 1) * 2) as u32;
        let dst = buf.as_mut_ptr().cast::<u8>().add(head).cast::<u16>();
        ptr::copy_nonoverlapping(name.as_ptr(), dst, name.len());
    }
    // SAFETY: valid open handle with DELETE access (borrowed from `file`); `buf` holds a
    // FILE_RENAME_INFO of `size` bytes.
    let ok = unsafe {
        SetFileInformationByHandle(
            file.as_raw_handle() as HANDLE,
            FileRenameInfo,
            buf.as_ptr().cast::<c_void>(),
            size as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_handle_times(file: &File, time: SystemTime) -> io::Result<()> {
    file.set_times(FileTimes::new().set_accessed(time).set_modified(time))
}

impl Fs for RealFs {
    /// `CreateFileW` with `CREATE_NEW` and `FILE_FLAG_OPEN_REPARSE_POINT`: read access too, so
    /// that `fstat` may read the attributes of the handle.
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .share_mode(SHARE_ALL)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(path)
            .map_err(|e| pending_as(e, ERROR_ALREADY_EXISTS))
    }

    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        (&*file).write_all(data)
    }

    fn fstat(&self, file: &File) -> io::Result<Meta> {
        Ok(meta_of(&file_info(file)?))
    }

    /// `SetFileInformationByHandle(FileBasicInfo)` (std's `File::set_times`): last access and
    /// last write time. The handle needs `FILE_WRITE_ATTRIBUTES` on Windows (Wine does not
    /// check); `create_new`'s `GENERIC_WRITE` includes it.
    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()> {
        set_handle_times(file, time)
    }

    /// Opens the path itself (never a reparse point's target) for `FILE_WRITE_ATTRIBUTES`
    /// only, and sets its times.
    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        let file = open(path, FILE_WRITE_ATTRIBUTES, FILE_FLAG_BACKUP_SEMANTICS)
            .map_err(|e| pending_as(e, ERROR_FILE_NOT_FOUND))?;
        set_handle_times(&file, time)
    }

    /// `CreateFileW` for reading with `FILE_FLAG_OPEN_REPARSE_POINT` (and
    /// `FILE_FLAG_BACKUP_SEMANTICS`, so that a directory opens and is reported as one).
    /// A reparse point fails with `ERROR_STOPPED_ON_SYMLINK`, as `O_NOFOLLOW` fails with
    /// `ELOOP`; reading it would read the reparse point's own empty data.
    fn open_read(&self, path: &Path) -> io::Result<File> {
        let file = open(path, FILE_GENERIC_READ, FILE_FLAG_BACKUP_SEMANTICS)
            .map_err(|e| pending_as(e, ERROR_FILE_NOT_FOUND))?;
        if attribute_tag(&file)?.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(io::Error::from_raw_os_error(
                ERROR_STOPPED_ON_SYMLINK as i32,
            ));
        }
        Ok(file)
    }

    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(max.min(4096));
        file.take(max as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Opens the path itself for `FILE_READ_ATTRIBUTES` only (which no share mode of another
    /// handle can refuse) and reads its attributes.
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        let file = open(path, FILE_READ_ATTRIBUTES, FILE_FLAG_BACKUP_SEMANTICS)
            .map_err(|e| pending_as(e, ERROR_FILE_NOT_FOUND))?;
        self.fstat(&file)
    }

    /// `CreateHardLinkW` (std's `hard_link`), which links a reparse point itself, never its
    /// target. An existing `dst` fails with `ERROR_ALREADY_EXISTS`, a "delete pending" one
    /// too.
    #[allow(clippy::disallowed_methods)] // This is the `sys::Fs::link` that lint points to.
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        std::fs::hard_link(src, dst).map_err(|e| pending_as(e, ERROR_ALREADY_EXISTS))
    }

    /// `MoveFileExW` with `MOVEFILE_REPLACE_EXISTING` (std's `rename`, which falls back to a
    /// POSIX-semantics rename where a plain one is refused). It moves a reparse point itself.
    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        std::fs::rename(src, dst).map_err(|e| pending_as(e, ERROR_FILE_NOT_FOUND))
    }

    /// `unlink(2)` with POSIX semantics on every Windows file system: opens the name itself
    /// with `DELETE` access and `FILE_FLAG_DELETE_ON_CLOSE` (not a directory: without
    /// `FILE_FLAG_BACKUP_SEMANTICS` one fails, as `unlink(2)` fails), renames it through that
    /// handle to a private name in the same directory, and closes it.
    ///
    /// The name is gone when this returns, even while other processes hold the file open
    /// with `FILE_SHARE_DELETE`; the file itself goes with their last handle, under its
    /// private name. A plain delete (`DeleteFileW`, or a disposition without POSIX semantics,
    /// which Wine accepts and ignores) would leave the name "delete pending" until then: no
    /// one could create or link that name (our claim file's, for the next acquisition) in
    /// the meantime. Should the process die between the two calls, its handle closes and
    /// still deletes the file; should the rename fail, the file is deleted the old way.
    fn unlink(&self, path: &Path) -> io::Result<()> {
        let file = open(path, DELETE, FILE_FLAG_DELETE_ON_CLOSE)
            .map_err(|e| pending_as(e, ERROR_FILE_NOT_FOUND))?;
        if let Some(grave) = private_name(path) {
            if let Err(e) = rename_by_handle(&file, &grave) {
                log::debug!(
                    "could not rename {} away before deleting it: {e}",
                    path.display()
                );
            }
        }
        drop(file);
        Ok(())
    }

    /// `GetDriveTypeW` on the volume of `dir` (`GetVolumePathNameW`): network drives and UNC
    /// paths are remote, as is a volume whose type cannot be told.
    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        if let Some(Component::Prefix(p)) = dir.components().next() {
            if matches!(p.kind(), Prefix::UNC(..) | Prefix::VerbatimUNC(..)) {
                return Ok(true);
            }
        }
        let wide = to_wide(dir)?;
        let mut root = vec![0u16; wide.len().max(300)];
        // SAFETY: `wide` is NUL-terminated; `root` is writable for the length passed.
        let ok = unsafe { GetVolumePathNameW(wide.as_ptr(), root.as_mut_ptr(), root.len() as u32) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: GetVolumePathNameW succeeded, so `root` holds a NUL-terminated path.
        let kind = unsafe { GetDriveTypeW(root.as_ptr()) };
        Ok(matches!(
            kind,
            DRIVE_REMOTE | DRIVE_UNKNOWN | DRIVE_NO_ROOT_DIR
        ))
    }

    /// `OpenProcess` and a zero wait on the process handle. The start time is not reported:
    /// claims written on Windows carry no origin, so nothing would compare it.
    fn process(&self, pid: u32) -> ProcState {
        process(pid)
    }

    fn wait(&self, waiter: &mut super::Waiter, timeout: Duration) {
        waiter.inner.wait(timeout)
    }
}

/// Opens a process handle for `access`, or returns the Win32 error.
fn open_process(access: u32, pid: u32) -> Result<OwnedHandle, u32> {
    // SAFETY: plain call without pointers.
    let h = unsafe { OpenProcess(access, 0, pid) };
    if h.is_null() {
        // SAFETY: plain call without pointers.
        return Err(unsafe { GetLastError() });
    }
    // SAFETY: OpenProcess returned a new handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

fn process(pid: u32) -> ProcState {
    if pid == 0 {
        // The System Idle Process: never a lock holder.
        return ProcState::Unknown;
    }
    match open_process(PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE, pid) {
        // SAFETY: a valid process handle, owned for the call; a zero timeout only polls.
        Ok(h) => match unsafe { WaitForSingleObject(h.as_raw_handle() as HANDLE, 0) } {
            WAIT_TIMEOUT => ProcState::Running { start: None },
            // Exited, but someone still holds a handle on it, so its pid is not reused yet.
            WAIT_OBJECT_0 => ProcState::Zombie,
            _ => ProcState::Unknown,
        },
        // No such process (any more).
        Err(ERROR_INVALID_PARAMETER) => ProcState::Gone,
        // It exists, but belongs to someone we may not inspect.
        Err(ERROR_ACCESS_DENIED) => ProcState::Running { start: None },
        Err(_) => ProcState::Unknown,
    }
}

fn computer_name(format: COMPUTER_NAME_FORMAT) -> Option<String> {
    let mut len = 0u32;
    // SAFETY: a null buffer with size 0 only asks for the size needed (it fails with
    // ERROR_MORE_DATA and sets `len`, counting the terminating NUL).
    unsafe { GetComputerNameExW(format, ptr::null_mut(), &mut len) };
    if len == 0 {
        return None;
    }
    let mut buf = vec![0u16; len as usize];
    // SAFETY: `buf` is writable for `len` UTF-16 units.
    if unsafe { GetComputerNameExW(format, buf.as_mut_ptr(), &mut len) } == 0 {
        return None;
    }
    // On success `len` counts the characters, without the NUL.
    buf.truncate(len as usize);
    String::from_utf16(&buf).ok().filter(|s| !s.is_empty())
}

/// This machine's DNS name, as close to Python's `socket.getfqdn()` as can be had without a
/// resolver round trip: `GetComputerNameExW(ComputerNameDnsFullyQualified)` (host plus
/// primary DNS suffix), else the DNS host name, else the NetBIOS name. Its case is kept as
/// Windows reports it: Python keeps the resolver's case too, and there is no rule to guess it.
///
/// Python's answer is `gethostbyaddr(gethostname())`, the reverse lookup of the host's own
/// address; on a machine whose DNS server names it differently from its own configuration,
/// the two differ. On Windows the host name is compared only to report a flufl.lock
/// (Python) holder as stale, never to break a lock, since claims carry no boot id here.
pub fn hostname() -> String {
    [
        ComputerNameDnsFullyQualified,
        ComputerNameDnsHostname,
        ComputerNameNetBIOS,
    ]
    .into_iter()
    .find_map(computer_name)
    .unwrap_or_else(|| "localhost".to_string())
}

/// 0 (unknown): the file index is not in a directory listing, so waiters here take turns by
/// name alone.
pub fn inode_of(_entry: &std::fs::DirEntry) -> u64 {
    0
}

/// Nothing: Windows has no boot id or pid namespace that a claim could carry, so no claim
/// written here proves its holder's identity, and crashed holders are recovered by expiry.
pub fn host_identity() -> HostIdentity {
    HostIdentity::default()
}

/// `GetTickCount64`: milliseconds since boot, counting sleep and hibernation (unlike
/// `QueryUnbiasedInterruptTime`, and unlike `Instant` where it stops). Its ~16 ms resolution
/// is far below the clock margin.
pub fn boot_clock() -> Duration {
    // SAFETY: no arguments, no failure mode.
    Duration::from_millis(unsafe { GetTickCount64() })
}

mod watch;
pub use watch::WaiterImpl;

#[cfg(test)]
mod tests;
