"""Hostile model-based serializability check across processes (helper h6).

Three processes, two threads each, run random short writing transactions
(test_attack_serial_model's operations) on two tiny stores of one database.
Commits are taken under an flock on a side file and each committed
transaction's operations and answers are appended to a shared history file
while that lock is held, so the file's order is the commit order across
processes.  The history is then replayed on a dict (as in the threaded
test): every answer must match its place in that order, and the final state
must equal the replay.

On main this fails with CorruptionError "malformed read log" (the OBS_PREV
defect of test_attack_own_prev: the 'rev' operation steps backward after
own writes); with that parsing fixed it passed 15 seeds."""

import json
import os
import subprocess
import sys

import pytest

import sop
from sop import TransactionMode

sys.path.insert(0, os.path.dirname(__file__))
import test_attack_serial_model as m  # noqa: E402

WORKER = r"""
import fcntl, json, os, random, sys, threading, time
sys.path.insert(0, sys.argv[4])
import sop
import test_attack_serial_model as m
path, hist, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sop.Database(sop.DatabaseOptions(stores_folders=[path]))
errors = []

def worker(me):
    c = sop.Context()
    rng = random.Random(seed * 10 + me)
    lk = os.open(hist + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    for _ in range(40):
        ops = m._ops_for(rng, 12)
        for _attempt in range(300):
            fcntl.flock(lk, fcntl.LOCK_EX)
            try:
                t = db.begin_transaction(c)
                with open(hist) as f:
                    begin_at = sum(1 for _ in f)
            finally:
                fcntl.flock(lk, fcntl.LOCK_UN)
            try:
                st = {s: db.open_btree(c, s, t) for s in m.STORES}
                obs = []
                for op in ops:
                    time.sleep(0)
                    obs.append(m._engine_apply(c, st, op))
                fcntl.flock(lk, fcntl.LOCK_EX)
                try:
                    t.commit(c)
                    with open(hist, "a") as f:
                        f.write(json.dumps([seed, me, ops, obs, begin_at]) + "\n")
                finally:
                    fcntl.flock(lk, fcntl.LOCK_UN)
                break
            except sop.ConflictError:
                try:
                    t.rollback(c)
                except Exception:
                    pass
        else:
            errors.append("gave up")

def guarded(me):
    try:
        worker(me)
    except Exception as e:
        errors.append(repr(e))

ths = [threading.Thread(target=guarded, args=(i,)) for i in range(2)]
for th in ths: th.start()
for th in ths: th.join()
if errors:
    print(errors); sys.exit(1)
"""


def _norm(x):
    """JSON turned tuples into lists: compare in one form."""
    if isinstance(x, (list, tuple)):
        return [_norm(i) for i in x]
    return x


@pytest.mark.concurrency
@pytest.mark.parametrize("seed", range(int(os.environ.get("H6_SEEDS", "2"))))
def test_processes_serializable(db, db_path, ctx, tmp_path, seed):
    with db.begin_transaction(ctx) as t:
        for s in m.STORES:
            db.new_btree(ctx, s, t, sop.BtreeOptions(is_unique=True, slot_length=4))
    hist = str(tmp_path / "hist")
    open(hist, "w").close()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, db_path, hist, str(seed * 10 + i),
                               os.path.dirname(os.path.abspath(__file__))],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(3)]
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out
    with open(hist) as f:
        history = [json.loads(line) for line in f]
    assert len(history) == 3 * 2 * 40
    state = {s: {} for s in m.STORES}
    states = []
    for n, (pseed, me, ops, obs, begin_at) in enumerate(history):
        ops = [tuple(o) for o in ops]
        states.append({s: dict(d) for s, d in state.items()})
        if not any(m._wrote(op, got) for op, got in zip(ops, obs)):
            if any(_norm(m._replay({s: dict(d) for s, d in states[i].items()}, ops)) == _norm(obs)
                   for i in range(begin_at, n + 1)):
                continue
            pytest.fail(f"read-only txn #{n} (proc seed {pseed} thread {me}) {ops} saw {obs}: "
                        f"no state from #{begin_at} to #{n} gives that")
        for op, got in zip(ops, obs):
            want = m._model_apply(state, op)
            if _norm(want) != _norm(got):
                pytest.fail(f"txn #{n} (proc seed {pseed} thread {me}, began after #{begin_at}) op {op} "
                            f"saw {got!r}, serial replay gives {want!r}; state before "
                            f"{states[n]}; ops {ops}; obs {obs}")
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        for s in m.STORES:
            b = db.open_btree(ctx, s, t)
            assert _norm(m._engine_apply(ctx, {s: b}, ("scan", s, 0, 0))) == _norm(sorted(state[s].items()))
