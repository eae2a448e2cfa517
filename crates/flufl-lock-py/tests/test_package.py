"""flufl_lock_rs's own tests: what flufl.lock's suite does not cover.

The API against the real flufl.lock's, the stubs, Ctrl-C while waiting, threads, fork,
the ``_now`` hook, garbage collection, a lock broken and taken again, a lock file that
holds no claim, logging. Every wait has a time limit.
"""

import gc
import inspect
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest

import flufl_lock_rs
from flufl_lock_rs import (
    SEP,
    AlreadyLockedError,
    Lock,
    LockState,
    NotLockedError,
    TimeOutError,
    _lockfile,
    _native,
)

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'helper.py')


class Child:
    """A helper.py process whose stdout lines are read by a thread, with time limits."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen(
            [sys.executable, HELPER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.split())
        self.lines.put(None)

    def expect(self, word, timeout=10):
        line = self.lines.get(timeout=timeout)
        assert line and line[0] == word, f'expected {word!r}, got {line!r}'
        return line

    def close(self, timeout=10):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


# The API.


def test_all_and_star_import():
    namespace = {}
    exec('from flufl_lock_rs import *', namespace)
    del namespace['__builtins__']
    assert set(namespace) == set(flufl_lock_rs.__all__)
    assert flufl_lock_rs.__all__ == [
        'SEP', 'AlreadyLockedError', 'Lock', 'LockError', 'LockState', 'NotLockedError',
        'TimeOutError',
    ]
    assert SEP == ('^' if sys.platform == 'win32' else '|')
    assert _lockfile.CLOCK_SLOP == timedelta(seconds=10)
    assert _lockfile.ERRORS == (2, 116) or sys.platform != 'linux'
    assert _lockfile.log is logging.getLogger('flufl.lock')


def test_version_is_the_wheels():
    from importlib.metadata import version

    assert flufl_lock_rs.__version__ == version('flufl-lock-rs')


def test_api_matches_flufl_lock(flufl_py):
    """Every public name, method signature and property of flufl.lock 10.0.0's Lock."""
    dump = r'''
import inspect, json, flufl.lock as m, flufl.lock._lockfile as lf
out = {"all": m.__all__, "states": {s.name: s.value for s in m.LockState},
       "lockfile": sorted(n for n in ("CLOCK_SLOP", "ERRORS", "log", "SEP") if hasattr(lf, n)),
       "members": {}}
for name, value in vars(m.Lock).items():
    if name.startswith("__") and name not in ("__init__", "__enter__", "__exit__", "__repr__"):
        continue
    if name.startswith("_") and not name.startswith("__") and name != "_now":
        continue
    if isinstance(value, property):
        out["members"][name] = ["property", value.fset is not None, value.fdel is not None]
    else:
        out["members"][name] = ["method", [(p.name, str(p.kind), repr(p.default)) for p in inspect.signature(value).parameters.values()]]
for e in ("LockError", "AlreadyLockedError", "NotLockedError", "TimeOutError"):
    out[e] = [c.__name__ for c in getattr(m, e).__mro__]
print(json.dumps(out))
'''
    theirs = json.loads(subprocess.run([flufl_py, '-c', dump], capture_output=True, text=True,
                                       check=True, timeout=30).stdout)
    assert flufl_lock_rs.__all__ == theirs['all']
    assert {s.name: s.value for s in LockState} == theirs['states']
    for name in theirs['lockfile']:
        assert hasattr(_lockfile, name), name
    for name, (kind, *rest) in theirs['members'].items():
        ours = inspect.getattr_static(Lock, name)
        if kind == 'property':
            assert isinstance(ours, property), name
            assert [ours.fset is not None, ours.fdel is not None] == rest[0:2], name
        else:
            params = [(p.name, str(p.kind), repr(p.default))
                      for p in inspect.signature(ours).parameters.values()]
            # Same names, kinds and defaults (SEP is the same value on both sides).
            assert params == [tuple(p) for p in rest[0]], name
    for e in ('LockError', 'AlreadyLockedError', 'NotLockedError', 'TimeOutError'):
        assert [c.__name__ for c in getattr(flufl_lock_rs, e).__mro__] == theirs[e]


