"""Serializability of writing transactions through the Python API:
Btree.count() is a read that commit re-checks (no phantom through a count),
and a transaction reading what it wrote itself (a replace: remove k, add k)
is not failed by unrelated concurrent inserts into the same store."""

import threading

import pytest

import sop
from sop import TransactionMode


def _store(db, ctx, name="s", keys=()):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, name, t)
        for k in keys:
            assert s.add(ctx, k, "base")


def test_count_phantom_two_transactions(db, ctx):
    """Both see an empty store and insert a different key: one commits, the
    other gets ConflictError and writes nothing."""
    _store(db, ctx)
    t1 = db.begin_transaction(ctx)
    t2 = db.begin_transaction(ctx)
    s1 = db.open_btree(ctx, "s", t1)
    s2 = db.open_btree(ctx, "s", t2)
    assert s1.count() == 0 and s2.count() == 0
    assert s1.add(ctx, "a", 1)
    assert s2.add(ctx, "b", 2)
    t1.commit(ctx)
    with pytest.raises(sop.ConflictError):
        t2.commit(ctx)
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "s", t)
        assert s.count() == 1 and s.find(ctx, "a") and not s.find(ctx, "b")


def test_without_count_disjoint_inserts_both_commit(db, ctx):
    _store(db, ctx)
    t1 = db.begin_transaction(ctx)
    t2 = db.begin_transaction(ctx)
    assert db.open_btree(ctx, "s", t1).add(ctx, "a", 1)
    assert db.open_btree(ctx, "s", t2).add(ctx, "b", 2)
    t1.commit(ctx)
    t2.commit(ctx)
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        assert db.open_btree(ctx, "s", t).count() == 2


@pytest.mark.concurrency
def test_count_limit_across_threads(db, ctx):
    """Threads each add one item only while count() < LIMIT, retrying on
    ConflictError: never more than LIMIT items (two threads that both saw
    LIMIT - 1 cannot both commit)."""
    LIMIT = 5
    _store(db, ctx)
    errors = []
    added = []

    def work(me):
        c = sop.Context()
        try:
            for n in range(10):
                for _ in range(200):
                    t = db.begin_transaction(c)
                    s = db.open_btree(c, "s", t)
                    if s.count() >= LIMIT:
                        t.rollback(c)
                        break
                    s.add(c, f"{me}-{n}", n)
                    try:
                        t.commit(c)
                        added.append(me)
                        break
                    except sop.ConflictError:
                        continue
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        assert db.open_btree(ctx, "s", t).count() == LIMIT == len(added)


def test_replace_next_to_an_unrelated_insert(db, ctx):
    """remove k then add k (the transaction reads its own remove) while
    another transaction inserts a different key into the same leaf."""
    _store(db, ctx, keys=range(0, 20, 2))
    t = db.begin_transaction(ctx)
    s = db.open_btree(ctx, "s", t)
    assert s.remove(ctx, 4)
    assert s.add(ctx, 4, "new")
    assert s.find(ctx, 4) and s.get_current_value(ctx).value == "new"
    with db.begin_transaction(ctx) as t2:
        assert db.open_btree(ctx, "s", t2).add(ctx, 5, "other")
    t.commit(ctx)
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "s", t)
        assert s.count() == 11
        assert s.find(ctx, 4) and s.get_current_value(ctx).value == "new"
        assert s.find(ctx, 5) and s.get_current_value(ctx).value == "other"


@pytest.mark.concurrency
def test_replaces_under_concurrent_inserts(db, ctx):
    """Replace-heavy threads next to two unrelated inserter threads: every
    replace finishes, hardly any is retried, none gives up."""
    KEYS, REPLACES, MAX_RETRIES = 50, 60, 50
    _store(db, ctx, keys=[k * 1000 + r for r in range(2) for k in range(KEYS)])
    done = threading.Event()
    errors, retries, gave_up, inserted = [], [0, 0], [0, 0], [0, 0]
    last = [dict(), dict()]

    def replacer(me):
        c = sop.Context()
        try:
            for n in range(REPLACES):
                k = (n * 7 + me) % KEYS * 1000 + me
                for attempt in range(MAX_RETRIES + 1):
                    t = db.begin_transaction(c)
                    s = db.open_btree(c, "s", t)
                    assert s.remove(c, k)
                    assert s.add(c, k, f"{me}:{n}")
                    try:
                        t.commit(c)
                        last[me][k] = f"{me}:{n}"
                        break
                    except sop.ConflictError:
                        retries[me] += 1
                else:
                    gave_up[me] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def inserter(me):
        c = sop.Context()
        m = 0
        try:
            while m < 20 or not done.is_set():
                k = (m % KEYS) * 1000 + 10 + me + 2 * (m // KEYS)
                with db.begin_transaction(c) as t:
                    assert db.open_btree(c, "s", t).add(c, k, "ins")
                inserted[me] += 1
                m += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ins = [threading.Thread(target=inserter, args=(i,)) for i in range(2)]
    reps = [threading.Thread(target=replacer, args=(i,)) for i in range(2)]
    for th in ins + reps:
        th.start()
    for th in reps:
        th.join()
    done.set()
    for th in ins:
        th.join()
    assert not errors, errors
    assert sum(gave_up) == 0
    assert sum(retries) * 10 < 2 * REPLACES, retries
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "s", t)
        assert s.count() == 2 * KEYS + sum(inserted)
        for me in range(2):
            for k, v in last[me].items():
                assert s.find(ctx, k) and s.get_current_value(ctx).value == v
