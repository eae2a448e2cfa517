"""flufl.lock's API, backed by the flufl-lock library (Rust): NFS-safe file locking.

Change ``from flufl.lock import Lock`` to ``from flufl_lock_rs import Lock``: the same
``Lock``, ``LockState``, ``SEP`` and exceptions, on the same lock files, so processes that
still run flufl.lock keep sharing the locks.  Underneath is the flufl-lock library's
algorithm: lost NFS replies survived, race-free breaking, instant recovery from a holder
that died on this host, waiting that wakes at once on a release, Ctrl-C while waiting.

See the package's README for what differs from flufl.lock.
"""

from flufl_lock_rs._lockfile import (
    SEP,
    AlreadyLockedError,
    Lock,
    LockError,
    LockState,
    NotLockedError,
    TimeOutError,
)


__version__ = '0.1.0'

# flufl.lock 10.0.0's __all__, name for name.
__all__ = [
    'SEP',
    'AlreadyLockedError',
    'Lock',
    'LockError',
    'LockState',
    'NotLockedError',
    'TimeOutError',
]
