#!/usr/bin/env python3
"""A spool shared by several processes, each appending under one lock.

    python crates/flufl-lock-py/examples/spool.py [DIRECTORY]

Four worker processes each append 25 numbered lines to DIRECTORY/spool.txt (a temporary
directory by default) under the lock DIRECTORY/spool.lck, with a 10 s lifetime that a long
step extends with refresh(). The parent then checks that no line was lost and shows the
lock's state and details while it holds it. Migrating from flufl.lock is the import line.
"""

import multiprocessing
import os
import sys
import tempfile
from datetime import timedelta

from flufl_lock_rs import Lock, LockState, TimeOutError  # was: from flufl.lock import ...


def worker(directory, name, lines):
    lock = Lock(os.path.join(directory, 'spool.lck'), lifetime=timedelta(seconds=10))
    for i in range(lines):
        try:
            with lock:  # waits: the GIL is released, Ctrl-C interrupts it
                with open(os.path.join(directory, 'spool.txt'), 'a') as spool:
                    spool.write(f'{name} {i}\n')
                if i == lines // 2:
                    lock.refresh(30)  # a long step: the lock now lasts 30 s from now
        except TimeOutError:
            sys.exit(f'{name}: could not get the lock')


def main(directory):
    workers = [multiprocessing.Process(target=worker, args=(directory, f'w{n}', 25)) for n in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    with open(os.path.join(directory, 'spool.txt')) as spool:
        lines = spool.read().splitlines()
    print(f'{len(lines)} lines from {len({line.split()[0] for line in lines})} processes')
    assert len(lines) == 100 and len(set(lines)) == 100
    lock = Lock(os.path.join(directory, 'spool.lck'))
    assert lock.state == LockState.unlocked
    with lock:
        hostname, pid, lockfile = lock.details
        print(f'{lock!r}: state {lock.state.name}, held by {hostname} pid {pid}, '
              f'expires {lock.expiration:%H:%M:%S}')
    return 0


if __name__ == '__main__':
    if len(sys.argv) > 1:
        sys.exit(main(sys.argv[1]))
    with tempfile.TemporaryDirectory() as d:
        sys.exit(main(d))
