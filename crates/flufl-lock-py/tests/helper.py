"""Child processes for the tests: flufl_lock_rs in another process.

    hold LOCK LIFETIME   lock; print "locked"; wait for EOF on stdin; unlock; print "unlocked"
    wait LOCK [TIMEOUT]  print "waiting"; lock(timeout); print "acquired NS", or on Ctrl-C
                         "interrupted NS" (NS: time.monotonic_ns(), comparable between
                         processes), or "timeout NS"; TEST_WAITING=blocking|async forces
                         how it waits
"""

import os
import signal
import sys
import time

from flufl_lock_rs import Lock, TimeOutError


def say(*words):
    print(*words, flush=True)


def main(argv):
    command, path = argv[1], argv[2]
    if command == 'hold':
        lock = Lock(path, lifetime=float(argv[3]))
        lock.lock()
        say('locked')
        sys.stdin.read()
        lock.unlock()
        say('unlocked')
    elif command == 'wait':
        # Ctrl-C raises KeyboardInterrupt here even when the tests run as a background job,
        # whose shell started them with SIGINT ignored (Python then installs no handler).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        lock = Lock(path)
        if os.environ.get('TEST_WAITING'):
            lock._raw._set_waiting(os.environ['TEST_WAITING'])
        timeout = float(argv[3]) if len(argv) > 3 else None
        say('waiting')
        try:
            lock.lock(timeout=timeout)
        except KeyboardInterrupt:
            say('interrupted', time.monotonic_ns())
            return 130
        except TimeOutError:
            say('timeout', time.monotonic_ns())
            return 75
        say('acquired', time.monotonic_ns())
        sys.stdin.read()
        lock.unlock()
    else:
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
