"""flufl.lock 10.0.0's ``Lock``, backed by the flufl-lock library (Rust).

Everything a user of flufl.lock can see is here under the same names: the ``Lock`` class
with its methods, properties, ``repr`` and exact messages, ``LockState``, the four
exceptions, ``SEP``, and this module's ``CLOCK_SLOP``, ``ERRORS`` and ``log``. The
algorithm underneath is the library's: the same files and claim format as flufl.lock (so
the two share locks), with the break marker, the file server's clock, the proof that a
holder on this host is dead, and waiting that wakes on a release.

What differs from flufl.lock is listed in the package's README (``help(flufl_lock_rs)``).
"""

from __future__ import annotations

import os
import errno
import logging
import weakref

from datetime import datetime, timedelta
from enum import Enum
from logging import NullHandler
from typing import TYPE_CHECKING, Final, Literal

from flufl_lock_rs import _native


if TYPE_CHECKING:
    from os import PathLike
    from types import TracebackType
    from typing import Self


__all__ = [
    'SEP',
    'AlreadyLockedError',
    'Lock',
    'LockError',
    'LockState',
    'NotLockedError',
    'TimeOutError',
]

#: A lifetime or timeout: a ``timedelta``, or a number of seconds (flufl.lock takes an
#: ``int``; a ``float`` works too).
Interval = timedelta | int | float

#: flufl.lock's default lifetime: 15 seconds.
DEFAULT_LOCK_LIFETIME: Final = timedelta(seconds=15)
#: The slop added to the expiry of locks written by flufl.lock before they are broken. A
#: ``Lock`` reads it when it is made. Locks written by this package have their expiry in the
#: file server's clock and are broken half a second after it.
CLOCK_SLOP: Final = timedelta(seconds=10)
#: The claim separator: ``|``, or ``^`` on Windows.
SEP: Final[str] = _native.SEP
#: The errnos flufl.lock treats as "no such file" (``ENOENT``, and ``ESTALE`` from NFS).
ERRORS: Final = (errno.ENOENT, errno.ESTALE)

#: flufl.lock's logger, ``flufl.lock``: the library's messages (waiting, breaking, lost
#: locks; every step at DEBUG) go here.
log = logging.getLogger('flufl.lock')
log.addHandler(NullHandler())


class LockError(Exception):
    """Base class for all exceptions in this module."""


class AlreadyLockedError(LockError):
    """An attempt is made to lock an already locked object."""


class NotLockedError(LockError):
    """An attempt is made to unlock an object that isn't locked."""


class TimeOutError(LockError):
    """The timeout interval elapsed before the lock succeeded."""


class LockState(Enum):
    """Infer the state of the lock (flufl.lock's six states).

    The policy on what to do with this information is left to the user.
    """

    #: There is no lock file so the lock is unlocked.
    unlocked = 1
    #: We own the lock and it is fresh.
    ours = 2
    #: We own the lock but it has expired.  Another process trying to acquire the lock
    #: will break it.
    ours_expired = 3
    #: We don't own the lock; its holder ran on this host and its process is gone.
    stale = 4
    #: Some other process owns the lock (probably) but it has expired.  Another process
    #: trying to acquire the lock will break it.
    theirs_expired = 5
    #: We don't own the lock, and it is live, or its content is not a claim we can read.
    unknown = 6


def _seconds(value: Interval, what: str) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    msg = f'{what} must be a timedelta or a number of seconds, not {type(value).__name__}'
    raise TypeError(msg)


