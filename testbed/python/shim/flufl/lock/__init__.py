"""Test-only shim: the name ``flufl.lock``, the code of ``flufl_lock_rs``.

testbed/python/run_suite.py puts the directory above ``flufl/`` first on ``sys.path`` so
that flufl.lock 10.0.0's own tests, run unmodified, import our package. ``_lockfile`` is
our module itself (not a copy), so that what the tests patch there (``log``, ``ERRORS``)
is what our code uses. Never installed: it exists only for the suite.
"""

import sys

from flufl_lock_rs import *  # noqa: F403
from flufl_lock_rs import __all__, __version__, _lockfile  # noqa: F401


sys.modules[__name__ + '._lockfile'] = _lockfile
