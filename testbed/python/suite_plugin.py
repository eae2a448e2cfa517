"""pytest plugin: flufl.lock 10.0.0's own suite, run unmodified against flufl_lock_rs.

Loaded by run_suite.py (``-p suite_plugin``). It

- checks that ``flufl.lock`` is the shim over flufl_lock_rs, not the real flufl.lock;
- marks each test listed in expected-failures.txt as a strict expected failure (one that
  passes fails the run), and fails the run if a listed test was not collected;
- fails the run if a test is skipped, or if the number of tests collected is not the
  suite's (123);
- ends the child processes an expected failure leaves waiting (a test that expects lock()
  to raise lets its child go only after the raise: without it, the child would wait
  forever, and pytest with it, at exit);
- prints ``flufl.lock suite: P passed, X expected failures, F failed``, then the expected
  failures with their reasons, then whatever went wrong.
"""

import multiprocessing
import os
import sys

import pytest


#: flufl.lock 10.0.0's suite: tests/test_api.py (1), tests/test_lock.py (33) and the
#: examples of docs/using.rst (89), every one of which passes against flufl.lock itself.
SUITE_SIZE = 123

_HERE = os.path.dirname(os.path.abspath(__file__))
_EXPECTED_FILE = os.path.join(_HERE, 'expected-failures.txt')


def _load_expected():
    expected = {}
    with open(_EXPECTED_FILE, encoding='utf-8') as fp:
        for line in fp:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            test_id, _, reason = line.partition('\t')
            expected[test_id.strip()] = reason.strip() or 'no reason given'
    return expected


EXPECTED = _load_expected()
# Outcome per test id: the worst of its setup, call and teardown.
_outcomes = {}
_RANK = {'passed': 0, 'xfailed': 1, 'skipped': 2, 'xpassed': 3, 'failed': 4, 'error': 5}
_problems = []


def pytest_sessionstart(session):
    import flufl.lock
    import flufl.lock._lockfile
    import flufl_lock_rs
    import flufl_lock_rs._lockfile

    if flufl.lock.Lock is not flufl_lock_rs.Lock:
        pytest.exit(
            f'flufl.lock is {flufl.lock.__file__}, not the shim over flufl_lock_rs: '
            'run through testbed/python/run_suite.py',
            returncode=3,
        )
    if flufl.lock._lockfile is not flufl_lock_rs._lockfile:
        pytest.exit('flufl.lock._lockfile is not flufl_lock_rs._lockfile', returncode=3)
    sys.stderr.write(
        f'flufl.lock suite: flufl.lock is the shim {flufl.lock.__file__} over '
        f'{flufl_lock_rs.__file__}\n'
    )


def pytest_collection_modifyitems(session, config, items):
    ids = {item.nodeid for item in items}
    for test_id in sorted(set(EXPECTED) - ids):
        _problems.append(f'listed in expected-failures.txt but not collected: {test_id}')
    if len(items) != SUITE_SIZE:
        _problems.append(f'collected {len(items)} tests; flufl.lock 10.0.0 has {SUITE_SIZE}')
    for item in items:
        reason = EXPECTED.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True, run=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = set(multiprocessing.active_children())
    try:
        return (yield)
    finally:
        if item.nodeid in EXPECTED:
            for child in set(multiprocessing.active_children()) - before:
                child.join(0.5)
                if child.is_alive():
                    child.terminate()
                    child.join(5)
                    _ended.append(f'{item.nodeid}: child pid {child.pid}')


_ended = []


def pytest_runtest_logreport(report):
    if report.when != 'call' and report.passed:
        return
    if hasattr(report, 'wasxfail'):
        outcome = 'xfailed' if report.skipped else 'xpassed'
    elif report.failed:
        # A strict expected failure that passed is reported as a failure.
        outcome = 'failed' if report.when == 'call' else 'error'
        if report.nodeid in EXPECTED and report.when == 'call':
            outcome = 'xpassed'
    elif report.skipped:
        outcome = 'skipped'
    else:
        outcome = 'passed'
    previous = _outcomes.get(report.nodeid, 'passed')
    if report.nodeid not in _outcomes or _RANK[outcome] > _RANK[previous]:
        _outcomes[report.nodeid] = outcome


def _counts():
    passed = [t for t, o in _outcomes.items() if o == 'passed']
    xfailed = [t for t, o in _outcomes.items() if o == 'xfailed']
    bad = {t: o for t, o in _outcomes.items() if o not in ('passed', 'xfailed')}
    return passed, xfailed, bad


def pytest_sessionfinish(session, exitstatus):
    # Children still running (the suite never joins them): give them time to end, as
    # multiprocessing would at exit, but not forever.
    for child in multiprocessing.active_children():
        child.join(30)
        if child.is_alive():
            _problems.append(f'child pid {child.pid} still running after the suite; ended')
            child.terminate()
            child.join(5)
    _passed, _xfailed, bad = _counts()
    if bad or _problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    passed, xfailed, bad = _counts()
    write = terminalreporter.write_line
    write('')
    write(f'Expected failures ({len(xfailed)}; testbed/python/expected-failures.txt):')
    for test_id in sorted(xfailed):
        write(f'  {test_id}: {EXPECTED[test_id]}')
    for ended in _ended:
        write(f'  (ended the child an expected failure left waiting: {ended})')
    words = {
        'xpassed': 'passed, but is listed as an expected failure: remove it from the list',
        'skipped': 'skipped (no test may be skipped)',
        'failed': 'failed',
        'error': 'failed in set-up or tear-down',
    }
    for test_id, outcome in sorted(bad.items()):
        write(f'FAILED {test_id}: {words[outcome]}')
    for problem in _problems:
        write(f'FAILED {problem}')
    write(
        f'flufl.lock suite: {len(passed)} passed, {len(xfailed)} expected failures, '
        f'{len(bad) + len(_problems)} failed'
    )
