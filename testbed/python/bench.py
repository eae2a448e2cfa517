#!/usr/bin/env python3
"""flufl_lock_rs and the real flufl.lock side by side, in the same run (issue 16).

    python testbed/python/bench.py [--quick]

Run with the venv of scripts/test-python.sh (flufl_lock_rs installed); FLUFL_PY names a
Python with the real flufl.lock 10.0.0 (testbed/interop/setup.sh). Each side runs in its
own processes (the same worker code, importing one package or the other), on a local
filesystem (a temporary directory):

- uncontended: ``lock()`` + ``unlock()`` of a free lock, one process per side, many
  cycles; the median of 7 rounds, the two sides' rounds interleaved, in microseconds per
  cycle;
- hand-off: two processes take turns; a waiter is inside ``lock()`` when the holder calls
  ``unlock()``; the time from the start of ``unlock()`` to the waiter's ``lock()``
  returning (``time.monotonic_ns()``, one clock for both processes); median and 90th
  percentile.

Fails (exit 1) unless flufl_lock_rs is at least 2x faster uncontended and its hand-off
median is at most 1 ms.
"""

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time


WORKER = r'''
import sys, time
if sys.argv[1] == "flufl_lock_rs":
    from flufl_lock_rs import Lock
else:
    from flufl.lock import Lock
path = sys.argv[2]
lock = Lock(path, lifetime=60)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "cycles":
        n = int(cmd[1])
        t0 = time.perf_counter_ns()
        for _ in range(n):
            lock.lock()
            lock.unlock()
        print("cycles", time.perf_counter_ns() - t0, flush=True)
    elif cmd[0] == "lock":
        print("waiting", flush=True)
        lock.lock()
        print("acquired", time.monotonic_ns(), flush=True)
    elif cmd[0] == "unlock":
        t0 = time.monotonic_ns()
        lock.unlock()
        print("released", t0, flush=True)
'''


class Worker:
    def __init__(self, python, package, path):
        self.proc = subprocess.Popen([python, '-c', WORKER, package, path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.split())
        self.lines.put(None)

    def send(self, text):
        self.proc.stdin.write(text + '\n')
        self.proc.stdin.flush()

    def expect(self, word, timeout=60):
        line = self.lines.get(timeout=timeout)
        if not line or line[0] != word:
            raise AssertionError(f'expected {word!r}, got {line!r}')
        return line

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def uncontended(sides, rounds=7):
    """Median microseconds per cycle of each side; their rounds interleaved, so that load
    from elsewhere on the machine weighs on both alike."""
    with tempfile.TemporaryDirectory() as d:
        workers = []
        for k, (python, package, cycles) in enumerate(sides):
            w = Worker(python, package, os.path.join(d, f'bench{k}.lck'))
            w.send(f'cycles {max(cycles // 10, 1)}')  # warm-up
            w.expect('cycles')
            workers.append((w, cycles, []))
        for _ in range(rounds):
            for w, cycles, per in workers:
                w.send(f'cycles {cycles}')
                per.append(int(w.expect('cycles')[1]) / cycles / 1000)
        result = []
        for w, _cycles, per in workers:
            w.close()
            per.sort()
            result.append(per[len(per) // 2])
    return result


def handoff(python, package, n, settle):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'bench.lck')
        a, b = Worker(python, package, path), Worker(python, package, path)
        a.send('lock')
        a.expect('waiting')
        a.expect('acquired')
        times = []
        for _ in range(n):
            b.send('lock')
            b.expect('waiting')
            time.sleep(settle)  # the waiter is inside lock() now
            a.send('unlock')
            t0 = int(a.expect('released')[1])
            t1 = int(b.expect('acquired', timeout=120)[1])
            times.append((t1 - t0) / 1e6)
            a, b = b, a
        a.send('unlock')
        a.expect('released')
        a.close()
        b.close()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.9)]


def main(argv):
    quick = '--quick' in argv
    flufl_py = os.environ.get('FLUFL_PY')
    if not flufl_py or not os.path.exists(flufl_py):
        sys.exit('bench.py: set FLUFL_PY to a Python with flufl.lock 10.0.0 (testbed/interop/setup.sh)')
    ours_py = sys.executable
    rows = []
    ours_u, flufl_u = uncontended([
        (ours_py, 'flufl_lock_rs', 1000 if quick else 4000),
        (flufl_py, 'flufl.lock', 250 if quick else 1000),
    ])
    ours_h = handoff(ours_py, 'flufl_lock_rs', 40 if quick else 200, 0.02)
    flufl_h = handoff(flufl_py, 'flufl.lock', 3 if quick else 8, 0.05)
    rows.append(('uncontended lock+unlock', f'{ours_u:.1f} us', f'{flufl_u:.1f} us',
                 f'{flufl_u / ours_u:.1f}x'))
    rows.append(('hand-off, median', f'{ours_h[0]:.3f} ms', f'{flufl_h[0]:.0f} ms',
                 f'{flufl_h[0] / ours_h[0]:.0f}x'))
    rows.append(('hand-off, 90th percentile', f'{ours_h[1]:.3f} ms', f'{flufl_h[1]:.0f} ms', ''))
    print(f'{"":28} {"flufl_lock_rs":>14} {"flufl.lock":>12} {"ratio":>7}')
    for name, ours, theirs, ratio in rows:
        print(f'{name:28} {ours:>14} {theirs:>12} {ratio:>7}')
    failures = []
    if flufl_u / ours_u < 2:
        failures.append(f'uncontended: only {flufl_u / ours_u:.2f}x flufl.lock (target 2x)')
    if ours_h[0] > 1.0:
        failures.append(f'hand-off median {ours_h[0]:.3f} ms (target at most 1 ms)')
    for f in failures:
        print(f'FAILED {f}')
    print(f'bench.py: {"0 failed" if not failures else f"{len(failures)} failed"}', flush=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
