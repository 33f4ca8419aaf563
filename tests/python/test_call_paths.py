"""The extension's per-call shortcuts behave like the general paths: keyword
and positional arguments, the Context check (a plain Context is checked
without calling error(); a changed class or a subclass still goes through
error()), Items built and read without calling Item.__init__, Item(...)
itself (a C constructor while the class is as defined), and the copy of the
found item that get_current_item uses in read-only transactions."""

import dataclasses
import pickle
import threading
import weakref

import pytest

import sop
from sop import btree


@pytest.fixture
def store(db, ctx):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "s", t)
        yield s


def test_keyword_and_positional_arguments(store, ctx):
    assert store.add(ctx, "a", 1)
    assert store.add(ctx=ctx, key="b", value=2)
    assert store.add(ctx, key="c", value=3)
    assert store.add(ctx, btree.Item(key="d", value=4))
    assert store.add(ctx, [btree.Item(key="e", value=5), btree.Item(key="f", value=6)])
    assert not store.add(ctx, "a", 9) or not store.is_unique()
    assert store.find(ctx=ctx, key="b")
    assert store.get_current_item(ctx).value == 2
    assert store.upsert(ctx, key="b", value=20)
    assert store.update(ctx, "b", value=21)
    assert store.find(ctx, "b") and store.get_current_value(ctx).value == 21
    assert store.remove(ctx=ctx, keys="c")
    assert not store.remove(ctx, "c")
    assert store.remove(ctx, ["d", btree.Item(key="e")])
    assert [i.key for i in store.get_values(ctx=ctx, keys=["a", "f"])] == ["a", "f"]
    assert store.first(ctx)
    assert len(store.get_items(ctx, paging_info=sop.PagingInfo(page_size=10))) >= 3
    assert store.first(ctx)
    assert len(store.get_keys(ctx, pagingInfo=sop.PagingInfo(page_size=10))) >= 3


@pytest.mark.parametrize("call", [
    lambda s, c: s.find(c),
    lambda s, c: s.find(c, "k", "extra"),
    lambda s, c: s.find(c, "k", bogus=1),
    lambda s, c: s.find(c, "k", ctx=c),
    lambda s, c: s.add(key="k", value=1),
    lambda s, c: s.remove(c),
    lambda s, c: s.get_items(),
    lambda s, c: s.find_with_id(c, "k"),
])
def test_bad_arguments_raise_type_error(store, ctx, call):
    with pytest.raises(TypeError):
        call(store, ctx)


def test_cancelled_context(store, ctx):
    store.add(ctx, "k", 1)
    c2 = sop.Context()
    assert store.find(c2, "k")
    c2.cancel()
    for call in (lambda: store.find(c2, "k"), lambda: store.get_current_item(c2),
                 lambda: store.add(c2, "x", 1), lambda: store.remove(c2, "k")):
        with pytest.raises(sop.CancelledError):
            call()
    with pytest.raises(sop.CancelledError):
        store.find(None, "k")
    # _cancelled is a slot the extension reads in place; a Context still
    # takes other attributes and weak references
    c3 = sop.Context()
    c3.request = "r-1"
    assert c3.request == "r-1" and weakref.ref(c3)() is c3
    assert store.find(c3, "k")
    c3._cancelled = True  # what cancel() does
    with pytest.raises(sop.CancelledError):
        store.find(c3, "k")
    with pytest.raises(sop.CancelledError):
        store.find(object(), "k")


def test_context_subclass_and_patched_class(store, ctx):
    store.add(ctx, "k", 1)

    class Expiring(sop.Context):
        def error(self):
            return "expired"

    with pytest.raises(sop.CancelledError, match="expired"):
        store.find(Expiring(), "k")

    class Duck:
        def error(self):
            return None

    assert store.find(Duck(), "k")

    orig = sop.Context.error
    sop.Context.error = lambda self: "patched"
    try:
        with pytest.raises(sop.CancelledError, match="patched"):
            store.find(sop.Context(), "k")
    finally:
        sop.Context.error = orig
    assert store.find(sop.Context(), "k")


def test_items_built_by_the_extension(store, ctx):
    store.add(ctx, "k", {"v": 1})
    assert store.find(ctx, "k")
    it = store.get_current_item(ctx)
    assert type(it) is btree.Item
    assert it == btree.Item(key="k", value={"v": 1}, id=it.id)
    assert [f.name for f in dataclasses.fields(it)] == ["key", "value", "id"]
    assert dataclasses.asdict(it) == {"key": "k", "value": {"v": 1}, "id": it.id}
    assert len(it.id) == 36 and it.id != btree.NIL_UUID
    store.first(ctx)
    store.previous(ctx)
    nil = store.get_current_value(ctx)
    assert nil == btree.Item(key=None, value=None, id=btree.NIL_UUID)

    # a changed Item class is honoured (its __init__ runs again)
    seen = []
    orig = btree.Item.__init__

    def init(self, key, value=None, id=btree.NIL_UUID):
        seen.append(key)
        orig(self, key, value, id)

    btree.Item.__init__ = init
    try:
        assert store.find(ctx, "k")
        assert store.get_current_item(ctx).key == "k"
        assert seen == ["k"]
        assert btree.Item(key="direct").key == "direct"
        assert seen == ["k", "direct"]
    finally:
        btree.Item.__init__ = orig
    assert btree.Item(key="again").key == "again"
    assert seen == ["k", "direct"]


