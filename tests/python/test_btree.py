"""Btree API behaviours (python-api.md section 8) on primitive-key stores."""

import uuid

import pytest

import sop
from sop import Item, PagingInfo
from sop.btree import BtreeOptions, CacheConfig, Relation

NIL = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def store(db, ctx):
    """A unique store 's' inside an open ForWriting transaction."""
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "s", t)
    yield s
    t.rollback(ctx)


@pytest.fixture
def dup_store(db, ctx):
    """A non-unique store 'd' (BtreeOptions() default is_unique=False)."""
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "d", t, BtreeOptions())
    yield s
    t.rollback(ctx)


def keys_of(items):
    return [i.key for i in items]


def test_add_forms(store, ctx):
    assert store.add(ctx, 1, "one") is True
    assert store.add(ctx, Item(key=2, value="two")) is True
    assert store.add(ctx, [Item(key=3, value="three"), Item(4, "four")]) is True
    assert store.add(ctx, 5) is True  # value None is stored
    assert store.count() == 5
    assert store.find(ctx, 5) and store.get_current_value(ctx).value is None
    # an existing key in a unique store: False, no error; batch is False if any fails
    assert store.add(ctx, 1, "uno") is False
    assert store.add(ctx, [Item(6, "six"), Item(1, "x")]) is False
    assert store.count() == 6
    assert store.find(ctx, 1) and store.get_current_value(ctx).value == "one"


def test_add_rejects_non_items_in_list(store, ctx):
    with pytest.raises(sop.InvalidArgumentError):
        store.add(ctx, [Item(1, "a"), 2])


def test_duplicates_on_non_unique(dup_store, ctx):
    s = dup_store
    assert not s.is_unique()
    assert s.add(ctx, "k", 1) and s.add(ctx, "k", 2) and s.add(ctx, "k", 3)
    assert s.count() == 3
    assert s.add_if_not_exists(ctx, "k", 4) is False
    assert s.find(ctx, "k")
    items = s.get_items(ctx, PagingInfo(page_size=10))
    assert [i.value for i in items] == [1, 2, 3]
    # find_with_id reaches the second duplicate (id as str and as uuid.UUID)
    second = items[1]
    assert s.find_with_id(ctx, "k", second.id)
    assert s.get_current_value(ctx).value == 2
    assert s.find_with_id(ctx, "k", uuid.UUID(items[2].id))
    assert s.get_current_value(ctx).value == 3
    assert s.find_with_id(ctx, "k", str(uuid.uuid4())) is False
    # get_values by id
    got = s.get_values(ctx, [Item("k", id=items[2].id), Item("k")])
    assert [g.value for g in got] == [3, 1]
    # remove removes one duplicate
    assert s.remove(ctx, "k") and s.count() == 2


def test_add_if_not_exists_update_upsert(store, ctx):
    assert store.add_if_not_exists(ctx, "a", 1) is True
    assert store.add_if_not_exists(ctx, "a", 2) is False
    assert store.update(ctx, "a", 3) is True
    assert store.update(ctx, "zz", 3) is False
    assert store.update(ctx, [Item("a", 4), Item("zz", 5)]) is False
    assert store.upsert(ctx, "a", 5) is True
    assert store.upsert(ctx, Item("b", {"x": [1, 2]})) is True
    assert store.upsert(ctx, "c", None) is True
    res = store.get_values(ctx, [Item("a"), Item("b"), Item("c"), Item("nope")])
    assert [(r.key, r.value) for r in res] == [("a", 5), ("b", {"x": [1, 2]}), ("c", None),
                                               ("nope", None)]
    assert res[3].id == NIL
    assert all(r.id != NIL for r in res[:3])


def test_remove_forms(store, ctx):
    store.add(ctx, [Item(i, str(i)) for i in range(10)])
    assert store.remove(ctx, 0) is True
    assert store.remove(ctx, [1, 2]) is True
    assert store.remove(ctx, Item(3)) is True          # Items are unwrapped (quirk 13 fixed)
    assert store.remove(ctx, [Item(4), 5]) is True
    assert store.remove(ctx, 0) is False
    assert store.remove(ctx, [6, 100]) is False
    assert store.count() == 3
    store.first(ctx)
    assert keys_of(store.get_keys(ctx, PagingInfo(page_size=10))) == [7, 8, 9]


