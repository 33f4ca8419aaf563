"""Transactions: commit/rollback, the context manager, modes, ended
transactions, conflicts and threads sharing a transaction."""

import threading
import uuid

import pytest

import sop
from sop import Item, TransactionMode


def count_of(db, ctx, name):
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        return db.open_btree(ctx, name, t).count()


def test_commit_and_rollback(db, ctx):
    t = db.begin_transaction(ctx)
    assert isinstance(t.transaction_id, uuid.UUID) and t.begun
    s = db.new_btree(ctx, "s", t)
    s.add(ctx, 1, "a")
    t.commit(ctx)
    t.commit(ctx)  # no-op once completed
    t = db.begin_transaction(ctx)
    s = db.open_btree(ctx, "s", t)
    s.add(ctx, 2, "b")
    t.rollback(ctx)
    t.rollback(ctx)  # idempotent
    assert count_of(db, ctx, "s") == 1


def test_store_creation_rolled_back(db, ctx):
    t = db.begin_transaction(ctx)
    db.new_btree(ctx, "gone", t).add(ctx, 1, 1)
    t.rollback(ctx)
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.StoreNotFoundError):
            db.open_btree(ctx, "gone", t)


def test_with_commits_on_success(db, ctx):
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t).add(ctx, 1, 1)
    assert count_of(db, ctx, "s") == 1


def test_with_rolls_back_and_reraises(db, ctx):
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t).add(ctx, 1, 1)
    with pytest.raises(RuntimeError):
        with db.begin_transaction(ctx) as t:
            db.open_btree(ctx, "s", t).add(ctx, 2, 2)
            raise RuntimeError("boom")
    assert count_of(db, ctx, "s") == 1


def test_exception_after_manual_commit_propagates(db, ctx):
    # quirk 6 fixed: __exit__ never swallows exceptions
    with pytest.raises(KeyError):
        with db.begin_transaction(ctx) as t:
            db.new_btree(ctx, "s", t).add(ctx, 1, 1)
            t.commit(ctx)
            raise KeyError("after commit")
    assert count_of(db, ctx, "s") == 1


def test_mode_int_and_enum(db, ctx):
    for m in (0, 1, 2, TransactionMode.NoCheck, TransactionMode.ForWriting,
              TransactionMode.ForReading):
        t = db.begin_transaction(ctx, m)
        assert t.mode == (m.value if isinstance(m, TransactionMode) else m)
        t.rollback(ctx)
    for bad in (3, -1, "1", None):
        with pytest.raises(sop.InvalidArgumentError):
            db.begin_transaction(ctx, bad)


def test_max_time(db, ctx):
    for mt in (0, -5, 1, 15, 1000, 0.5):
        db.begin_transaction(ctx, max_time=mt).rollback(ctx)


def test_write_in_read_only_transaction(db, ctx):
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t).add(ctx, 1, "a")
    for mode in (TransactionMode.ForReading, TransactionMode.NoCheck):
        t = db.begin_transaction(ctx, mode)
        s = db.open_btree(ctx, "s", t)
        with pytest.raises(sop.ReadOnlyTransactionError):
            s.add(ctx, 2, "b")
        with pytest.raises(sop.ReadOnlyTransactionError):
            s.remove(ctx, 1)
        with pytest.raises(sop.ReadOnlyTransactionError):
            db.new_btree(ctx, "new_store", t)
        t.rollback(ctx)
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "s", t)
        assert s.count() == 1 and s.find(ctx, 1)
        assert s.get_current_value(ctx).value == "a"


def test_finished_transaction(db, ctx):
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "s", t)
    s.add(ctx, 1, "a")
    t.commit(ctx)
    assert s.ended
    calls = [
        lambda: s.add(ctx, 2, "b"), lambda: s.find(ctx, 1), lambda: s.first(ctx),
        lambda: s.next(ctx), lambda: s.get_current_key(ctx), lambda: s.count(),
        lambda: s.get_keys(ctx, sop.PagingInfo()), lambda: s.get_values(ctx, Item(1)),
        lambda: s.remove(ctx, 1), lambda: s.update_current_value(ctx, 1),
        lambda: s.get_store_info(), lambda: s.is_unique(),
        lambda: db.open_btree(ctx, "s", t), lambda: db.new_btree(ctx, "x", t),
    ]
    for call in calls:
        with pytest.raises(sop.InvalidTransactionStateError):
            call()
    assert count_of(db, ctx, "s") == 1


def test_native_txn_commit_twice(db, ctx):
    t = db.begin_transaction(ctx)
    t._txn.commit()
    with pytest.raises(sop.InvalidTransactionStateError):
        t._txn.commit()
    t._txn.rollback()


def test_cancelled_context(db, ctx):
    c = sop.Context()
    t = db.begin_transaction(c)
    s = db.new_btree(c, "s", t)
    c.cancel()
    with pytest.raises(sop.CancelledError):
        s.add(c, 1, 1)
    with pytest.raises(sop.CancelledError):
        t.commit(c)
    with pytest.raises(sop.CancelledError):
        db.begin_transaction(c)
    t.rollback(ctx)


def test_conflict(db, ctx):
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t).add(ctx, "k", 0)
    t1 = db.begin_transaction(ctx)
    t2 = db.begin_transaction(ctx)
    s1 = db.open_btree(ctx, "s", t1)
    s2 = db.open_btree(ctx, "s", t2)
    assert s1.update(ctx, "k", 1) and s2.update(ctx, "k", 2)
    t1.commit(ctx)
    with pytest.raises(sop.ConflictError) as ei:
        t2.commit(ctx)
    assert isinstance(ei.value, sop.TransactionError)
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "s", t)
        assert s.find(ctx, "k") and s.get_current_value(ctx).value == 1


@pytest.mark.concurrency
def test_threads_sharing_one_transaction(db, ctx):
    """Misuse (a txn belongs to one thread at a time) must not crash: the
    binding serialises the calls."""
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "s", t)
    errors = []

    def work(base):
        try:
            for i in range(200):
                assert s.add(ctx, base + i, i)
                s.find(ctx, base + i)
                s.get_current_item(ctx)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert s.count() == 800
    t.commit(ctx)
    assert count_of(db, ctx, "s") == 800


@pytest.mark.concurrency
def test_commit_racing_with_store_calls(db, ctx):
    """A thread keeps using a store while another commits: every call either
    works or raises InvalidTransactionStateError."""
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "s", t)
    s.add(ctx, 0, 0)
    stop = threading.Event()
    bad = []

    def reader():
        i = 1
        while not stop.is_set():
            try:
                s.add(ctx, i, i)
                s.first(ctx)
                s.get_keys(ctx, sop.PagingInfo(page_size=5))
            except sop.InvalidTransactionStateError:
                return
            except Exception as e:  # pragma: no cover
                bad.append(e)
                return
            i += 1

    th = threading.Thread(target=reader)
    th.start()
    t.commit(ctx)
    stop.set()
    th.join()
    assert not bad


def test_transaction_direct_construction():
    with pytest.raises(sop.TransactionError):
        sop.Transaction(sop.Context())


def test_env_close_aborts_open_transactions(db, ctx):
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "s", t)
    s.add(ctx, 1, 1)
    db.close()
    with pytest.raises(sop.InvalidTransactionStateError):
        s.add(ctx, 2, 2)
    # the Database reopens on next use; nothing was committed
    with db.begin_transaction(ctx) as t2:
        with pytest.raises(sop.StoreNotFoundError):
            db.open_btree(ctx, "s", t2)