def test_item_constructor():
    Item = btree.Item
    nil = btree.NIL_UUID
    assert Item("k") == Item(key="k") == Item("k", None, nil)
    assert Item("k", 1, "x") == Item(id="x", value=1, key="k")
    assert repr(Item(key="k", value=2)) == f"Item(key='k', value=2, id='{nil}')"
    assert Item[str, int](key="k", value=3).value == 3
    it = Item(key=("a", 1), value=[1])
    assert pickle.loads(pickle.dumps(it)) == it
    assert dataclasses.replace(it, value=[2]) == Item(key=("a", 1), value=[2])
    cases = [
        ((), {}, "missing 1 required positional argument: 'key'"),
        ((1, 2, 3, 4), {}, "takes from 2 to 4 positional arguments but 5 were given"),
        ((), {"key": 1, "colour": 2}, "unexpected keyword argument 'colour'"),
        ((1,), {"key": 2}, "multiple values for argument 'key'"),
        ((1, 2), {"value": 3}, "multiple values for argument 'value'"),
    ]
    for args, kw, msg in cases:
        with pytest.raises(TypeError, match=msg):
            Item(*args, **kw)

    class Sub(Item):
        def __init__(self, key):
            super().__init__(key, value="sub")

    assert Sub("k").value == "sub" and type(Sub("k")) is Sub


def _read_only(db, ctx, n=50, **opts):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "r", t, **opts) if opts else db.new_btree(ctx, "r", t)
        for i in range(n):
            s.add(ctx, f"k{i:03d}", f"v{i}")
    return db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading.value)


def test_found_item_copy_follows_the_cursor(db, ctx):
    with _read_only(db, ctx) as t:
        s = db.open_btree(ctx, "r", t)
        s2 = db.open_btree(ctx, "r", t)
        probe = "".join(["k0", "10"])  # a str object of its own
        assert s.find(ctx, probe)
        assert s2.find(ctx, "k020")
        a = s.get_current_item(ctx)
        assert (a.key, a.value) == ("k010", "v10") and len(a.id) == 36
        assert a.key is probe  # the found str key is reused, not decoded again
        assert s.get_current_key(ctx).key == "k010" and s.get_current_key(ctx).value is None
        assert s2.get_current_item(ctx).key == "k020"
        # every cursor move makes get_current_item look again
        assert s.next(ctx) and s.get_current_item(ctx).key == "k011"
        assert s.find(ctx, "k030") and s.previous(ctx)
        assert s.get_current_item(ctx).key == "k029"
        assert s.find(ctx, "k030") and s.first(ctx)
        assert s.get_current_item(ctx).key == "k000"
        assert s.find(ctx, "k030") and s.last(ctx)
        assert s.get_current_item(ctx).key == "k049"
        assert s.find(ctx, "k030")
        got = s.get_values(ctx, btree.Item(key="k005"))
        assert got[0].value == "v5" and s.get_current_item(ctx).key == "k005"
        assert s.find(ctx, "k030")
        page = s.get_items(ctx, btree.PagingInfo(page_size=3))
        assert [i.key for i in page] == ["k030", "k031", "k032"]
        assert s.get_current_item(ctx).key == "k033"
        # a miss is not copied: the cursor's neighbour comes from the engine
        assert not s.find(ctx, "k0305")
        assert s.get_current_item(ctx).key == "k031"
        # the same id as the engine reports without the copy
        assert s.find(ctx, "k007")
        fast = s.get_current_item(ctx)
        assert s.next(ctx) and s.previous(ctx)
        assert s.get_current_item(ctx) == fast
    with pytest.raises(sop.InvalidTransactionStateError):
        s.get_current_item(ctx)


@pytest.mark.concurrency
def test_found_item_copy_with_codec_and_threads(db, ctx):
    with _read_only(db, ctx, n=200) as t:
        s = db.open_btree(ctx, "r", t)
        s._key_decoder = lambda kb, doc: "decoded"
        assert s.find(ctx, "k001") and s.get_current_item(ctx).key == "decoded"
        s._key_decoder = None
        assert s.find(ctx, "k001") and s.get_current_item(ctx).key == "k001"
        # threads sharing one store: whatever interleaving, an item is whole
        errors = []

        def worker(base):
            try:
                for i in range(300):
                    k = f"k{(base + i) % 200:03d}"
                    if s.find(ctx, k):
                        # another thread may have moved the cursor since,
                        # even past the end (then NoCurrentItemError)
                        try:
                            it = s.get_current_item(ctx)
                        except sop.NoCurrentItemError:
                            continue
                        assert it.value == "v" + str(int(it.key[1:]))
                    s.next(ctx)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(b,)) for b in (0, 77, 150)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        assert not errors


def test_found_item_copy_not_used_for_big_values_or_writes(db, ctx):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "w", t)
        s.add(ctx, "a", "1")
        assert s.find(ctx, "a")
        assert s.update(ctx, "a", "2")
        assert s.get_current_item(ctx).value == "2"
        big = "x" * 40000
        s.add(ctx, "b", big)
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading.value) as t:
        s = db.open_btree(ctx, "w", t)
        assert s.find(ctx, "b") and s.get_current_item(ctx).value == big
        assert s.find(ctx, "a") and s.get_current_item(ctx).value == "2"