def test_navigation(store, ctx):
    assert store.first(ctx) is False and store.last(ctx) is False
    assert store.next(ctx) is False and store.previous(ctx) is False
    cur = store.get_current_key(ctx)
    assert (cur.key, cur.value, cur.id) == (None, None, NIL)
    store.add(ctx, [Item(k, k * 10) for k in (5, 1, 3)])
    assert store.first(ctx) and store.get_current_key(ctx).key == 1
    assert store.get_current_key(ctx).value is None
    assert store.next(ctx) and store.get_current_item(ctx).value == 30
    assert store.next(ctx) and store.get_current_key(ctx).key == 5
    assert store.next(ctx) is False
    assert store.get_current_key(ctx).key is None       # unpositioned past the end
    assert store.next(ctx) is False
    assert store.last(ctx) and store.get_current_key(ctx).key == 5
    assert store.previous(ctx) and store.previous(ctx)
    assert store.previous(ctx) is False
    # a miss positions on the next greater key
    assert store.find(ctx, 2) is False and store.get_current_key(ctx).key == 3
    assert store.find(ctx, 9) is False and store.get_current_key(ctx).key is None
    assert store.find(ctx, 3) is True


def test_update_current_value_and_key(store, ctx):
    store.add(ctx, "k", {"balance": 1})
    assert store.update_current_value(ctx, "x") is False   # not positioned
    assert store.find(ctx, "k")
    item = store.get_current_item(ctx)
    assert store.update_current_value(ctx, {"balance": item.value["balance"] + 1}) is True
    assert store.get_current_item(ctx).value == {"balance": 2}
    assert store.get_current_item(ctx).id == item.id
    assert store.update_current_key(ctx, Item("k")) is True
    with pytest.raises(sop.KeyChangedError):
        store.update_current_key(ctx, Item("other"))


def test_update_key(store, ctx):
    store.add(ctx, 3.0, "three")
    store.first(ctx)
    assert store.get_current_key(ctx).key == 3.0
    assert isinstance(store.get_current_key(ctx).key, float)
    assert store.update_key(ctx, Item(3)) is True
    store.first(ctx)
    assert type(store.get_current_key(ctx).key) is int
    assert store.update_key(ctx, [Item(7)]) is False
    # update/upsert replace the stored key too (3 and 3.0 are the same key)
    assert store.update(ctx, 3.0, "x") and store.first(ctx)
    assert type(store.get_current_key(ctx).key) is float
    assert store.upsert(ctx, 3, "y") and store.first(ctx)
    assert store.get_current_item(ctx).value == "y"
    assert type(store.get_current_key(ctx).key) is int


def test_primitive_keys_round_trip_and_order(store, ctx):
    keys = [-5, 2, 10, 2**63, 0.5, 3.0, -1e300]
    for k in keys:
        assert store.add(ctx, k, repr(k))
    store.first(ctx)
    got = keys_of(store.get_items(ctx, PagingInfo(page_size=100)))
    assert got == sorted(keys)
    assert [type(k) for k in got] == [type(k) for k in sorted(keys)]
    # 3 and 3.0 are the same key
    assert store.add(ctx, 3, "int three") is False
    assert store.find(ctx, 3)


def test_other_key_types(db, ctx):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "mixed", t)
        for k in (None, True, "s", b"b", bytearray(b"ba"), memoryview(b"mv")):
            assert s.add(ctx, k, 1)
        s.first(ctx)
        assert keys_of(s.get_keys(ctx, PagingInfo(page_size=10))) == [
            None, True, "s", b"b", b"ba", b"mv"]


@pytest.mark.parametrize("bad,exc", [
    ({"a": 1}, sop.KeyTypeError), ([1, 2], sop.KeyTypeError), ((1,), sop.KeyTypeError),
    (2**64, sop.KeyTypeError), (float("nan"), sop.InvalidArgumentError),
    ("\ud800", sop.KeyTypeError), ("k" * 4097, sop.KeyTooLargeError),
    (b"k" * 5000, sop.KeyTooLargeError), (b"\x00" * 3000, sop.KeyTooLargeError),
], ids=lambda v: repr(v)[:40])
def test_bad_keys_leave_store_intact(db, ctx, bad, exc):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "s", t)
        s.add(ctx, "ok", 1)
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "s", t)
        with pytest.raises(exc):
            s.add(ctx, bad, 1)
        with pytest.raises(exc):
            s.find(ctx, bad)
        with pytest.raises(exc):
            s.remove(ctx, [bad])
        assert s.count() == 1  # nothing half-done
    with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "s", t)
        assert s.count() == 1 and s.find(ctx, "ok")


