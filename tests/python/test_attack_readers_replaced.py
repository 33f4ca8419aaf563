"""Defect found by helper h6: sop.readers deleted (or replaced by a copy)
while a process has the database open splits the processes into two tables.

The process that had the database open keeps its descriptor on the old
(unlinked) table; the next process to open creates a new sop.readers.  The
log epoch a process reads at begin to decide whether another process
committed then lives in two files: commits of the new process move the epoch
in the new table only, so the old process never catches up and its new read
transactions miss commits that were acknowledged before they began (stale
reads, for as long as it does not commit itself).  Truncating or
garbage-filling the table in place is handled (the test's first case).

Expected: a transaction begun after another process's commit returned sees
that commit, whatever was done to sop.readers (or a clear error)."""

import os
import shutil

import pytest

import sop
from sop import TransactionMode


def _child_commit(subproc, path, key):
    subproc(f"""
        import sop
        C = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[{path!r}]))
        with db.begin_transaction(C) as t:
            assert db.open_btree(C, "s", t).add(C, {key}, "child")
        """)


def _sees(db, ctx, key):
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        return db.open_btree(ctx, "s", t).find(ctx, key)


def _truncate(r):
    os.truncate(r, 0)


def _delete(r):
    os.unlink(r)


def _replace_by_copy(r):
    shutil.copy(r, r + ".copy")
    os.rename(r + ".copy", r)


@pytest.mark.parametrize("tamper", [_truncate, _delete, _replace_by_copy],
                         ids=["truncated", "deleted", "replaced_by_copy"])
def test_commit_of_a_later_process_is_seen(db, db_path, ctx, subproc, tamper):
    with db.begin_transaction(ctx) as t:
        assert db.new_btree(ctx, "s", t).add(ctx, 1, "parent")
    assert _sees(db, ctx, 1) and not _sees(db, ctx, 2)
    tamper(os.path.join(db_path, "sop.readers"))
    _child_commit(subproc, db_path, 2)  # acknowledged before the next begin
    assert _sees(db, ctx, 2), "a read transaction begun after the commit misses it"
