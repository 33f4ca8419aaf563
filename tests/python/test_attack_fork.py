"""Attacks on fork() safety from Python (helper h5).

test_close_in_child_while_parent_thread_commits: a worker forked while
another thread of the parent is inside an engine call on a transaction
(holding the transaction's mutex, here: committing) cleans up with
db.close() on the Database made before the fork.  Env.close() in the child
aborts the inherited transactions, waiting for their mutexes; the thread
that held one does not exist in the child, so close() waits forever.
Expected: closing an inherited handle in a child returns at once (closes
file descriptors only, as the C layer does) or raises sop.MisuseError,
never hangs.  Each child is given 3 s; the test stops at the first hang."""

import os
import signal
import threading
import time

import pytest

import sop
from sop import btree

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


@pytest.mark.concurrency
def test_close_in_child_while_parent_thread_commits(db_path):
    ctx = sop.Context()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[db_path]))
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "items", t)
    stop = threading.Event()
    commits = [0]

    def committer():
        while not stop.is_set():
            with db.begin_transaction(ctx) as t:
                b = db.open_btree(ctx, "items", t)
                for j in range(50):
                    b.upsert(ctx, btree.Item(key=f"k{j}", value="x" * 2000))
            commits[0] += 1

    th = threading.Thread(target=committer)
    th.start()
    hung = 0
    try:
        while commits[0] < 1:
            time.sleep(0.01)
        for _ in range(20):
            time.sleep(0.01)
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    db.close()
                except sop.MisuseError:
                    pass
                except BaseException:  # noqa: BLE001 - reported by the exit code
                    code = 1
                os._exit(code)
            for _ in range(300):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                hung += 1
                break
    finally:
        stop.set()
        th.join()
    assert hung == 0, "a fork() child hung in db.close() on the inherited handle"
    db.check()
