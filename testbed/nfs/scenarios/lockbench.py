#!/usr/bin/env python3
"""Scenario drivers for the flufl-lock NFS test bed (standard library only).

Run by the scenario scripts next to this file, with the environment run.sh
exports (MOUNT_A, MOUNT_B, EXPORT_DIR, ON_A, ON_B, BRIDGE_A_STATS, ...).
Two lock implementations can be driven:

  cli  the project's CLI: `flufl-lock run [--lifetime DUR] [--timeout DUR]
       [--quiet] LOCKFILE -- COMMAND...` (exit 75 on timeout), from
       $FLUFL_LOCK_BIN
  py   Python's flufl.lock (10.0.0), imported by the interpreter $FLUFL_PY

Every acquisition runs the same critical section, a small bash script (CS
below), so that both implementations pay the same for it.

Subcommands (see --help of each): contend, worker, lost-link, crash,
handoff, stats.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The critical section. Arguments: id, shared log (on the mount, or ''),
# shared counter (on the mount, or ''), local times file, hold time (s).
# Appends "enter ID T" / "exit ID T" records to the log and increments the
# counter, reading it back first: overlapping holders show up as interleaved
# records and as lost increments.
CS = r'''
id=$1 log=$2 ctr=$3 times=$4 hold=$5
t0=$EPOCHREALTIME
printf '%s\n' "$id" >> "$times.entered"
if [ -n "$log" ]; then printf 'enter %s %s\n' "$id" "$t0" >> "$log"; fi
if [ -n "$ctr" ]; then
    n=; read -r n < "$ctr" || true
    printf '%s\n' "$(( ${n:-0} + 1 ))" > "$ctr"
fi
if [ "$hold" != 0 ]; then sleep "$hold"; fi
t1=$EPOCHREALTIME
if [ -n "$log" ]; then printf 'exit %s %s\n' "$id" "$t1" >> "$log"; fi
printf '%s %s %s\n' "$id" "$t0" "$t1" >> "$times"
'''

CS_ENV = dict(os.environ, LC_ALL='C')


def env(name: str, default: str | None = None) -> str:
    v = os.environ.get(name, default)
    if v is None:
        sys.exit(f'lockbench: environment variable {name} is not set (run via run.sh)')
    return v


def dur(seconds: float) -> str:
    """A duration for the CLI: whole seconds as '30s', else milliseconds."""
    if float(seconds).is_integer():
        return f'{int(seconds)}s'
    return f'{int(round(seconds * 1000))}ms'


def mount(host: str) -> Path:
    return Path(env(f'MOUNT_{host}'))


def on_host(host: str) -> list[str]:
    return shlex.split(env(f'ON_{host}'))


def cli_bin() -> str | None:
    b = os.environ.get('FLUFL_LOCK_BIN', '')
    return b if b and os.access(b, os.X_OK) else None


def py_bin() -> str | None:
    p = os.environ.get('FLUFL_PY', '')
    return p if p and os.access(p, os.X_OK) else None


def results_dir() -> Path:
    d = Path(env('RESULTS_DIR'))
    d.mkdir(parents=True, exist_ok=True)
    return d


def emit(label: str, figures: dict) -> None:
    """Print figures and store them as RESULTS_DIR/LABEL.json."""
    print(f'--- {label}')
    for k, v in figures.items():
        if isinstance(v, float):
            v = round(v, 4)
        print(f'  {k}: {v}')
    (results_dir() / f'{label}.json').write_text(json.dumps(figures, indent=1, default=str) + '\n')


# ----------------------------------------------------------------- bridge stats

def bridge_stats(host: str) -> dict:
    """Fresh NFS call counts of bridge HOST (A or B): SIGUSR1, then wait for seq to move."""
    path = Path(env(f'BRIDGE_{host}_STATS'))
    old = json.loads(path.read_text())
    os.kill(old['pid'], signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            cur = json.loads(path.read_text())
            if cur['seq'] != old['seq'] or cur['pid'] != old['pid']:
                return cur
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise SystemExit(f'lockbench: bridge {host} wrote no stats within 5 s')


def snapshot() -> dict:
    return {h: bridge_stats(h) for h in ('A', 'B')}


def calls_between(before: dict, after: dict) -> dict:
    """Per-procedure NFS calls made between two snapshots, both bridges summed."""
    out: dict[str, int] = {}
    for h in ('A', 'B'):
        for proc, n in after[h]['nfs'].items():
            d = n - before[h]['nfs'].get(proc, 0)
            if d:
                out[proc] = out.get(proc, 0) + d
    return out


def lost_between(before: dict, after: dict) -> dict:
    out: dict[str, int] = {}
    for h in ('A', 'B'):
        for proc, n in after[h]['lost_replies'].items():
            d = n - before[h]['lost_replies'].get(proc, 0)
            if d:
                out[f'{h}:{proc}'] = d
    return out


# ----------------------------------------------------------------- worker

def run_cs(ident: str, log: str, ctr: str, times: str, hold: float) -> int:
    return subprocess.run(['bash', '-c', CS, 'cs', ident, log, ctr, times, str(hold)],
                          env=CS_ENV, timeout=60).returncode


def cmd_worker(a: argparse.Namespace) -> int:
    """Acquire LOCK COUNT times, running the critical section each time."""
    rec = open(a.record, 'a', buffering=1)
    rnd = random.Random(a.seed)
    lock_obj = None
    if a.impl == 'py':
        from datetime import timedelta
        from flufl.lock import AlreadyLockedError, Lock, TimeOutError  # noqa: F401
        lock_obj = Lock(a.lock, lifetime=timedelta(seconds=a.lifetime))
    failures = 0
    for i in range(a.count):
        ident = f'{a.id}.{i}'
        t_try = time.time()
        outcome = 'ok'
        if a.impl == 'cli':
            argv = [a.bin, 'run', '--lifetime', dur(a.lifetime), '--timeout', dur(a.timeout), '--quiet',
                    a.lock, '--', 'bash', '-c', CS, 'cs', ident, a.log, a.counter, a.times, str(a.hold)]
            try:
                rc = subprocess.run(argv, env=CS_ENV, timeout=a.timeout + 30).returncode
            except subprocess.TimeoutExpired:
                rc = -1
            if rc != 0:
                outcome = 'timeout' if rc == 75 else f'exit {rc}'
        else:
            from datetime import timedelta
            from flufl.lock import LockError
            try:
                lock_obj.lock(timeout=timedelta(seconds=a.timeout))
            except LockError as e:
                rc, outcome = 1, type(e).__name__
            else:
                try:
                    rc = run_cs(ident, a.log, a.counter, a.times, a.hold)
                finally:
                    lock_obj.unlock(unconditionally=True)
        t_done = time.time()
        if outcome != 'ok':
            failures += 1
        rec.write(json.dumps({'id': ident, 'worker': a.id, 'try': t_try, 'done': t_done, 'outcome': outcome}) + '\n')
        if a.alternate and i + 1 < a.count:
            wait_turn(Path(a.times), a.id, a.alternate.split(','), Path(a.record).parent, a.alternate_limit)
        if a.pause_max > 0:
            time.sleep(rnd.uniform(a.pause_min, a.pause_max))
    (Path(a.record).parent / f'done-{a.id}').write_text('')
    return 1 if failures else 0


def wait_turn(times: Path, me: str, peers: list[str], recdir: Path, limit: float) -> None:
    """Ping-pong: wait (polling local files, no NFS) until a peer worker has
    entered a critical section after our last one, or every peer has stopped,
    at most `limit` seconds."""
    end = time.monotonic() + limit
    entered = Path(str(times) + '.entered')
    while time.monotonic() < end:
        who = [line.split('.', 1)[0] for line in (entered.read_text().splitlines() if entered.exists() else [])]
        mine = max((i for i, w in enumerate(who) if w == me), default=-1)
        if any(w in peers for w in who[mine + 1:]):
            return
        if all((recdir / f'done-{w}').exists() for w in peers):
            return
        time.sleep(0.002)


def worker_argv(impl: str, host: str, wid: str, lock: str, count: int, log: str, counter: str,
                times: str, record: str, lifetime: float, timeout: float, hold: float,
                pause: tuple[float, float], alternate: str = '') -> list[str]:
    interp = py_bin() if impl == 'py' else sys.executable
    argv = on_host(host) + [interp, str(HERE / 'lockbench.py'), 'worker', '--impl', impl,
                            '--id', wid, '--lock', lock, '--count', str(count), '--log', log,
                            '--counter', counter, '--times', times, '--record', record,
                            '--lifetime', str(lifetime), '--timeout', str(timeout),
                            '--hold', str(hold), '--pause-min', str(pause[0]),
                            '--pause-max', str(pause[1]), '--seed', str(sum(map(ord, wid)))]
    if impl == 'cli':
        argv += ['--bin', cli_bin() or '']
    if alternate:
        argv += ['--alternate', alternate]
    return argv


def wait_all(procs: list[subprocess.Popen], deadline: float) -> list[int | None]:
    rcs: list[int | None] = []
    for p in procs:
        left = max(0.1, deadline - time.monotonic())
        try:
            rcs.append(p.wait(timeout=left))
        except subprocess.TimeoutExpired:
            rcs.append(None)
    for p, rc in zip(procs, rcs):
        if rc is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
    return rcs


def cs_cost(d: Path, work: Path, n: int = 10) -> float:
    """NFS calls the critical section makes by itself (no lock), per run, on mount A."""
    log, ctr = d / 'cs-probe.log', d / 'cs-probe.counter'
    ctr.write_text('0\n')
    log.write_text('')
    before = bridge_stats('A')
    for i in range(n):
        run_cs(f'probe.{i}', str(log), str(ctr), str(work / 'cs-probe.times'), 0)
    after = bridge_stats('A')
    log.unlink(missing_ok=True)  # a lost REMOVE reply (fault injection) says ENOENT
    ctr.unlink(missing_ok=True)
    return (after['nfs_total'] - before['nfs_total']) / n


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_times(path: Path) -> dict[str, tuple[float, float]]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                out[parts[0]] = (float(parts[1]), float(parts[2]))
    return out


def check_log(log: Path, counter: Path, expected: int) -> dict:
    """Zero overlaps, zero lost updates: the enter/exit records strictly alternate,
    every id appears once, and the counter equals the number of critical sections."""
    overlaps = 0
    bad = 0
    inside = None
    seen: set[str] = set()
    dup = 0
    enters = 0
    lines = log.read_text().splitlines() if log.exists() else []
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ('enter', 'exit'):
            bad += 1
            continue
        kind, ident = parts[0], parts[1]
        if kind == 'enter':
            enters += 1
            if ident in seen:
                dup += 1
            seen.add(ident)
            if inside is not None:
                overlaps += 1
            inside = ident
        else:
            if inside != ident:
                overlaps += 1
            inside = None
    try:
        count = int(counter.read_text().strip() or 0)
    except (OSError, ValueError):
        count = -1
    return {
        'critical_sections_logged': enters,
        'overlaps': overlaps,
        'garbled_log_lines': bad,
        'duplicate_ids': dup,
        'counter': count,
        'lost_updates': enters - count if count >= 0 else enters,
        'expected_acquisitions': expected,
    }


def pct(values: list[float], p: float) -> float:
    if not values:
        return float('nan')
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


# ----------------------------------------------------------------- contend

def cmd_contend(a: argparse.Namespace) -> int:
    """Scenario a (and b's faulty variant): workers on A and B contend for one lock."""
    if a.impl == 'cli' and not cli_bin():
        print('SKIP: no flufl-lock binary (FLUFL_LOCK_BIN)')
        return 77
    if a.impl == 'py' and not py_bin():
        print('SKIP: no Python with flufl.lock (FLUFL_PY)')
        return 77
    sub = f'{a.label}'
    dirs = {h: mount(h) / sub for h in ('A', 'B')}
    dirs['A'].mkdir(parents=True, exist_ok=True)
    export = Path(env('EXPORT_DIR')) / sub
    (dirs['A'] / 'counter').write_text('0\n')
    (dirs['A'] / 'log').write_text('')
    work = Path(env('TESTBED_STATE')) / 'work' / a.label
    work.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        f.unlink()
    workers = [('A', i) for i in range(a.workers_a)] + [('B', i) for i in range(a.workers_b)]
    per = -(-a.total // len(workers))
    cs_calls = cs_cost(dirs['A'], work)
    before = snapshot()
    t0 = time.monotonic()
    procs = []
    for host, i in workers:
        wid = f'{host}{i}'
        d = dirs[host]
        argv = worker_argv(a.impl, host, wid, str(d / 'lock'), per, str(d / 'log'), str(d / 'counter'),
                           str(work / f'times-{wid}'), str(work / f'rec-{wid}'), a.lifetime, a.timeout,
                           a.hold, (0.0, a.pause))
        procs.append(subprocess.Popen(argv, start_new_session=True))
    rcs = wait_all(procs, t0 + a.deadline)
    wall = time.monotonic() - t0
    after = snapshot()
    records = [r for w in workers for r in read_records(work / f'rec-{w[0]}{w[1]}')]
    ok = [r for r in records if r['outcome'] == 'ok']
    failed = [r for r in records if r['outcome'] != 'ok']
    logged = set()
    if (export / 'log').exists():
        logged = {line.split()[1] for line in (export / 'log').read_text().splitlines()
                  if line.startswith('enter ') and len(line.split()) == 3}
    failed_after_cs = [r for r in failed if r['id'] in logged]
    chk = check_log(export / 'log', export / 'counter', len(ok))
    calls = calls_between(before, after)
    total_calls = sum(calls.values())
    waits = [r['done'] - r['try'] for r in ok]
    leftovers = sorted(p.name for p in export.iterdir() if p.name not in ('log', 'counter'))
    fig = {
        'implementation': a.impl,
        'workers': f'{a.workers_a} on A + {a.workers_b} on B',
        'acquisitions_attempted': len(workers) * per,
        'acquisitions_ok': len(ok),
        'acquisitions_failed': len(failed),
        'failed_after_command_ran': len(failed_after_cs),
        'failure_kinds': sorted({r['outcome'] for r in failed}),
        'workers_killed_at_deadline': sum(1 for rc in rcs if rc is None),
        **chk,
        'wall_s': wall,
        'acquisitions_per_s': len(ok) / wall if wall else 0,
        'acquire_to_release_ms_median': 1000 * pct(waits, 50),
        'acquire_to_release_ms_p99': 1000 * pct(waits, 99),
        'nfs_calls_total': total_calls,
        'nfs_calls_per_acquisition': total_calls / len(ok) if ok else float('nan'),
        'nfs_calls_of_critical_section_alone': cs_calls,
        'nfs_calls_per_acquisition_for_locking': (total_calls / len(ok) - cs_calls) if ok else float('nan'),
        'nfs_calls_by_procedure': calls,
        'lost_replies_injected': lost_between(before, after),
        'files_left_in_lock_dir': leftovers,
    }
    emit(a.label, fig)
    violations = []
    if chk['overlaps'] or chk['duplicate_ids'] or chk['garbled_log_lines']:
        violations.append('mutual exclusion violated')
    if chk['lost_updates'] != 0:
        violations.append(f"{chk['lost_updates']} lost updates")
    if chk['critical_sections_logged'] != len(ok) + len(failed_after_cs):
        violations.append('logged critical sections differ from acquisitions')
    if failed_after_cs:
        violations.append(f'{len(failed_after_cs)} runs exited non-zero after their command had run '
                          f'(the release reported an error)')
    if a.require_all and len(ok) != len(workers) * per:
        violations.append(f'{len(failed)} acquisitions failed ({fig["failure_kinds"]})')
    if any(rc is None for rc in rcs):
        violations.append('workers did not finish before the deadline')
    if 'lock' in leftovers:
        violations.append('lock file left behind')
    for v in violations:
        print(f'{"NOTE (report only)" if a.report_only else "VIOLATION"}: {v}')
    return 1 if violations and not a.report_only else 0


# ----------------------------------------------------------------- lost link

PY_ONE_SHOT = r'''
import sys, time, json
from datetime import timedelta
from flufl.lock import Lock, LockError
lock, lifetime, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
t = time.time()
lk = Lock(lock, lifetime=timedelta(seconds=lifetime))
try:
    lk.lock(timeout=timedelta(seconds=timeout))
    res = {'outcome': 'acquired'}
    lk.unlock(unconditionally=True)
except LockError as e:
    res = {'outcome': type(e).__name__, 'message': str(e)}
res['seconds'] = time.time() - t
print(json.dumps(res))
'''


def py_one_shot(host: str, lock: Path, lifetime: float, timeout: float, hard_limit: float) -> dict:
    argv = on_host(host) + [py_bin(), '-c', PY_ONE_SHOT, str(lock), str(lifetime), str(timeout)]
    t = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=hard_limit, start_new_session=True)
    except subprocess.TimeoutExpired:
        return {'outcome': f'hung (killed after {hard_limit:.0f} s)', 'seconds': time.monotonic() - t}
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {'outcome': f'crashed (exit {p.returncode})', 'stderr': p.stderr[-500:],
                'seconds': time.monotonic() - t}


def cli_run(host: str, lock: Path, command: list[str], lifetime: float, timeout: float,
            extra: list[str] | None = None, session: bool = True) -> tuple[int, float, str]:
    argv = on_host(host) + [cli_bin(), 'run', '--lifetime', dur(lifetime), '--timeout', dur(timeout)] \
        + (extra or []) + [str(lock), '--'] + command
    t = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30,
                           start_new_session=session, env=CS_ENV)
        return p.returncode, time.monotonic() - t, (p.stderr or '')[-400:]
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - t, 'killed: did not return'


