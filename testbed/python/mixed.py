#!/usr/bin/env python3
"""Mixed contention over one lock, and crashed holders recovered (issue 16).

    python testbed/python/mixed.py

Run with the venv of scripts/test-python.sh (flufl_lock_rs installed); needs FLUFL_PY (a
Python with the real flufl.lock 10.0.0: testbed/interop/setup.sh) and FLUFL_LOCK_CLI (the
`flufl-lock` command). It proves:

1. Contention: processes using flufl_lock_rs, the real flufl.lock (testbed/interop/pylock.py
   ``contend``) and the ``flufl-lock run`` command take one lock, started together; each
   critical section appends "E who i" to a log, increments a counter file (with a pause in
   between) and appends "X who i". Zero overlapping sections, zero lost updates, at least
   300 acquisitions, every kind present, no files left behind.
2. A holder using flufl_lock_rs killed by SIGKILL: a flufl_lock_rs waiter on this host takes
   the lock at once (it proves the holder dead); a flufl.lock waiter takes it only after its
   expiry plus flufl.lock's 10 s slop, as documented.

Every wait has a time limit. Prints the figures; exits 1 on any failure.
"""

import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYLOCK = os.path.join(REPO, 'testbed', 'interop', 'pylock.py')

OURS, OURS_N = 3, 60  # flufl_lock_rs processes, acquisitions each
FLUFL, FLUFL_N = 2, 50  # flufl.lock processes (pylock.py contend)
CLI, CLI_N = 2, 30  # threads running `flufl-lock run` again and again
TOTAL = OURS * OURS_N + FLUFL * FLUFL_N + CLI * CLI_N

# A flufl_lock_rs contender: the same protocol as pylock.py's `contend`.
OURS_WORKER = r'''
import os, random, sys, time
from datetime import timedelta
from flufl_lock_rs import Lock
path, n, log, counter = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
me = f"rs{os.getpid()}"
lock = Lock(path, lifetime=60)
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    lock.lock(timeout=timedelta(seconds=60))
    with open(log, "a") as fp:
        fp.write(f"E {me} {i}\n"); fp.flush()
        try:
            value = int(open(counter).read())
        except FileNotFoundError:
            value = 0
        time.sleep(random.random() * 0.0005)
        with open(counter, "w") as cp:
            cp.write(str(value + 1))
        fp.write(f"X {me} {i}\n")
    lock.unlock()
    time.sleep(random.random() * 0.002)
print("done", flush=True)
'''

# The critical section `flufl-lock run` runs (with the system's Python).
CLI_SECTION = r'''
import sys, time, random
me, i, log, counter = sys.argv[1:5]
with open(log, "a") as fp:
    fp.write(f"E {me} {i}\n"); fp.flush()
    try:
        value = int(open(counter).read())
    except FileNotFoundError:
        value = 0
    time.sleep(random.random() * 0.0005)
    with open(counter, "w") as cp:
        cp.write(str(value + 1))
    fp.write(f"X {me} {i}\n")
'''


def say(text):
    print(text, flush=True)


def need(name):
    value = os.environ.get(name)
    if not value or not os.path.exists(value):
        sys.exit(f'mixed.py: set {name} (scripts/test-python.sh does): it is {value!r}')
    return value