def test_stubs_match_the_native_module():
    stub = os.path.join(os.path.dirname(flufl_lock_rs.__file__), '_native.pyi')
    text = open(stub).read()
    assert os.path.exists(os.path.join(os.path.dirname(stub), 'py.typed'))
    public = {n for n in dir(_native.RawLock) if not n.startswith('_')}
    for name in public:
        assert f'def {name}(' in text, f'{name} missing from _native.pyi'
    for name in ('SEP', 'DEFAULT_LIFETIME', 'DEFAULT_FOREIGN_SLOP'):
        assert hasattr(_native, name) and f'{name}:' in text


def test_lifetime_and_timeout_forms(lockfile):
    lock = Lock(lockfile, lifetime=2.5)
    assert lock.lifetime == timedelta(seconds=2.5)
    lock.lifetime = timedelta(minutes=1)
    assert lock.lifetime.seconds == 60
    with pytest.raises(ValueError):
        lock.lifetime = -1
    with pytest.raises(TypeError):
        lock.lifetime = '15'
    with pytest.raises(ValueError):
        Lock(lockfile, separator='||')
    other = Lock(lockfile)
    other.lock()
    for timeout in (0, 0.05, timedelta(milliseconds=50), -1):
        t0 = time.monotonic()
        with pytest.raises(TimeOutError):
            lock.lock(timeout=timeout)
        assert time.monotonic() - t0 < 1
    other.unlock()
    with pytest.raises(ValueError):
        lock.lock(timeout=float('nan'))
    lock.lock(timeout=1e30)  # longer than the clock can count: no timeout
    lock.unlock()
    with pytest.raises(OSError):
        Lock(lockfile, lifetime=0).lock()  # born expired: refused
    assert os.listdir(os.path.dirname(lockfile)) == []


def test_errors_keep_flufl_messages_and_add_ours(lockfile):
    lock = Lock(lockfile)
    with pytest.raises(NotLockedError) as e:
        lock.unlock()
    assert str(e.value) == 'Already unlocked'
    assert e.value.__notes__ == [f'{lockfile} is not locked by this process']
    with pytest.raises(NotLockedError) as e:
        lock.refresh()
    assert str(e.value).startswith('<Lock ') and str(e.value).endswith(': None')
    with lock:
        with pytest.raises(AlreadyLockedError) as e:
            lock.lock()
        assert str(e.value) == 'We already had the lock'
        with pytest.raises(TimeOutError) as e:
            Lock(lockfile).lock(timeout=0.2)
        assert str(e.value) == 'Could not acquire the lock'
        assert f'waiting for {lockfile}: held by {lock.hostname} pid {os.getpid()}' in e.value.__notes__[0]
    with pytest.raises(FileNotFoundError):
        lock.expiration
    with pytest.raises(NotLockedError) as e:
        lock.details
    assert str(e.value) == 'Details are unavailable'
    bad = Lock(os.path.join(lockfile, 'no-such-dir', 'x.lck'))
    with pytest.raises(NotADirectoryError if os.path.exists(lockfile) else FileNotFoundError) as e:
        bad.lock()
    assert e.value.filename.startswith(lockfile)


def test_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lock = Lock('rel.lck')
    assert lock.lockfile == str(tmp_path / 'rel.lck')
    with lock:
        assert lock.details[2] == lock.lockfile


# flufl.lock's documented behaviour.


def test_is_locked_refreshes(lockfile):
    lock = Lock(lockfile, lifetime=30)
    with lock:
        before = lock.expiration
        time.sleep(0.3)
        assert lock._is_locked_no_refresh()
        assert lock.expiration == before
        assert lock.is_locked
        assert lock.expiration > before


def test_lock_broken_after_expiry_is_taken_again(lockfile):
    lock = Lock(lockfile, lifetime=1)
    lock.lock()
    other = Lock(lockfile)
    other.lock(timeout=5)  # breaks ours once it expired (1 s plus 0.5 s margin)
    assert not lock.is_locked
    assert lock.state == LockState.unknown
    with pytest.raises(NotLockedError):
        lock.unlock()
    other.unlock()
    lock.lock(timeout=1)
    assert lock.is_locked
    lock.unlock()
    assert os.listdir(os.path.dirname(lockfile)) == []