def cmd_lost_link(a: argparse.Namespace) -> int:
    """Scenario b, part 1: every LINK reply on mount A is lost (bridge A must run
    with --lose-reply link). Ours must still acquire; record what flufl.lock does."""
    sub = a.label
    da, db = mount('A') / sub, mount('B') / sub
    da.mkdir(parents=True, exist_ok=True)
    export = Path(env('EXPORT_DIR')) / sub
    violations = []
    fig: dict = {}
    if cli_bin():
        before = snapshot()
        times, rcs, errs = [], [], []
        marker = Path(env('TESTBED_STATE')) / 'work' / f'{sub}.ran'
        marker.parent.mkdir(parents=True, exist_ok=True)
        ran = 0
        for i in range(a.count):
            marker.unlink(missing_ok=True)
            rc, secs, err = cli_run('A', da / 'lock', ['sh', '-c', f'echo {i} > {shlex.quote(str(marker))}'],
                                    lifetime=a.lifetime, timeout=a.timeout)
            rcs.append(rc)
            times.append(secs)
            if marker.exists():
                ran += 1
            if rc != 0:
                errs.append(err.strip())
            if (export / 'lock').exists():
                violations.append(f'ours: lock file still present after run {i} returned')
                break
        after = snapshot()
        calls = calls_between(before, after)
        lost = lost_between(before, after)
        fig.update({
            'ours_runs': len(rcs),
            'ours_ok': sum(1 for rc in rcs if rc == 0),
            'ours_exit_codes': sorted(set(rcs)),
            'ours_commands_ran': ran,
            'ours_seconds_per_run_median': pct(times, 50),
            'ours_seconds_per_run_max': max(times) if times else None,
            'ours_lost_link_replies': lost.get('A:LINK', 0),
            'ours_nfs_calls_per_run': sum(calls.values()) / max(1, len(rcs)),
            'ours_errors': errs[:3],
        })
        if fig['ours_ok'] != a.count or ran != a.count:
            violations.append(f'ours: {a.count - fig["ours_ok"]} of {a.count} runs failed (exit codes {fig["ours_exit_codes"]})')
        if fig['ours_lost_link_replies'] == 0:
            violations.append('no LINK reply was lost: is bridge A running with --lose-reply link?')
    else:
        fig['ours'] = 'skipped: no flufl-lock binary'
    leftovers_ours = sorted(p.name for p in export.iterdir()) if export.exists() else []
    fig['ours_files_left'] = leftovers_ours
    # flufl.lock 10.0.0 on the same faulty mount.
    if py_bin():
        pydir = da / 'py'
        pydir.mkdir(exist_ok=True)
        r = py_one_shot('A', pydir / 'lock', lifetime=a.py_lifetime, timeout=a.py_timeout,
                        hard_limit=a.py_timeout + 20)
        fig['flufl_lock_on_A'] = r
        left = Path(env('EXPORT_DIR')) / sub / 'py'
        fig['flufl_lock_files_left'] = sorted(p.name for p in left.iterdir())
        fig['flufl_lock_left_lock_behind'] = (left / 'lock').exists()
        # What a peer on the healthy mount B sees next.
        r2 = py_one_shot('B', db / 'py' / 'lock', lifetime=a.py_lifetime, timeout=a.peer_timeout,
                         hard_limit=a.peer_timeout + 20)
        fig['flufl_lock_peer_on_B_after'] = r2
    else:
        fig['flufl_lock'] = 'skipped: no Python flufl.lock (FLUFL_PY)'
    emit(a.label, fig)
    for v in violations:
        print(f'VIOLATION: {v}')
    if not cli_bin():
        return 77
    return 1 if violations else 0