def test_largest_keys(store, ctx):
    big = "k" * 4090  # 4093 bytes encoded
    assert store.add(ctx, big, 1) and store.find(ctx, big)
    assert store.get_current_key(ctx).key == big


def test_bad_values(store, ctx):
    with pytest.raises(sop.ValueTypeError):
        store.add(ctx, "k", {1: 2})
    with pytest.raises(sop.ValueTypeError):
        store.add(ctx, "k", object())
    assert store.count() == 0


def test_bad_ctx(store, ctx):
    with pytest.raises(sop.CancelledError):
        store.add(None, "k", 1)
    with pytest.raises(sop.CancelledError):
        store.first(object())
    c = sop.Context()
    c.cancel()
    assert not c.is_valid()
    with pytest.raises(sop.CancelledError):
        store.find(c, "k")
    assert store.count() == 0


def test_get_values_forms(store, ctx):
    store.add(ctx, [Item(i, i * i) for i in range(5)])
    one = store.get_values(ctx, Item(3))
    assert len(one) == 1 and one[0].value == 9 and one[0].key == 3
    many = store.get_values(ctx, [Item(4), Item(42), Item(0)])
    assert [(m.key, m.value) for m in many] == [(4, 16), (42, None), (0, 0)]
    assert store.get_values(ctx, []) == []


def test_store_info(db, ctx):
    opts = BtreeOptions("orders", is_unique=True, slot_length=64, description="Orders",
                        cache_config=CacheConfig(node_cache_duration=7),
                        relations=[Relation(["user_id"], "users", ["id"])])
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "orders", t, opts)
        assert opts.name == "orders" and opts.transaction_id == str(t.transaction_id)
        s.add(ctx, "o1", 1)
        info = s.get_store_info()
        assert isinstance(info, BtreeOptions)
        assert (info.name, info.is_unique, info.slot_length, info.description) == (
            "orders", True, 64, "Orders")
        assert info.relations == [Relation(["user_id"], "users", ["id"])]
        assert info.cache_config == CacheConfig(node_cache_duration=7)
        assert info.transaction_id == str(t.transaction_id)
        assert s.count() == 1 and s.is_unique()
        assert isinstance(s.id, uuid.UUID) and s.transaction_id == t.transaction_id
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "orders", t)
        info = s.get_store_info()
        assert info.relations[0].target_store == "users"
        assert s.is_unique()


def test_value_placement(db, ctx):
    from sop import ValueDataSize
    for size in ValueDataSize:
        opts = BtreeOptions(f"v{size.value}")
        opts.set_value_data_size(size)
        with db.begin_transaction(ctx) as t:
            s = db.new_btree(ctx, opts.name, t, opts)
            s.add(ctx, [Item(i, "x" * 2000) for i in range(50)])
        with db.begin_transaction(ctx) as t:
            s = db.open_btree(ctx, opts.name, t)
            info = s.get_store_info()
            assert info.is_value_data_in_node_segment == (size == ValueDataSize.Small)
            s.first(ctx)
            items = s.get_items(ctx, PagingInfo(page_size=100))
            assert len(items) == 50 and all(i.value == "x" * 2000 for i in items)
            s.first(ctx)
            assert all(i.value is None for i in s.get_keys(ctx, PagingInfo(page_size=100)))


def test_key_codec_hook(db, ctx):
    """The Python-level key codec path (for non-primitive stores)."""
    from sop import _sop
    opts = BtreeOptions("people", is_unique=True, is_primitive_key=False)
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "people", t, opts)
        with pytest.raises(sop.KeyTypeError):  # complex stores take dict/dataclass keys
            s.add(ctx, 5, 1)
        s._key_codec = lambda k: (_sop.encode_key([k["last"], k["first"]]),
                                  _sop.encode_value(k))
        s._key_decoder = lambda kb, doc: _sop.decode_value(doc)
        s.add(ctx, {"last": "b", "first": "z", "age": 3}, 1)
        s.add(ctx, {"last": "a", "first": "y", "age": 4}, 2)
        assert s.find(ctx, {"last": "b", "first": "z"})
        assert s.get_current_key(ctx).key == {"last": "b", "first": "z", "age": 3}
        s.first(ctx)
        assert [i.key["last"] for i in s.get_keys(ctx, PagingInfo())] == ["a", "b"]
        s._key_codec = lambda k: "not a tuple"
        with pytest.raises(sop.KeyTypeError):
            s.add(ctx, {}, 1)


def test_btree_not_constructible():
    with pytest.raises(TypeError):
        sop.Btree()
