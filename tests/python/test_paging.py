"""get_keys / get_items paging rules (python-api.md 8.4 as fixed by
sop_cursor_fetch in sop.h: no wrap-around, no errors at the end)."""

import pytest

import sop
from sop import Item, PagingDirection, PagingInfo


@pytest.fixture
def store(db, ctx):
    """A store with keys 0..49 (values k*2), in an open transaction."""
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "p", t)
    s.add(ctx, [Item(k, k * 2) for k in range(50)])
    yield s
    t.rollback(ctx)


def keys(items):
    return [i.key for i in items]


def test_after_first(store, ctx):
    assert store.first(ctx)
    items = store.get_items(ctx, PagingInfo(page_size=5))
    assert keys(items) == [0, 1, 2, 3, 4]
    assert [i.value for i in items] == [0, 2, 4, 6, 8]


def test_sequential_pages_then_end_no_wraparound(store, ctx):
    store.first(ctx)
    seen = []
    while True:
        page = store.get_keys(ctx, PagingInfo(page_size=20))
        seen += keys(page)
        if len(page) < 20:
            break
    assert seen == list(range(50))
    # past the end: no wrap-around (the original restarted from the first item)
    assert store.get_current_key(ctx).key is None
    assert store.get_keys(ctx, PagingInfo(page_size=3)) == []
    assert store.get_keys(ctx, PagingInfo(page_size=3)) == []
    # repositioning starts again
    assert store.first(ctx)
    assert keys(store.get_keys(ctx, PagingInfo(page_size=3))) == [0, 1, 2]


def test_exactly_full_last_page(store, ctx):
    store.first(ctx)
    assert len(store.get_keys(ctx, PagingInfo(page_size=25))) == 25
    assert keys(store.get_keys(ctx, PagingInfo(page_size=25))) == list(range(25, 50))
    assert store.get_current_key(ctx).key is None


def test_unpositioned_offset_zero_auto_first(store, ctx):
    assert keys(store.get_keys(ctx, PagingInfo(page_size=2))) == [0, 1]


def test_fresh_cursor_offset_positive_raises(store, ctx):
    # never positioned: an offset needs first/last/find first
    with pytest.raises(sop.NoCurrentItemError):
        store.get_keys(ctx, PagingInfo(page_offset=1, page_size=2))


def test_past_the_end_returns_nothing(store, ctx):
    store.last(ctx)
    assert store.next(ctx) is False  # off the end
    assert store.get_keys(ctx, PagingInfo(page_offset=1, page_size=2)) == []
    assert store.get_keys(ctx, PagingInfo(page_size=2)) == []


def test_skip_and_fetch_count(store, ctx):
    store.first(ctx)
    # skip 2*10 items, then return 3
    assert keys(store.get_keys(ctx, PagingInfo(2, 10, 3))) == [20, 21, 22]
    # the cursor continues after the last returned
    assert keys(store.get_keys(ctx, PagingInfo(0, 0, 2))) == [23, 24]


def test_skip_past_end_returns_empty(store, ctx):
    store.first(ctx)
    assert store.get_keys(ctx, PagingInfo(page_offset=10, page_size=10)) == []
    assert store.get_current_key(ctx).key is None


def test_after_find(store, ctx):
    assert store.find(ctx, 47)
    assert keys(store.get_items(ctx, PagingInfo(page_size=10))) == [47, 48, 49]


def test_backward(store, ctx):
    store.last(ctx)
    assert keys(store.get_keys(ctx, PagingInfo(page_size=3, direction=1))) == [49, 48, 47]
    assert keys(store.get_keys(ctx, PagingInfo(
        page_size=3, direction=PagingDirection.Backward))) == [46, 45, 44]
    store.find(ctx, 1)
    assert keys(store.get_keys(ctx, PagingInfo(page_size=5, direction=1))) == [1, 0]


def test_unpositioned_backward_starts_at_last(store, ctx):
    assert keys(store.get_keys(ctx, PagingInfo(page_size=2, direction=1))) == [49, 48]


def test_direction_clamped_without_mutation(store, ctx):
    pi = PagingInfo(page_size=2, direction=7)
    store.last(ctx)
    assert keys(store.get_keys(ctx, pi)) == [49, 48]
    assert pi.direction == 7
    pi = PagingInfo(page_size=2, direction=-3)
    store.first(ctx)
    assert keys(store.get_keys(ctx, pi)) == [0, 1]
    assert pi.direction == -3


@pytest.mark.parametrize("pi", [PagingInfo(0, 0, 0), PagingInfo(0, -1, 0),
                                PagingInfo(-1, 10, 0)], ids=repr)
def test_invalid_paging(store, ctx, pi):
    store.first(ctx)
    with pytest.raises(sop.InvalidArgumentError):
        store.get_keys(ctx, pi)
    # the cursor did not move and the store is intact
    assert store.get_current_key(ctx).key == 0
    assert store.count() == 50


def test_empty_store(db, ctx):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "empty", t)
        assert s.get_keys(ctx, PagingInfo()) == []
        assert s.get_items(ctx, PagingInfo(page_size=5, direction=1)) == []


def test_paging_keyword_name(store, ctx):
    store.first(ctx)
    assert keys(store.get_keys(ctx, pagingInfo=PagingInfo(page_size=1))) == [0]
    assert keys(store.get_items(ctx, paging_info=PagingInfo(page_size=1))) == [1]


def test_full_page_loop_terminates(store, ctx):
    """The common "until a short page" loop ends even when the item count is
    a multiple of the page size (the original wrapped around forever)."""
    for size in (1, 5, 10, 25, 50):
        for direction in (0, 1):
            (store.first if direction == 0 else store.last)(ctx)
            got = []
            for _ in range(100):
                page = store.get_items(ctx, PagingInfo(page_size=size, direction=direction))
                got += keys(page)
                if len(page) < size:
                    break
            assert got == (list(range(50)) if direction == 0 else list(range(49, -1, -1)))


def test_past_the_end_both_directions(store, ctx):
    store.first(ctx)
    assert len(store.get_keys(ctx, PagingInfo(page_size=100))) == 50
    # sop.h: past an end, nothing in either direction until repositioned
    assert store.get_keys(ctx, PagingInfo(page_size=2, direction=1)) == []
    assert store.last(ctx)
    assert keys(store.get_keys(ctx, PagingInfo(page_size=2, direction=1))) == [49, 48]


def test_before_start(store, ctx):
    store.first(ctx)
    assert store.previous(ctx) is False
    assert store.get_keys(ctx, PagingInfo(page_size=3, direction=1)) == []
    assert store.get_keys(ctx, PagingInfo(page_size=3)) == []
    assert store.first(ctx)
    assert keys(store.get_keys(ctx, PagingInfo(page_size=3))) == [0, 1, 2]


def test_find_miss_positions_on_next_greater(store, ctx):
    assert store.find(ctx, 10.5) is False
    assert keys(store.get_keys(ctx, PagingInfo(page_size=2))) == [11, 12]


def test_empty_fetch_then_add(db, ctx):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "e", t)
        assert s.get_keys(ctx, PagingInfo()) == []
        s.add(ctx, 1, 1)
        assert keys(s.get_keys(ctx, PagingInfo())) == [1]