# ----------------------------------------------------------------- crash

PY_HOLDER = r'''
import sys, time, os
from datetime import timedelta
from flufl.lock import Lock
lk = Lock(sys.argv[1], lifetime=timedelta(seconds=float(sys.argv[2])))
lk.lock(timeout=timedelta(seconds=30))
open(sys.argv[3], 'w').write(repr(time.time()))
time.sleep(600)
'''

PY_WAITER = r'''
import sys, time, json
from datetime import timedelta
from flufl.lock import Lock, LockError
lk = Lock(sys.argv[1], lifetime=timedelta(seconds=float(sys.argv[2])))
try:
    lk.lock(timeout=timedelta(seconds=float(sys.argv[3])))
    t = time.time()
    lk.unlock(unconditionally=True)
    print(json.dumps({'outcome': 'acquired', 'acquired_at': t}))
except LockError as e:
    print(json.dumps({'outcome': type(e).__name__}))
'''


def wait_for(path: Path, limit: float) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if path.exists() and path.stat().st_size > 0:
            return True
        time.sleep(0.02)
    return False


def kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def crash_once(impl: str, sub: str, lifetime: float, wait_timeout: float, hold_before_kill: float) -> dict:
    work = Path(env('TESTBED_STATE')) / 'work' / sub
    work.mkdir(parents=True, exist_ok=True)
    held, got = work / 'held', work / 'got'
    for f in (held, got):
        f.unlink(missing_ok=True)
    da, db = mount('A') / sub, mount('B') / sub
    da.mkdir(parents=True, exist_ok=True)
    if impl == 'cli':
        holder_argv = on_host('A') + [cli_bin(), 'run', '--lifetime', dur(lifetime), '--timeout', '30s',
                                      str(da / 'lock'), '--', 'bash', '-c',
                                      f'printf %s "$EPOCHREALTIME" > {shlex.quote(str(held))}; exec sleep 600']
    else:
        holder_argv = on_host('A') + [py_bin(), '-c', PY_HOLDER, str(da / 'lock'), str(lifetime), str(held)]
    holder = subprocess.Popen(holder_argv, start_new_session=True, env=CS_ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    res: dict = {'lifetime_s': lifetime}
    if not wait_for(held, 30):
        kill_group(holder)
        res['error'] = 'holder on A did not acquire within 30 s: ' + (holder.stderr.read().decode()[-300:] if holder.stderr else '')
        return res
    time.sleep(hold_before_kill)
    t_kill = time.time()
    kill_group(holder)
    res['holder_held_s_before_kill'] = t_kill - float(held.read_text())
    if impl == 'cli':
        rc, secs, err = cli_run('B', db / 'lock',
                                ['bash', '-c', f'printf %s "$EPOCHREALTIME" > {shlex.quote(str(got))}'],
                                lifetime=lifetime, timeout=wait_timeout)
        res['waiter_exit_code'] = rc
        if err.strip():
            res['waiter_stderr'] = err.strip()[-300:]
        t_got = float(got.read_text()) if got.exists() and got.stat().st_size else None
    else:
        argv = on_host('B') + [py_bin(), '-c', PY_WAITER, str(db / 'lock'), str(lifetime), str(wait_timeout)]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=wait_timeout + 30, start_new_session=True)
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            out = {'outcome': 'hung or crashed'}
        res['waiter_outcome'] = out['outcome']
        t_got = out.get('acquired_at')
    res['recovered'] = t_got is not None
    res['recovery_s_after_kill'] = (t_got - t_kill) if t_got else None
    export = Path(env('EXPORT_DIR')) / sub
    res['files_left'] = sorted(p.name for p in export.iterdir()) if export.exists() else []
    return res


