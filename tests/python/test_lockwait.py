"""A process stopped (SIGSTOP) while it holds the database's cross-process
commit lock stops nobody for longer than their own deadlines: a write
transaction's commit raises sop.DatabaseBusyError after its max_time with
nothing written, reads go on, and once the holder resumes everything
proceeds.  (The child holds the lock the way a committing process does: an
exclusive flock on the folder's sop.lock.)"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import sop
from sop import Context, Database, DatabaseOptions, Item, TransactionMode

CHILD = textwrap.dedent("""
    import fcntl, os, signal, sys
    from sop import Context, Database, DatabaseOptions, Item
    folder = sys.argv[1]
    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=[folder]))
    with db.begin_transaction(ctx) as t:
        db.open_btree(ctx, "s", t).add(ctx, Item(key=10, value="child"))
    fd = os.open(os.path.join(folder, "sop.lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)       # as in the middle of a commit
    os.kill(os.getpid(), signal.SIGSTOP)
    os.close(fd)
""")


def _stopped_child(folder):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    p = subprocess.Popen([sys.executable, "-c", CHILD, folder], env=env)
    _, status = os.waitpid(p.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"child ended instead of stopping ({status:#x})"
    return p


def _find(db, ctx, key):
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        return db.open_btree(ctx, "s", t).find(ctx, key)


@pytest.mark.concurrency
def test_stopped_lock_holder_gives_busy(db_path):
    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=[db_path]))
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t).add(ctx, Item(key=1, value="one"))
    child = _stopped_child(db_path)
    try:
        t0 = time.monotonic()
        t = db.begin_transaction(ctx, max_time=1 / 60)  # one second
        db.open_btree(ctx, "s", t).add(ctx, Item(key=2, value="two"))
        with pytest.raises(sop.DatabaseBusyError, match="nothing was written"):
            t.commit(ctx)
        assert 0.9 <= time.monotonic() - t0 < 5
        assert t._txn.ended  # ended like any failed commit
        # readers go on at once, and see the child's earlier commit
        t0 = time.monotonic()
        assert _find(db, ctx, 10)
        assert _find(db, ctx, 1)
        assert not _find(db, ctx, 2)  # nothing written
        assert time.monotonic() - t0 < 0.5
    finally:
        os.kill(child.pid, signal.SIGCONT)
        assert child.wait(60) == 0
    # the holder resumed and let go: the retry commits
    with db.begin_transaction(ctx) as t:
        db.open_btree(ctx, "s", t).add(ctx, Item(key=2, value="two"))
    assert _find(db, ctx, 2)
