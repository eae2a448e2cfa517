#!/usr/bin/env python3
"""Run flufl.lock 10.0.0's own test suite against flufl_lock_rs (issue 16).

    python testbed/python/run_suite.py [WORKDIR] [-- PYTEST-ARGS...]

Run with the Python of the venv that scripts/test-python.sh makes (target/python-venv:
flufl_lock_rs installed, pytest, sybil and psutil pinned, and no real flufl.lock). It

1. downloads flufl.lock 10.0.0's source distribution with pip, checked against the hash in
   flufl-lock-sdist.txt (cached in WORKDIR, default target/python-suite);
2. unpacks it afresh, unmodified;
3. runs pytest there over tests/ and docs/using.rst, with flufl.lock's own conftest.py and
   pytest settings, the shim package ``flufl.lock`` (shim/) first on the path, and
   suite_plugin.py, which applies expected-failures.txt and prints the result line
   ``flufl.lock suite: P passed, X expected failures, F failed``.

Exits with pytest's status: 0 only if every test passed but the listed ones, which failed.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import hashlib


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SDIST = 'flufl_lock-10.0.0.tar.gz'


def say(text):
    sys.stderr.write(f'run_suite: {text}\n')
    sys.stderr.flush()


def main(argv):
    pytest_args = []
    if '--' in argv:
        at = argv.index('--')
        argv, pytest_args = argv[:at], argv[at + 1 :]
    work = os.path.abspath(argv[0] if argv else os.path.join(REPO, 'target', 'python-suite'))
    for module in ('flufl_lock_rs', 'pytest', 'sybil', 'psutil'):
        try:
            __import__(module)
        except ImportError:
            say(f'error: {module} is not installed in {sys.executable}; run scripts/test-python.sh')
            return 2
    try:
        import flufl.lock  # noqa: F401

        say(f'error: the real flufl.lock is installed in {sys.executable}; the suite must import the shim')
        return 2
    except ImportError:
        pass
    download = os.path.join(work, 'download')
    archive = os.path.join(download, SDIST)
    os.makedirs(download, exist_ok=True)
    if not os.path.exists(archive):
        say(f'downloading {SDIST}')
        subprocess.run(
            [
                sys.executable, '-m', 'pip', 'download', '--quiet', '--disable-pip-version-check',
                '--no-input', '--no-deps', '--no-binary', ':all:', '--no-build-isolation',
                '--require-hashes', '-r', os.path.join(HERE, 'flufl-lock-sdist.txt'),
                '-d', download,
            ],
            check=True,
        )
    else:
        # Cached: check it again, as pip did when it downloaded it.
        with open(os.path.join(HERE, 'flufl-lock-sdist.txt')) as fp:
            want = fp.read().split('--hash=sha256:')[1].split()[0]
        with open(archive, 'rb') as fp:
            got = hashlib.sha256(fp.read()).hexdigest()
        if got != want:
            say(f'error: {archive} has sha256 {got}, not {want}; remove it to download again')
            return 2
    source = os.path.join(work, 'src')
    shutil.rmtree(source, ignore_errors=True)
    os.makedirs(source)
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter='data')
    suite = os.path.join(source, 'flufl_lock-10.0.0')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [os.path.join(HERE, 'shim'), HERE] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else [])
    )
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    command = [
        sys.executable, '-m', 'pytest', '-p', 'suite_plugin', '-p', 'no:cacheprovider',
        '-v', '-rfE', 'tests', 'docs/using.rst', *pytest_args,
    ]
    say(f'running in {suite}: {" ".join(command[1:])}')
    return subprocess.run(command, cwd=suite, env=env).returncode


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