def cmd_crash(a: argparse.Namespace) -> int:
    """Scenario c: a holder on A is SIGKILLed; B breaks the lock after expiry
    (bridges with attribute caching on). Also: a live, refreshing holder on A
    is not broken by B while attribute caching hides its refreshes."""
    fig: dict = {}
    violations = []
    attr = {h: bridge_opts(h) for h in ('A', 'B')}
    fig['bridge_options'] = attr
    if cli_bin():
        r = crash_once('cli', f'{a.label}-ours', a.lifetime, a.wait_timeout, a.hold_before_kill)
        fig['ours'] = r
        if not r.get('recovered'):
            violations.append(f'ours: B did not acquire after the holder was killed: {r}')
        # Live holder, refreshing; B must time out and never run its command.
        sub = f'{a.label}-ours-live'
        work = Path(env('TESTBED_STATE')) / 'work' / sub
        work.mkdir(parents=True, exist_ok=True)
        times = work / 'times'
        times.unlink(missing_ok=True)
        da, db = mount('A') / sub, mount('B') / sub
        da.mkdir(parents=True, exist_ok=True)
        holder = subprocess.Popen(
            on_host('A') + [cli_bin(), 'run', '--lifetime', dur(a.live_lifetime), '--timeout', '30s',
                            str(da / 'lock'), '--', 'bash', '-c', CS, 'cs', 'holderA', '', '', str(times),
                            str(a.live_hold)],
            start_new_session=True, env=CS_ENV, stderr=subprocess.PIPE)
        # wait until the holder is inside
        end = time.monotonic() + 30
        while time.monotonic() < end and not (da / 'lock').exists():
            time.sleep(0.02)
        time.sleep(0.2)
        rc_b, secs_b, err_b = cli_run('B', db / 'lock', ['bash', '-c', CS, 'cs', 'waiterB', '', '', str(times), '0'],
                                      lifetime=a.live_lifetime, timeout=a.live_wait)
        try:
            rc_a = holder.wait(timeout=a.live_hold + 40)
        except subprocess.TimeoutExpired:
            kill_group(holder)
            rc_a = None
        t = read_times(times)
        overlap = False
        if 'holderA' in t and 'waiterB' in t:
            overlap = t['waiterB'][0] < t['holderA'][1]
        live = {
            'lifetime_s': a.live_lifetime, 'holder_runs_s': a.live_hold, 'waiter_timeout_s': a.live_wait,
            'holder_exit_code': rc_a, 'waiter_exit_code': rc_b, 'waiter_seconds': secs_b,
            'waiter_entered_while_holder_inside': overlap,
        }
        fig['ours_live_holder'] = live
        if overlap:
            violations.append('ours: B broke the lock of a live, refreshing holder on A')
        if rc_a != 0:
            violations.append(f'ours: the live holder on A failed (exit {rc_a})')
        if rc_b not in (75, 0):
            violations.append(f'ours: waiter on B exited {rc_b} (expected 75, timeout)')
    else:
        fig['ours'] = 'skipped: no flufl-lock binary'
    if py_bin() and not a.no_py:
        fig['flufl_lock'] = crash_once('py', f'{a.label}-py', a.lifetime, a.py_wait_timeout, a.hold_before_kill)
    emit(a.label, fig)
    for v in violations:
        print(f'VIOLATION: {v}')
    if not cli_bin():
        return 77
    return 1 if violations else 0


