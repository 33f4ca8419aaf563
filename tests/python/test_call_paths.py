"""The extension's per-call shortcuts behave like the general paths: keyword
and positional arguments, the Context check (a plain Context is checked
without calling error(); a changed class or a subclass still goes through
error()), and Items built without calling Item.__init__."""

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
    assert list(vars(it)) == ["key", "value", "id"]
    assert len(it.id) == 36 and it.id != btree.NIL_UUID
    store.first(ctx)
    store.previous(ctx)
    nil = store.get_current_item(ctx)
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
    finally:
        btree.Item.__init__ = orig