class Lock:
    """Portable, NFS-safe file locking with lifetimes and timeouts: flufl.lock's ``Lock``.

    A process lays claim to the lock by writing a *claim file* beside the *lock file* and
    linking it to the lock file's name with ``link(2)``; whoever's link succeeds holds the
    lock.  A lock has a *lifetime*: once it has passed without a refresh, other processes
    may break the lock.  A lock whose holder ran on this host and has died is broken at once
    by waiters using this package.

    :param lockfile: The path to the lock file (made absolute).
    :param lifetime: The expected maximum lifetime of the lock, as a timedelta or a number
        of seconds.  Defaults to 15 seconds.
    :param separator: The one-character separator of the claim file's name.  Defaults to
        ``|`` on POSIX systems and ``^`` on Windows.
    :param default_timeout: How long ``lock()`` waits when it is given no timeout; ``None``
        (the default) waits forever.
    """

    def __init__(
        self,
        lockfile: str | PathLike[str],
        lifetime: Interval | None = None,
        separator: str = SEP,
        default_timeout: Interval | None = None,
    ) -> None:
        """Create the lock on the given file, with the given lifetime."""
        if lifetime is None:
            lifetime = DEFAULT_LOCK_LIFETIME
        self._default_timeout = default_timeout
        self._separator = separator
        # For extending the set of errnos that are retried (see `retry_errnos`).
        self._retry_errnos: list[int] = []
        self._raw_errnos: list[int] = []
        self._raw = self._build(lockfile, _seconds(lifetime, 'lifetime'))

    def _build(self, lockfile: str | PathLike[str], lifetime: float) -> _native.RawLock:
        now = None
        if type(self)._now is not Lock._now:
            # A subclass's `_now()` is the wall clock the library judges expiry by. The
            # library holds only a weak reference to this object.
            ref = weakref.ref(self)

            def now() -> float:
                me = ref()
                return (me._now() if me is not None else datetime.now()).timestamp()

        self._raw_errnos = list(self._retry_errnos)
        return _native.RawLock(
            lockfile,
            lifetime,
            self._separator,
            self._raw_errnos,
            CLOCK_SLOP.total_seconds(),
            now,
        )

    def __repr__(self) -> str:
        """``<Lock path [locked|unlocked: lifetime] pid=... at 0x...>``; never refreshes."""
        return '<{} {} [{}: {}] pid={} at {:#x}>'.format(
            self.__class__.__name__,
            self._raw.lockfile,
            ('locked' if self._raw.is_locked(False) else 'unlocked'),
            self.lifetime,
            os.getpid(),
            id(self),
        )

    @property
    def hostname(self) -> str:
        """The current machine's host name, as written into claims (``socket.getfqdn()``)."""
        return self._raw.hostname

    @property
    def details(self) -> tuple[str, int, str]:
        """Details as read from the lock file: ``(hostname, pid, lockfile)``.

        :raises NotLockedError: if there is no lock file, or it does not hold a claim.
        """
        hostname, pid, lockfile, _claimfile = self._raw.details()
        return hostname, pid, lockfile

    @property
    def state(self) -> LockState:
        """Infer the state of the lock, without changing anything."""
        return LockState(self._raw.state())

    @property
    def lifetime(self) -> timedelta:
        """The current lock lifetime."""
        return timedelta(seconds=self._raw.lifetime)

    @lifetime.setter
    def lifetime(self, lifetime: Interval) -> None:
        self._raw.set_lifetime(_seconds(lifetime, 'lifetime'))

    def refresh(
        self,
        lifetime: Interval | None = None,
        *,
        unconditionally: bool = False,
    ) -> None:
        """Refresh the lifetime of a locked file.

        :param lifetime: If given, the lock's new lifetime, from now and from each refresh.
        :param unconditionally: When False (the default), a ``NotLockedError`` is raised if
            an unlocked lock is refreshed.
        :raises NotLockedError: if we do not hold the lock, unless ``unconditionally``.
        """
        why = self._raw.refresh(
            None if lifetime is None else _seconds(lifetime, 'lifetime'), unconditionally
        )
        if why is not None:
            error = NotLockedError(f'{self!r}: {self._read()}')
            error.add_note(why)
            raise error

    def lock(self, timeout: Interval | None = None) -> None:
        """Acquire the lock.

        This blocks until the lock is acquired, or until ``timeout`` (or the constructor's
        ``default_timeout``) has passed.  The GIL is released while it waits, and Ctrl-C
        interrupts it: the ``KeyboardInterrupt`` leaves the lock not held and no claim
        file behind.

        :param timeout: How long to try, as a timedelta or a number of seconds.  None (the
            default) means the constructor's ``default_timeout``, and if that is None, keep
            trying forever.
        :raises AlreadyLockedError: if the lock is already acquired.
        :raises TimeOutError: if the time passes without the lock being acquired.
        """
        if timeout is None:
            timeout = self._default_timeout
        if self._raw_errnos != self._retry_errnos and not self._raw.is_locked(False):
            self._raw = self._build(self._raw.lockfile, self._raw.lifetime)
        self._raw.lock(None if timeout is None else _seconds(timeout, 'timeout'))

    def unlock(self, *, unconditionally: bool = False) -> None:
        """Release the lock, and remove our claim file.

        :param unconditionally: When False (the default), a ``NotLockedError`` is raised if
            this is called on an unlocked lock.
        :raises NotLockedError: if we don't own the lock, either because of unbalanced
            unlock calls, or because the lock was broken by another process after it
            expired, unless ``unconditionally`` is True.
        """
        self._raw.unlock(unconditionally)

    def _is_locked_no_refresh(self) -> bool:
        """Don't refresh the lock, just return the status."""
        return self._raw.is_locked(False)

    @property
    def is_locked(self) -> bool:
        """True if we own the lock, False if we do not.

        As in flufl.lock, checking the status of a lock we own refreshes it: its lifetime
        starts again.
        """
        try:
            return self._raw.is_locked(True)
        except PermissionError:
            log.error('No permission to refresh the log')
            return False

    def __enter__(self) -> Self:
        self.lock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> Literal[False]:
        self.unlock()
        # Don't suppress any exception that might have occurred.
        return False

    @property
    def retry_errnos(self) -> list[int]:
        """Further errno values that are retried, a bounded number of times.

        A new list takes effect at the next ``lock()`` that starts with the lock not held.
        """
        return self._retry_errnos[:]

    @retry_errnos.setter
    def retry_errnos(self, errnos: list[int]) -> None:
        self._retry_errnos = []
        self._retry_errnos.extend(errnos)

    @retry_errnos.deleter
    def retry_errnos(self) -> None:
        self._retry_errnos = []

    @property
    def expiration(self) -> datetime:
        """The lock's expiration time, regardless of ownership (naive, local time).

        :raises FileNotFoundError: if there is no lock file.
        """
        return datetime.fromtimestamp(self._raw.expiration())

    @property
    def lockfile(self) -> str:
        """Return the lock file name (absolute)."""
        return self._raw.lockfile

    @property
    def claimfile(self) -> str:
        """Return the claim file name."""
        return self._raw.claimfile

    def _read(self) -> str | None:
        """The claim in the lock file, or None."""
        try:
            return self._raw.details()[3]
        except NotLockedError:
            return None

    def _now(self) -> datetime:
        """Return the current time.

        A hook subclasses can override, as in flufl.lock: the library then judges the
        expiry of locks written by flufl.lock against this clock.  (Locks written by this
        package have their expiry in the file server's clock, learned from the files
        themselves, so they need no such help.)
        """
        return datetime.now()