def bridge_opts(host: str) -> str:
    p = Path(env('TESTBED_STATE')) / f'bridge-{host}.opts'
    return p.read_text().strip() if p.exists() else '?'


# ----------------------------------------------------------------- handoff

def handoff_run(impl: str, sub: str, per_worker: int, hold: float, pause: float, lifetime: float,
                timeout: float, deadline: float) -> dict:
    work = Path(env('TESTBED_STATE')) / 'work' / sub
    work.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        f.unlink()
    for h in ('A',):
        (mount(h) / sub).mkdir(parents=True, exist_ok=True)
    before = snapshot()
    t0 = time.monotonic()
    procs = []
    for host in ('A', 'B'):
        wid = f'{host}0'
        argv = worker_argv(impl, host, wid, str(mount(host) / sub / 'lock'), per_worker, '', '',
                           str(work / 'times'), str(work / f'rec-{wid}'), lifetime, timeout, hold, (0.0, pause),
                           alternate='B0' if host == 'A' else 'A0')
        procs.append(subprocess.Popen(argv, start_new_session=True))
    rcs = wait_all(procs, t0 + deadline)
    wall = time.monotonic() - t0
    after = snapshot()
    recs = {r['id']: r for h in ('A0', 'B0') for r in read_records(work / f'rec-{h}')}
    times = read_times(work / 'times')
    seq = sorted((t[0], t[1], ident) for ident, t in times.items())
    lat = []
    for (e0, x0, id0), (e1, x1, id1) in zip(seq, seq[1:]):
        w0, w1 = id0.split('.')[0], id1.split('.')[0]
        if w0 == w1 or id1 not in recs:
            continue
        if recs[id1]['try'] < x0:  # the next holder was already waiting at release
            lat.append(e1 - x0)
    ok = sum(1 for r in recs.values() if r['outcome'] == 'ok')
    calls = calls_between(before, after)
    return {
        'acquisitions_ok': ok,
        'acquisitions_failed': len(recs) - ok,
        'handoffs_measured': len(lat),
        'handoff_ms_median': 1000 * pct(lat, 50),
        'handoff_ms_p90': 1000 * pct(lat, 90),
        'handoff_ms_max': 1000 * max(lat) if lat else float('nan'),
        'nfs_calls_per_acquisition_contended': sum(calls.values()) / ok if ok else float('nan'),
        'nfs_calls_by_procedure': calls,
        'wall_s': wall,
        'workers_killed_at_deadline': sum(1 for rc in rcs if rc is None),
    }


