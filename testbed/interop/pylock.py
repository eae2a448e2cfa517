#!/usr/bin/env python3
"""The Python side of the flufl.lock interop tests (project issue 4).

Uses only the standard library and flufl.lock 10.0.0 (testbed/interop/setup.sh installs
it). Run by crates/flufl-lock-interop/tests/interop.rs; every subcommand works on one lock
file path, exactly as given (flufl.lock does not make it absolute).

    hold LOCK LIFETIME        lock (LIFETIME seconds); print "locked"; wait for EOF on
                              stdin (or to be killed); unlock; print "unlocked", or "lost"
                              if the lock was broken meanwhile
    try LOCK TIMEOUT          print "trying"; lock(timeout=TIMEOUT s); on success print
                              "acquired", unlock, exit 0; on TimeOutError print "timeout",
                              exit 75
    details LOCK              print Lock(LOCK).details as JSON {hostname, pid, lockfile};
                              exit 1 with "null" on NotLockedError
    state LOCK                print Lock(LOCK).state.name
    contend LOCK N LOG COUNTER
                              print "ready"; wait for a line on stdin; then N
                              acquisitions, and print "done"; each critical section appends "E py<pid> <i>"
                              to LOG, increments the integer in COUNTER, appends
                              "X py<pid> <i>"
    break LOCK TIMEOUT        lock(timeout=TIMEOUT s) over an expired lock, so that flufl's
                              own break path runs; print "broke <n>" (how many times flufl
                              logged "lifetime has expired, breaking"), unlock, print
                              "unlocked"; exit 75 on TimeOutError
    relock LOCK SECONDS       lock; print "locked"; for SECONDS call lock() again and again
                              (each raises AlreadyLockedError after rewriting the claim
                              file, which is the lock file); unlock; print "relocks <n>"
    getfqdn                   print socket.getfqdn()
    version                   print flufl.lock's version

All output lines are flushed at once. The environment variable PYLOCK_POLL_MAX (seconds)
replaces flufl's waiting pause (random 0.01 to 2.01 s) by a random pause of at most that
long; only the pause changes, never the algorithm. The contention test sets it so that the
Python processes compete on the same footing as the Rust ones.
"""

import importlib.metadata
import inspect
import json
import logging
import os
import random
import socket
import sys
import time
from datetime import timedelta

from flufl.lock import AlreadyLockedError, Lock, NotLockedError, TimeOutError

EX_TEMPFAIL = 75


def say(*words):
    print(*words, flush=True)


class FastPollLock(Lock):
    """flufl.lock's Lock with a shorter pause between attempts, nothing else changed."""

    poll_max = 0.01

    def _sleep(self):
        time.sleep(random.random() * self.poll_max + 0.0005)


def make_lock(path, lifetime=None):
    poll = os.environ.get('PYLOCK_POLL_MAX')
    cls = Lock
    if poll:
        cls = FastPollLock
        cls.poll_max = float(poll)
    if lifetime is not None:
        lifetime = timedelta(seconds=float(lifetime))
    return cls(path, lifetime=lifetime)


def seconds(text):
    # flufl's lock() takes an int or a timedelta, not a float.
    return timedelta(seconds=float(text))


def cmd_hold(path, lifetime):
    lock = make_lock(path, lifetime)
    lock.lock()
    say('locked')
    # Until the test closes our stdin (or kills us).
    sys.stdin.buffer.read()
    try:
        lock.unlock()
    except NotLockedError:
        lock.unlock(unconditionally=True)  # removes our claim file if it is still there
        say('lost')
        return 0
    say('unlocked')
    return 0


def cmd_try(path, timeout):
    lock = make_lock(path)
    say('trying')
    try:
        lock.lock(timeout=seconds(timeout))
    except TimeOutError:
        say('timeout')
        return EX_TEMPFAIL
    say('acquired')
    lock.unlock()
    say('unlocked')
    return 0


def cmd_details(path):
    try:
        hostname, pid, lockfile = Lock(path).details
    except NotLockedError:
        say('null')
        return 1
    say(json.dumps({'hostname': hostname, 'pid': pid, 'lockfile': lockfile}))
    return 0


def cmd_state(path):
    say(Lock(path).state.name)
    return 0


def read_counter(counter):
    try:
        with open(counter) as fp:
            text = fp.read()
    except FileNotFoundError:
        return 0
    # Strict: a torn or garbled counter is a failure, never silently 0.
    return int(text)


def cmd_contend(path, n, log, counter):
    lock = make_lock(path, lifetime=60)
    me = f'py{os.getpid()}'
    # Start together with the others: say so, then wait for a line on stdin.
    say('ready')
    sys.stdin.readline()
    for i in range(int(n)):
        lock.lock(timeout=timedelta(seconds=60))
        with open(log, 'a') as fp:
            fp.write(f'E {me} {i}\n')
            fp.flush()
            value = read_counter(counter)
            # Widen the read-modify-write window a little, so that a second holder would
            # show up as a lost update.
            time.sleep(random.random() * 0.0005)
            with open(counter, 'w') as cp:
                cp.write(str(value + 1))
            fp.write(f'X {me} {i}\n')
        lock.unlock()
        # A short pause outside the lock, so that the others get a turn.
        time.sleep(random.random() * 0.002)
    say('done')
    return 0


class BreakCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.breaks = 0

    def emit(self, record):
        if record.getMessage() == 'lifetime has expired, breaking':
            self.breaks += 1


def cmd_break(path, timeout):
    counter = BreakCounter()
    logger = logging.getLogger('flufl.lock')
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    lock = make_lock(path)
    say('trying')
    try:
        lock.lock(timeout=seconds(timeout))
    except TimeOutError:
        say('timeout')
        return EX_TEMPFAIL
    say(f'broke {counter.breaks}')
    lock.unlock()
    say('unlocked')
    return 0


def cmd_relock(path, secs):
    lock = make_lock(path, lifetime=60)
    lock.lock()
    say('locked')
    end = time.monotonic() + float(secs)
    n = 0
    while time.monotonic() < end:
        try:
            lock.lock()
        except AlreadyLockedError:
            n += 1
    lock.unlock()
    say(f'relocks {n}')
    return 0


def cmd_getfqdn():
    say(socket.getfqdn())
    return 0


def cmd_version():
    say(importlib.metadata.version('flufl.lock'))
    return 0


COMMANDS = {
    'hold': cmd_hold,
    'try': cmd_try,
    'details': cmd_details,
    'state': cmd_state,
    'contend': cmd_contend,
    'break': cmd_break,
    'relock': cmd_relock,
    'getfqdn': cmd_getfqdn,
    'version': cmd_version,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        return 2
    func = COMMANDS[argv[1]]
    try:
        inspect.signature(func).bind(*argv[2:])
    except TypeError as error:
        sys.stderr.write(f'pylock.py {argv[1]}: {error}\n')
        return 2
    return func(*argv[2:])


if __name__ == '__main__':
    sys.exit(main(sys.argv))
