#!/usr/bin/env python3
"""The flufl.lock 10.0.0 side of the benchmark (project issue 6).

Driven by `cargo run --release -p flufl-lock-bench`; runs in the interop venv
(testbed/interop/setup.sh makes it). Uses only the standard library and flufl.lock,
unchanged: no pause or other behaviour of flufl.lock is altered here.

    worker LOCK LIFETIME_S   a long-lived worker speaking the benchmark's line protocol on
                             stdin/stdout (the same one the Rust workers speak):
        ping                 answer "pong" (the worker is up)
        cycles N             time N uncontended lock()+unlock() with time.perf_counter
                             (Python start-up excluded); answer "us <microseconds per cycle>"
        lock                 lock(); answer "locked"
        acquire              answer "waiting", then lock() (blocks); answer
                             "acquired <CLOCK_MONOTONIC ns right after acquiring>"
        release MS           sleep MS milliseconds while holding; take CLOCK_MONOTONIC just
                             before unlock(); answer "released <ns>"
        unlock               unlock(); answer "unlocked"
        contend COUNTER START_NS END_NS
                             from CLOCK_MONOTONIC START_NS until END_NS: lock(), increment
                             the integer in COUNTER (read, write back), unlock();
                             answer "count <acquisitions>"
        quit                 exit
    loop LOCK N              N uncontended lock()+unlock() and exit, nothing else (for
                             counting system calls under strace)

Every answer line is flushed at once; an exception answers "error <text>".
"""

import sys
import time

from flufl.lock import Lock


def say(*words):
    print(*words, flush=True)


def mono_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def sleep_until(ns):
    while True:
        left = ns - mono_ns()
        if left <= 0:
            return
        time.sleep(left / 1e9)


def contend(lock, counter, start_ns, end_ns):
    sleep_until(start_ns)
    n = 0
    while mono_ns() < end_ns:
        lock.lock()
        with open(counter) as f:
            value = int(f.read() or "0")
        with open(counter, "w") as f:
            f.write(str(value + 1))
        lock.unlock()
        n += 1
    return n


def worker(path, lifetime):
    lock = Lock(path, lifetime=lifetime)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "ping":
                say("pong")
            elif cmd == "cycles":
                n = int(args[0])
                t0 = time.perf_counter()
                for _ in range(n):
                    lock.lock()
                    lock.unlock()
                t1 = time.perf_counter()
                say("us", (t1 - t0) * 1e6 / max(n, 1))
            elif cmd == "lock":
                lock.lock()
                say("locked")
            elif cmd == "acquire":
                say("waiting")
                lock.lock()
                t = mono_ns()
                say("acquired", t)
            elif cmd == "release":
                time.sleep(int(args[0]) / 1000)
                t = mono_ns()
                lock.unlock()
                say("released", t)
            elif cmd == "unlock":
                lock.unlock()
                say("unlocked")
            elif cmd == "contend":
                say("count", contend(lock, args[0], int(args[1]), int(args[2])))
            elif cmd == "quit":
                return
            else:
                say("error", "unknown command", cmd)
        except Exception as e:  # noqa: BLE001 - reported to the driver, which fails loudly
            say("error", type(e).__name__, str(e).replace("\n", " "))


def loop(path, n):
    lock = Lock(path, lifetime=15)
    for _ in range(n):
        lock.lock()
        lock.unlock()


def main(argv):
    if len(argv) == 4 and argv[1] == "worker":
        worker(argv[2], float(argv[3]))
    elif len(argv) == 4 and argv[1] == "loop":
        loop(argv[2], int(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
