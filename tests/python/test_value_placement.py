"""ValueDataSize: Small values live in the leaf; Medium and Big values are
separate blobs that key-only navigation never reads (counted by the
engine's value-blob read counter), and an update is copy-on-write."""

import pytest

import sop
from sop import btree, Item, PagingInfo


def make_store(db, ctx, size, n=300):
    with db.begin_transaction(ctx) as t:
        bo = btree.BtreeOptions("docs", is_unique=True, slot_length=16)
        bo.set_value_data_size(size)
        s = db.new_btree(ctx, "docs", t, options=bo)
        for i in range(n):
            s.add(ctx, Item(key=i, value={"body": "x" * 500, "n": i}))


def value_reads(db):
    return db._ensure().stat()["value_reads"]


@pytest.mark.parametrize("size", [btree.ValueDataSize.Medium, btree.ValueDataSize.Big])
def test_navigation_and_get_keys_never_read_values(db, ctx, size):
    make_store(db, ctx, size)
    sop.database._close_all()  # reopen: nothing cached from the writes
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "docs", t)
        before = value_reads(db)
        assert s.first(ctx)
        keys = s.get_keys(ctx, PagingInfo(page_size=1000))
        assert [k.key for k in keys] == list(range(300))
        assert all(k.value is None for k in keys)
        assert s.find(ctx, 150)
        assert s.get_current_key(ctx).key == 150
        while s.next(ctx):
            pass
        assert s.count() == 300
        assert value_reads(db) == before
        # values are read exactly when asked for
        assert s.find(ctx, 7)
        assert s.get_current_value(ctx).value == {"body": "x" * 500, "n": 7}
        assert value_reads(db) == before + 1
        s.first(ctx)
        items = s.get_items(ctx, PagingInfo(page_size=10))
        assert [i.value["n"] for i in items] == list(range(10))
        assert value_reads(db) == before + 11


def test_small_values_live_in_the_leaf(db, ctx):
    make_store(db, ctx, btree.ValueDataSize.Small)
    sop.database._close_all()
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "docs", t)
        s.first(ctx)
        items = s.get_items(ctx, PagingInfo(page_size=1000))
        assert len(items) == 300
        assert value_reads(db) == 0


def test_big_value_update_is_copy_on_write(db, ctx):
    make_store(db, ctx, btree.ValueDataSize.Big, n=20)
    t = db.begin_transaction(ctx)
    s = db.open_btree(ctx, "docs", t)
    assert s.update(ctx, 5, "replaced")
    assert s.find(ctx, 5) and s.get_current_value(ctx).value == "replaced"
    t.rollback(ctx)
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "docs", t)
        assert s.find(ctx, 5)
        assert s.get_current_value(ctx).value == {"body": "x" * 500, "n": 5}
        assert s.update(ctx, 5, "replaced")
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "docs", t)
        assert s.find(ctx, 5) and s.get_current_value(ctx).value == "replaced"
    db._ensure().check()
