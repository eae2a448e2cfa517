"""Fixtures for flufl_lock_rs's own tests (run by scripts/test-python.sh)."""

import os
import subprocess
import sys
import tempfile

import pytest


HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def lockfile():
    with tempfile.TemporaryDirectory() as d:
        yield os.path.join(d, 'test.lck')


@pytest.fixture
def flufl_py():
    """The Python of the venv with the real flufl.lock 10.0.0 (testbed/interop/setup.sh)."""
    py = os.environ.get('FLUFL_PY') or os.path.join(
        HERE, '..', '..', '..', 'target', 'interop-venv', 'bin', 'python'
    )
    check = subprocess.run(
        [py, '-c', 'import flufl.lock, sys; sys.exit(flufl.lock.__version__ != "10.0.0")'],
        capture_output=True,
    )
    if check.returncode != 0:
        pytest.fail(f'no flufl.lock 10.0.0 at {py}: run `bash testbed/interop/setup.sh`')
    return py


def spawn(*args, **kwargs):
    """A Python child running `args` with this interpreter, lines on stdout."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        **kwargs,
    )