def test_lock_file_without_claim_waits_until_timeout(lockfile):
    with open(lockfile, 'w') as fp:
        fp.write('save me')
    lock = Lock(lockfile)
    t0 = time.monotonic()
    with pytest.raises(TimeOutError):
        lock.lock(timeout=1.5)
    assert 1.4 < time.monotonic() - t0 < 3
    assert open(lockfile).read() == 'save me'
    assert lock.state == LockState.unknown


def test_now_hook_judges_flufl_locks(lockfile):
    """A subclass's _now() is the clock for locks written by flufl.lock, as documented."""
    # A flufl.lock claim (no proof of origin) held by a live pid, expiring in 100 s.
    claim = SEP.join((lockfile, Lock(lockfile).hostname, '1', '12345'))
    with open(claim, 'w') as fp:
        fp.write(claim)
    os.link(claim, lockfile)
    expiry = time.time() + 100
    os.utime(lockfile, (expiry, expiry))

    class Fast(Lock):
        def _now(self):
            return datetime.now() + timedelta(seconds=200)

    assert Lock(lockfile).state == LockState.unknown
    assert Fast(lockfile).state == LockState.theirs_expired
    with pytest.raises(TimeOutError):
        Lock(lockfile).lock(timeout=0.2)
    fast = Fast(lockfile)
    fast.lock(timeout=2)  # expired by its clock, plus CLOCK_SLOP: broken
    assert fast.details[1] == os.getpid()
    fast.unlock()
    assert os.listdir(os.path.dirname(lockfile)) == []


def test_pid_of_a_thread_is_stale(lockfile):
    """As flufl.lock (psutil): a claim whose pid is a thread of some process, not a process,
    is stale. (flufl.lock's own suite makes such a claim: its simulate_process_crash picks
    the first free pid after the holder's, often the holder's own queue feeder thread.)"""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        holder = Lock(lockfile)
        holder.lock()
        claim = open(lockfile).read()
        lock, host, pid, rand = claim.split(SEP)
        with open(lockfile, 'w') as fp:  # in place, as simulate_process_crash does
            fp.write(SEP.join((lock, host, str(thread.native_id), rand)))
        assert thread.native_id != os.getpid()
        assert Lock(lockfile).state == LockState.stale
    finally:
        stop.set()
        thread.join()


def test_garbage_collected_lock_stays_held(lockfile):
    """As flufl.lock: dropping a held Lock object does not release it."""
    Lock(lockfile).lock()
    gc.collect()
    assert os.path.exists(lockfile)
    assert Lock(lockfile).state == LockState.unknown  # we are alive: not stale
    Lock(lockfile).details  # readable
    with pytest.raises(TimeOutError):
        Lock(lockfile).lock(timeout=0.1)


def test_logging_goes_to_flufl_lock_logger(lockfile, caplog):
    with caplog.at_level(logging.DEBUG, logger='flufl.lock'):
        with Lock(lockfile):
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == 'flufl.lock']
    assert any(m.startswith('acquired ') for m in messages), messages
    assert any(m.startswith('released ') for m in messages), messages


# Threads, Ctrl-C, fork.


