"""Defect found by helper h6 (model-based serializability attack).

A backward step (previous) made after the transaction wrote to the store is
logged as an OBS_OWN|OBS_PREV record in the order the header src/merge.h
documents and src/api.c obs_step writes: from-key, from-id, landed
position.  src/merge.c check_own parses OBS_PREV as landed position first,
then key and id, so at commit (when a concurrent commit changed the store)
the read log is misparsed: the commit fails with CorruptionError
("malformed read log") instead of ConflictError, or checks the wrong stretch.
"""

import pytest

import sop
from sop import BtreeOptions, TransactionMode


def _setup(db, ctx, keys):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "b", t, BtreeOptions(is_unique=True, slot_length=4))
        for k in keys:
            assert s.add(ctx, k, "p")


def _reverse_scan(ctx, s):
    out = []
    ok = s.last(ctx)
    while ok:
        out.append(s.get_current_key(ctx).key)
        ok = s.previous(ctx)
    return out


def test_previous_after_own_write_then_concurrent_remove_conflicts(db, ctx):
    """T1 removes 3, then scans backward (sees 8, 0); T2 removes 0 and commits.
    T1 saw 0, which is gone: its commit must fail with ConflictError."""
    _setup(db, ctx, [0, 3, 8])
    t1 = db.begin_transaction(ctx)
    s1 = db.open_btree(ctx, "b", t1)
    assert s1.remove(ctx, 3)
    assert _reverse_scan(ctx, s1) == [8, 0]
    with db.begin_transaction(ctx) as t2:
        assert db.open_btree(ctx, "b", t2).remove(ctx, 0)
    with pytest.raises(sop.ConflictError):
        t1.commit(ctx)


def test_previous_after_own_write_next_to_unrelated_insert_commits(db, ctx):
    """T1 removes 3, then steps backward over 0..8; T2 inserts 100 (outside
    what T1 read) and commits.  T1's reads still hold: it must commit."""
    _setup(db, ctx, [0, 3, 8])
    t1 = db.begin_transaction(ctx)
    s1 = db.open_btree(ctx, "b", t1)
    assert s1.remove(ctx, 3)
    assert s1.find(ctx, 8)
    assert s1.previous(ctx) and s1.get_current_key(ctx).key == 0
    with db.begin_transaction(ctx) as t2:
        assert db.open_btree(ctx, "b", t2).add(ctx, 100, "o")
    t1.commit(ctx)
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "b", t)
        assert s.count() == 3 and not s.find(ctx, 3)