class Proc:
    """A child whose stdout lines are read by a thread, with time limits."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.strip()))
        self.lines.put((time.monotonic(), None))

    def expect(self, word, timeout):
        at, line = self.lines.get(timeout=timeout)
        if line is None or not line.startswith(word):
            raise AssertionError(f'{self.argv[:3]}: expected {word!r}, got {line!r}')
        return at, line


def contention(flufl_py, cli):
    with tempfile.TemporaryDirectory() as d:
        lock, log, counter = (os.path.join(d, n) for n in ('shared.lck', 'log', 'counter'))
        procs = [Proc([sys.executable, '-c', OURS_WORKER, lock, str(OURS_N), log, counter])
                 for _ in range(OURS)]
        env = dict(os.environ, PYLOCK_POLL_MAX='0.005')
        procs += [Proc([flufl_py, PYLOCK, 'contend', lock, str(FLUFL_N), log, counter], env)
                  for _ in range(FLUFL)]
        for p in procs:
            p.expect('ready', 30)
        failures = []

        def run_cli(k):
            for i in range(CLI_N):
                r = subprocess.run(
                    [cli, 'run', '--lifetime', '60', '--timeout', '60', lock, '--',
                     sys.executable, '-c', CLI_SECTION, f'cli{k}', str(i), log, counter],
                    capture_output=True, text=True, timeout=120)
                if r.returncode != 0:
                    failures.append(f'flufl-lock run exited {r.returncode}: {r.stderr}')
                time.sleep(random.random() * 0.002)

        t0 = time.monotonic()
        threads = [threading.Thread(target=run_cli, args=(k,)) for k in range(CLI)]
        for p in procs:
            p.proc.stdin.write('go\n')
            p.proc.stdin.flush()
        for t in threads:
            t.start()
        for p in procs:
            p.expect('done', 300)
            p.proc.stdin.close()
            if p.proc.wait(30) != 0:
                failures.append(f'{p.argv[:3]} exited {p.proc.returncode}')
        for t in threads:
            t.join(300)
        elapsed = time.monotonic() - t0
        # The log: strictly alternating E/X of the same section.
        entries = [line.split() for line in open(log)]
        overlaps, inside, kinds, handovers, last = 0, None, {}, 0, None
        for mark, who, i in entries:
            if mark == 'E':
                if inside is not None:
                    overlaps += 1
                inside = (who, i)
                kind = who[:2]
                kinds[kind] = kinds.get(kind, 0) + 1
                if last is not None and kind != last:
                    handovers += 1
                last = kind
            else:
                if inside != (who, i):
                    overlaps += 1
                inside = None
        sections = sum(kinds.values())
        value = int(open(counter).read())
        left = sorted(set(os.listdir(d)) - {'log', 'counter'})
        say(f'mixed contention: {sections} acquisitions in {elapsed:.1f} s '
            f'(flufl_lock_rs {kinds.get("rs", 0)}, flufl.lock {kinds.get("py", 0)}, '
            f'flufl-lock command {kinds.get("cl", 0)}), {handovers} hand-overs between kinds, '
            f'{overlaps} overlaps, {sections - value} lost updates, {len(left)} files left')
        if failures:
            failures = failures[:5]
        if overlaps:
            failures.append(f'{overlaps} overlapping critical sections')
        if value != sections or sections != TOTAL:
            failures.append(f'counter {value}, sections {sections}, expected {TOTAL}')
        if sections < 300 or set(kinds) != {'rs', 'py', 'cl'}:
            failures.append(f'not every kind took the lock: {kinds}')
        if left:
            failures.append(f'files left behind: {left}')
        return failures


def crash(flufl_py, waiter):
    """SIGKILL a flufl_lock_rs holder (lifetime 3 s) while `waiter` waits: how long until the
    waiter has the lock, from the kill and from the lock's expiry."""
    with tempfile.TemporaryDirectory() as d:
        lock = os.path.join(d, 'crash.lck')
        holder = Proc([sys.executable, '-c', f'''
from flufl_lock_rs import Lock
import sys
lock = Lock({lock!r}, lifetime=3)
lock.lock()
print("locked", flush=True)
sys.stdin.read()
'''])
        holder.expect('locked', 30)
        expiry = os.stat(lock).st_mtime
        if waiter == 'flufl_lock_rs':
            w = Proc([sys.executable, '-c', f'''
from flufl_lock_rs import Lock
lock = Lock({lock!r})
print("trying", flush=True)
lock.lock(timeout=60)
print("acquired", flush=True)
lock.unlock()
'''])
        else:
            # The real flufl.lock, with its own waiting (random 0.01 to 2.01 s pauses).
            w = Proc([flufl_py, PYLOCK, 'try', lock, '60'])
        w.expect('trying', 30)
        time.sleep(0.5)  # waiting now
        killed_wall, killed = time.time(), time.monotonic()
        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(10)
        at, _ = w.expect('acquired', 60)
        w.proc.wait(30)
        after_kill = at - killed
        after_expiry = (killed_wall + after_kill) - expiry
        left = os.listdir(d)
        return after_kill, after_expiry, left


def main():
    flufl_py = need('FLUFL_PY')
    cli = need('FLUFL_LOCK_CLI')
    failures = contention(flufl_py, cli)
    ours_kill, ours_exp, left1 = crash(flufl_py, 'flufl_lock_rs')
    say(f'crashed flufl_lock_rs holder (SIGKILL, lifetime 3 s): a flufl_lock_rs waiter took the '
        f'lock {ours_kill * 1000:.1f} ms after the kill ({-ours_exp:.2f} s before its expiry)')
    if ours_kill > 0.5:
        failures.append(f'flufl_lock_rs waiter took {ours_kill:.2f} s to recover a dead holder')
    py_kill, py_exp, left2 = crash(flufl_py, 'flufl.lock')
    say(f'crashed flufl_lock_rs holder: a flufl.lock waiter took the lock {py_kill:.2f} s after '
        f'the kill, {py_exp:.2f} s after its expiry (flufl.lock: past expiry + CLOCK_SLOP 10 s, '
        f'its next poll breaks it and the one after takes it, pauses of at most 2.01 s)')
    if not 10 <= py_exp <= 14.5:
        failures.append(f'flufl.lock waiter took the lock {py_exp:.2f} s after expiry, not 10-14.5 s')
    # flufl.lock's break removes the dead holder's claim; ours too.
    for left in (left1, left2):
        if left:
            failures.append(f'files left after a crash recovery: {left}')
    for f in failures:
        say(f'FAILED {f}')
    say(f'mixed.py: {"0 failed" if not failures else f"{len(failures)} failed"}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