def uncontended(impl: str, sub: str, count: int) -> dict:
    d = mount('A') / sub
    d.mkdir(parents=True, exist_ok=True)
    before = snapshot()
    t0 = time.monotonic()
    if impl == 'cli':
        fails = 0
        for _ in range(count):
            rc = subprocess.run(on_host('A') + [cli_bin(), 'run', '--quiet', str(d / 'lock'), '--', 'true'],
                                timeout=60).returncode
            fails += rc != 0
    else:
        code = r'''
import sys
from flufl.lock import Lock
lk = Lock(sys.argv[1])
fails = 0
for _ in range(int(sys.argv[2])):
    lk.lock(); lk.unlock()
'''
        fails = subprocess.run(on_host('A') + [py_bin(), '-c', code, str(d / 'lock'), str(count)],
                               timeout=120).returncode
    wall = time.monotonic() - t0
    after = snapshot()
    calls = calls_between(before, after)
    return {
        'acquisitions': count,
        'failures': fails,
        'ms_per_acquire_release': 1000 * wall / count,
        'nfs_calls_per_acquire_release': sum(calls.values()) / count,
        'nfs_calls_by_procedure_per_acquisition': {k: round(v / count, 2) for k, v in sorted(calls.items())},
    }


def cmd_handoff(a: argparse.Namespace) -> int:
    """Scenario d: hand-off latency and NFS calls per acquisition, ours vs flufl.lock."""
    fig: dict = {'bridge_options': {h: bridge_opts(h) for h in ('A', 'B')}}
    violations = []
    impls = []
    if cli_bin():
        impls.append(('ours', 'cli', a.per_worker))
    else:
        fig['ours'] = 'skipped: no flufl-lock binary'
    if py_bin() and a.py_per_worker > 0:
        impls.append(('flufl_lock', 'py', a.py_per_worker))
    for name, impl, per in impls:
        fig[f'{name}_uncontended'] = uncontended(impl, f'{a.label}-{name}-solo', a.solo)
        r = handoff_run(impl, f'{a.label}-{name}', per, a.hold, a.pause, a.lifetime, a.timeout, a.deadline)
        fig[f'{name}_handoff'] = r
        if r['acquisitions_failed'] or r['workers_killed_at_deadline']:
            violations.append(f'{name}: {r["acquisitions_failed"]} failed acquisitions, '
                              f'{r["workers_killed_at_deadline"]} workers killed at the deadline')
    emit(a.label, fig)
    for v in violations:
        print(f'VIOLATION: {v}')
    if not cli_bin():
        return 77
    return 1 if violations else 0