def test_lock_shared_between_threads(lockfile):
    holder = Child('hold', lockfile, '30')
    holder.expect('locked')
    lock = Lock(lockfile)
    done = threading.Event()
    errors = []

    def wait():
        try:
            lock.lock(timeout=20)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        done.set()

    t = threading.Thread(target=wait)
    t.start()
    # The waiting thread has released the GIL: this one runs, and queries answer at once.
    count, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 0.5:
        count += 1
    assert count > 100_000
    t0 = time.monotonic()
    assert lock.state == LockState.unknown
    assert not lock.is_locked
    repr(lock)
    assert time.monotonic() - t0 < 0.2
    assert not done.is_set()
    holder.close()
    assert done.wait(10) and not errors, errors
    t.join(10)
    # Locked in one thread, used and unlocked in another.
    assert lock.is_locked
    with pytest.raises(AlreadyLockedError):
        lock.lock(timeout=0)
    lock.unlock()
    # Threads taking turns on one Lock object each, and on one shared object.
    counter = [0]

    def work(shared):
        for _ in range(50):
            mine = shared or Lock(lockfile)
            while True:
                try:
                    mine.lock(timeout=10)
                    break
                except AlreadyLockedError:
                    time.sleep(0.0005)  # another thread holds the shared object
            value = counter[0]
            time.sleep(0.0001)
            counter[0] = value + 1
            mine.unlock()

    for shared in (None, Lock(lockfile)):
        counter[0] = 0
        threads = [threading.Thread(target=work, args=(shared,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert counter[0] == 200
    assert os.listdir(os.path.dirname(lockfile)) == []


@pytest.mark.parametrize('waiting', ['blocking', 'async'])
def test_ctrl_c_while_waiting(lockfile, capsys, waiting):
    """KeyboardInterrupt within 100 ms, the lock not taken, no claim file left, whether the
    wait is blocking slices (local filesystems) or one async acquisition (remote ones)."""
    holder = Child('hold', lockfile, '60')
    holder.expect('locked')
    env = dict(os.environ, TEST_WAITING=waiting)
    latencies = []
    for timeout in [None] * 10 + ['30'] * 10:
        waiter = Child('wait', lockfile, *([timeout] if timeout else []), env=env)
        waiter.expect('waiting')
        time.sleep(0.3)  # well inside lock()
        t0 = time.monotonic_ns()
        waiter.proc.send_signal(signal.SIGINT)
        line = waiter.expect('interrupted')
        latencies.append((int(line[1]) - t0) / 1e6)
        assert waiter.close() == 130
        # Only the holder's lock file and claim are left.
        names = os.listdir(os.path.dirname(lockfile))
        assert len(names) == 2, names
        assert Lock(lockfile).details[1] == holder.proc.pid
    holder.close()
    latencies.sort()
    with capsys.disabled():
        print(f'\nCtrl-C while waiting ({waiting}): KeyboardInterrupt after '
              f'{latencies[len(latencies) // 2]:.1f} ms median, {latencies[-1]:.1f} ms max '
              f'({len(latencies)} tries)')
    assert latencies[-1] < 100


def test_waiting_mode(lockfile):
    """Blocking slices on a local filesystem; one async acquisition (forced here) times out,
    hands over and leaves nothing behind as well."""
    lock = Lock(lockfile)
    assert lock._raw.waiting is None
    with lock:
        pass
    assert lock._raw.waiting == 'blocking'  # the tests run on a local filesystem
    holder = Child('hold', lockfile, '30')
    holder.expect('locked')
    waiter = Lock(lockfile)
    waiter._raw._set_waiting('async')
    t0 = time.monotonic()
    with pytest.raises(TimeOutError):
        waiter.lock(timeout=0.3)
    assert 0.25 < time.monotonic() - t0 < 1
    assert len(os.listdir(os.path.dirname(lockfile))) == 2
    threading.Timer(0.3, holder.close).start()
    waiter.lock(timeout=10)
    assert waiter.is_locked
    waiter.unlock()
    assert os.listdir(os.path.dirname(lockfile)) == []


def test_forked_child_neither_uses_nor_releases_the_parents_lock(lockfile):
    lock = Lock(lockfile)
    lock.lock()
    unused = Lock(lockfile + '.x')
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            unused.lock(timeout=0)  # its claims would name the parent
            code = 1
        except OSError:
            pass
        except BaseException:  # noqa: BLE001
            code = 2
        try:
            lock.lock(timeout=0)  # held: as flufl.lock says in a forked child
            code = 3
        except AlreadyLockedError:
            pass
        except BaseException:  # noqa: BLE001
            code = 4
        del lock, unused
        gc.collect()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lock.is_locked
    # A child that exits through normal interpreter shutdown does not release it either.
    child = subprocess.run(
        [sys.executable, '-c', f'''
import os, sys
from flufl_lock_rs import Lock
lock = Lock({lockfile + '.2'!r}, lifetime=30)
lock.lock()
if os.fork() == 0:
    sys.exit(0)  # the child's interpreter shuts down, and the Lock object with it
os.wait()
print(lock.is_locked)
lock.unlock()
'''],
        capture_output=True, text=True, timeout=30,
    )
    assert child.stdout.strip() == 'True', child
    lock.unlock()
