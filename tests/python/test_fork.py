"""fork() with a database open: the child never writes through the parent's
handle.  Handles made before the fork (transactions, btrees) raise
sop.MisuseError naming fork in the child; a Database object, module-level
or new, opens a fresh handle in the child; the parent keeps working; every
acknowledged commit of every process is there afterwards and the integrity
check is clean.  Covers os.fork with a live transaction, multiprocessing
pools (fork start method) with a module-level Database and with one
Database per worker, and the pre-fork server shape."""

import multiprocessing
import os
import sys

import pytest

import sop
from sop import btree

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

# The module-level database of the pool tests (set before the pool forks).
MODULE_DB = None


def _commit_keys(db, ctx, prefix, n):
    for i in range(n):
        for _ in range(100):
            try:
                with db.begin_transaction(ctx) as t:
                    b = db.open_btree(ctx, "items", t)
                    b.add(ctx, btree.Item(key=f"{prefix}-{i:04d}", value=f"v {prefix} {i}"))
                break
            except sop.ConflictError:
                continue
        else:
            raise AssertionError(f"{prefix}-{i}: too many conflicts")


def _assert_keys(db, ctx, prefix, n):
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading.value) as t:
        b = db.open_btree(ctx, "items", t)
        for i in range(n):
            assert b.find(ctx, f"{prefix}-{i:04d}"), f"{prefix}-{i} missing"
            assert b.get_current_item(ctx).value == f"v {prefix} {i}"


def _fresh(db_path):
    ctx = sop.Context()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[db_path]))
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "items", t)
    return ctx, db


def _reopen_and_check(db_path):
    """What a later process sees: a fresh handle, a clean integrity check."""
    sop.database._close_all()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[db_path]))
    db.check()
    return db


def _child_exit(fn):
    """Run fn in the child and leave with its verdict (never return)."""
    code = 1
    try:
        fn()
        code = 0
    except BaseException as e:  # noqa: BLE001 - reported through the exit code
        sys.stderr.write(f"child {os.getpid()}: {type(e).__name__}: {e}\n")
    finally:
        sys.stderr.flush()
        os._exit(code)


def _wait(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.concurrency
def test_fork_with_live_transaction(db_path):
    ctx, db = _fresh(db_path)
    _commit_keys(db, ctx, "before", 5)
    t = db.begin_transaction(ctx)
    b = db.open_btree(ctx, "items", t)
    b.add(ctx, btree.Item(key="parent-open", value="v parent-open"))

    pid = os.fork()
    if pid == 0:
        def child():
            # the parent's transaction and btree refuse, naming fork
            with pytest.raises(sop.MisuseError, match="fork"):
                b.add(ctx, btree.Item(key="child-through-parent", value="x"))
            with pytest.raises(sop.MisuseError, match="fork"):
                t.commit(ctx)
            # the same Database object opens a handle of its own here
            _commit_keys(db, ctx, "child", 30)
            _assert_keys(db, ctx, "before", 5)
        _child_exit(child)

    t.commit(ctx)
    _commit_keys(db, ctx, "parent", 30)
    assert _wait(pid) == 0
    db2 = _reopen_and_check(db_path)
    for prefix, n in (("before", 5), ("parent", 30), ("child", 30)):
        _assert_keys(db2, ctx, prefix, n)
    with db2.begin_transaction(ctx, mode=sop.TransactionMode.ForReading.value) as t2:
        bb = db2.open_btree(ctx, "items", t2)
        assert bb.find(ctx, "parent-open")
        assert not bb.find(ctx, "child-through-parent")


def _pool_module_db(args):
    prefix, n = args
    _commit_keys(MODULE_DB, sop.Context(), prefix, n)
    return os.getpid()


def _pool_own_db(args):
    folder, prefix, n = args
    db = sop.Database(sop.DatabaseOptions(stores_folders=[folder]))
    _commit_keys(db, sop.Context(), prefix, n)
    return os.getpid()


@pytest.mark.concurrency
@pytest.mark.parametrize("per_worker", [False, True], ids=["module-level-db", "per-worker-db"])
def test_multiprocessing_fork_pool(db_path, per_worker):
    global MODULE_DB
    ctx, db = _fresh(db_path)
    _commit_keys(db, ctx, "main", 3)  # the parent's handle is live at the fork
    MODULE_DB = db
    jobs = [(f"w{i}", 15) for i in range(6)]
    mp = multiprocessing.get_context("fork")
    with mp.Pool(3) as pool:
        if per_worker:
            pids = pool.map(_pool_own_db, [(db_path, p, n) for p, n in jobs])
        else:
            pids = pool.map(_pool_module_db, jobs)
    assert os.getpid() not in pids
    _commit_keys(db, ctx, "main-after", 3)  # the parent still works
    db2 = _reopen_and_check(db_path)
    for prefix, n in jobs + [("main", 3), ("main-after", 3)]:
        _assert_keys(db2, ctx, prefix, n)
    MODULE_DB = None


@pytest.mark.concurrency
def test_prefork_server(db_path):
    ctx, db = _fresh(db_path)
    _commit_keys(db, ctx, "master", 5)
    pids = []
    for w in range(4):
        pid = os.fork()
        if pid == 0:
            _child_exit(lambda w=w: _commit_keys(db, sop.Context(), f"worker{w}", 25))
        pids.append(pid)
    _commit_keys(db, ctx, "master2", 10)
    assert [_wait(p) for p in pids] == [0, 0, 0, 0]
    db2 = _reopen_and_check(db_path)
    for prefix, n in [(f"worker{w}", 25) for w in range(4)] + [("master", 5), ("master2", 10)]:
        _assert_keys(db2, ctx, prefix, n)