def cmd_summary(a: argparse.Namespace) -> int:
    """Key figures of a run (RESULTS_DIR/*.json) as a Markdown table."""
    d = Path(a.dir or env('RESULTS_DIR'))
    rows: list[tuple[str, str, str]] = []

    class Figures(dict):
        def __missing__(self, key):  # figures an older run did not have
            return None

    def load(name: str) -> dict | None:
        p = d / f'{name}.json'
        return json.loads(p.read_text(), object_hook=Figures) if p.exists() else None

    def f(v, unit: str = '', nd: int = 1) -> str:
        if v is None:
            return 'n/a'
        if isinstance(v, float):
            return f'{v:.{nd}f}{unit}'
        return f'{v}{unit}'

    for name, impl in (('a-contention', 'ours'), ('a-contention-flufl-lock', 'flufl.lock 10.0.0')):
        r = load(name)
        if r:
            rows.append(('a: contention, 2 procs on A + 2 on B', impl,
                         f"{r['acquisitions_ok']}/{r['acquisitions_attempted']} acquisitions, "
                         f"{r['overlaps']} overlaps, {r['lost_updates']} lost updates, "
                         f"{f(r['acquisitions_per_s'])}/s, "
                         f"{f(r['nfs_calls_per_acquisition_for_locking'])} NFS calls per acquisition for locking "
                         f"({f(r['nfs_calls_per_acquisition'])} with the critical section)"))
    r = load('b-lost-link')
    if r:
        if 'ours_runs' in r:
            rows.append(('b: every LINK reply on A lost', 'ours',
                         f"{r['ours_ok']}/{r['ours_runs']} runs acquired and released "
                         f"({r['ours_lost_link_replies']} LINK replies lost), files left: {len(r['ours_files_left'])}"))
        if 'flufl_lock_on_A' in r:
            fl = r['flufl_lock_on_A']
            peer = r.get('flufl_lock_peer_on_B_after', {})
            rows.append(('b: every LINK reply on A lost', 'flufl.lock 10.0.0',
                         f"{fl['outcome']} after {f(fl.get('seconds'), ' s', 2)}; lock left behind: "
                         f"{r['flufl_lock_left_lock_behind']}; next locker on B: {peer.get('outcome')} "
                         f"after {f(peer.get('seconds'), ' s')}"))
    r = load('b-lost-replies-contention')
    if r:
        rows.append(('b: contention, A loses LINK/REMOVE/RENAME/CREATE replies', 'ours',
                     f"{r['acquisitions_ok']}/{r['acquisitions_attempted']} ok, "
                     f"{r['failed_after_command_ran']} exited non-zero after the command ran, "
                     f"{r['overlaps']} overlaps, {r['lost_updates']} lost updates; lost replies {r['lost_replies_injected']}"))
    r = load('b-resend-hazard')
    if r:
        rows.append(('b (informational): REMOVE really re-sent 30 ms later', 'ours',
                     f"{r['overlaps']} overlaps, {r['lost_updates']} lost updates in "
                     f"{r['critical_sections_logged']} critical sections (a re-sent REMOVE can delete "
                     f"the next holder's lock; whether it does in a run is chance)"))
    r = load('c-crash')
    if r:
        attr = r.get('bridge_options', {}).get('B', '')
        for key, impl in (('ours', 'ours'), ('flufl_lock', 'flufl.lock 10.0.0')):
            x = r.get(key)
            if isinstance(x, dict):
                rows.append((f'c: holder on A SIGKILLed, B waits ({attr})', impl,
                             f"recovered {x.get('recovery_s_after_kill') and round(x['recovery_s_after_kill'], 1)} s "
                             f"after the kill (lifetime {f(x.get('lifetime_s'), ' s', 0)})"))
        x = r.get('ours_live_holder')
        if isinstance(x, dict):
            rows.append(('c: live refreshing holder on A, B waits', 'ours',
                         f"B entered while A inside: {x['waiter_entered_while_holder_inside']}; "
                         f"B exit {x['waiter_exit_code']} after {f(x['waiter_seconds'])} s; A exit {x['holder_exit_code']}"))
    r = load('d-handoff')
    if r:
        for key, impl in (('ours', 'ours'), ('flufl_lock', 'flufl.lock 10.0.0')):
            h, u = r.get(f'{key}_handoff'), r.get(f'{key}_uncontended')
            if isinstance(h, dict) and isinstance(u, dict):
                rows.append(('d: hand-off A<->B; uncontended on A', impl,
                             f"hand-off median {f(h['handoff_ms_median'])} ms, p90 {f(h['handoff_ms_p90'])} ms "
                             f"({h['handoffs_measured']} measured); NFS calls per acquisition: "
                             f"{f(u['nfs_calls_per_acquire_release'])} uncontended, "
                             f"{f(h['nfs_calls_per_acquisition_contended'])} contended; "
                             f"{f(u['ms_per_acquire_release'])} ms per uncontended acquire+release"))
    print('| scenario | implementation | figures |')
    print('|---|---|---|')
    for row in rows:
        print('| ' + ' | '.join(row) + ' |')
    return 0


def cmd_stats(a: argparse.Namespace) -> int:
    print(json.dumps(snapshot(), indent=1))
    return 0


# ----------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest='cmd', required=True)

    w = sp.add_parser('worker', help='(internal) one contending process')
    w.add_argument('--impl', choices=('cli', 'py'), required=True)
    w.add_argument('--bin', default='')
    w.add_argument('--id', required=True)
    w.add_argument('--lock', required=True)
    w.add_argument('--count', type=int, required=True)
    w.add_argument('--log', default='')
    w.add_argument('--counter', default='')
    w.add_argument('--times', required=True)
    w.add_argument('--record', required=True)
    w.add_argument('--lifetime', type=float, default=30)
    w.add_argument('--timeout', type=float, default=60)
    w.add_argument('--hold', type=float, default=0)
    w.add_argument('--pause-min', type=float, default=0)
    w.add_argument('--pause-max', type=float, default=0)
    w.add_argument('--seed', type=int, default=0)
    w.add_argument('--alternate', default='', help='comma list of peer worker ids to ping-pong with')
    w.add_argument('--alternate-limit', type=float, default=10)
    w.set_defaults(fn=cmd_worker)

    c = sp.add_parser('contend', help='scenario a: contention through both mounts')
    c.add_argument('--impl', choices=('cli', 'py'), default='cli')
    c.add_argument('--label', default='a-contention')
    c.add_argument('--workers-a', type=int, default=2)
    c.add_argument('--workers-b', type=int, default=2)
    c.add_argument('--total', type=int, default=500)
    c.add_argument('--lifetime', type=float, default=30)
    c.add_argument('--timeout', type=float, default=60)
    c.add_argument('--hold', type=float, default=0)
    c.add_argument('--pause', type=float, default=0.0, help='max random pause between acquisitions (s)')
    c.add_argument('--deadline', type=float, default=240)
    c.add_argument('--require-all', action='store_true', help='fail when any acquisition fails')
    c.add_argument('--report-only', action='store_true', help='print violations, exit 0')
    c.set_defaults(fn=cmd_contend)

    l = sp.add_parser('lost-link', help='scenario b: lost LINK replies on mount A')
    l.add_argument('--label', default='b-lost-link')
    l.add_argument('--count', type=int, default=10)
    l.add_argument('--lifetime', type=float, default=10)
    l.add_argument('--timeout', type=float, default=15)
    l.add_argument('--py-lifetime', type=float, default=5)
    l.add_argument('--py-timeout', type=float, default=8)
    l.add_argument('--peer-timeout', type=float, default=4)
    l.set_defaults(fn=cmd_lost_link)

    k = sp.add_parser('crash', help='scenario c: killed holder, break after expiry')
    k.add_argument('--label', default='c-crash')
    k.add_argument('--lifetime', type=float, default=4)
    k.add_argument('--wait-timeout', type=float, default=40)
    k.add_argument('--py-wait-timeout', type=float, default=40)
    k.add_argument('--hold-before-kill', type=float, default=1.0)
    k.add_argument('--live-lifetime', type=float, default=3)
    k.add_argument('--live-hold', type=float, default=7)
    k.add_argument('--live-wait', type=float, default=5)
    k.add_argument('--no-py', action='store_true')
    k.set_defaults(fn=cmd_crash)

    h = sp.add_parser('handoff', help='scenario d: hand-off latency, NFS calls per acquisition')
    h.add_argument('--label', default='d-handoff')
    h.add_argument('--per-worker', type=int, default=25)
    h.add_argument('--py-per-worker', type=int, default=10)
    h.add_argument('--solo', type=int, default=20)
    h.add_argument('--hold', type=float, default=0.05)
    h.add_argument('--pause', type=float, default=0.01)
    h.add_argument('--lifetime', type=float, default=30)
    h.add_argument('--timeout', type=float, default=60)
    h.add_argument('--deadline', type=float, default=120)
    h.set_defaults(fn=cmd_handoff)

    m = sp.add_parser('summary', help='key figures of a run as a Markdown table')
    m.add_argument('dir', nargs='?', default='')
    m.set_defaults(fn=cmd_summary)

    s = sp.add_parser('stats', help='print fresh NFS call counts of both bridges')
    s.set_defaults(fn=cmd_stats)

    a = ap.parse_args()
    return a.fn(a)


if __name__ == '__main__':
    sys.exit(main())
