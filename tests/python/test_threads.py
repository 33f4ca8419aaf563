"""Threads of one process, each with its own transactions on the same
stores: every transaction either commits or raises the retryable
ConflictError and changes nothing; readers see consistent snapshots
throughout.  Marked `concurrency`: also run against the TSan build."""

import random
import threading
import time

import pytest

import sop
from sop import Item


@pytest.mark.concurrency
def test_writers_and_snapshot_readers(db, ctx):
    with db.begin_transaction(ctx) as t:
        acc = db.new_btree(ctx, "acc", t)
        for a in range(20):
            acc.add(ctx, Item(key=a, value=100))
    stop = threading.Event()
    errors = []
    committed = []

    def writer(wid):
        rng = random.Random(wid)
        for n in range(40):
            for _attempt in range(200):
                try:
                    with db.begin_transaction(ctx) as t:
                        acc = db.open_btree(ctx, "acc", t)
                        a, b = rng.sample(range(20), 2)
                        amount = rng.randrange(10)
                        acc.find(ctx, a)
                        va = acc.get_current_value(ctx).value
                        acc.find(ctx, b)
                        vb = acc.get_current_value(ctx).value
                        acc.update(ctx, a, va - amount)
                        acc.update(ctx, b, vb + amount)
                    committed.append((wid, n))
                    break
                except sop.ConflictError:
                    time.sleep(rng.random() * 0.002)
                except Exception as e:  # pragma: no cover - reported below
                    errors.append(repr(e))
                    return

    def reader():
        while not stop.is_set():
            with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading) as t:
                acc = db.open_btree(ctx, "acc", t)
                acc.first(ctx)
                total = sum(i.value for i in acc.get_items(ctx, sop.PagingInfo(page_size=100)))
                if total != 2000:
                    errors.append(f"snapshot total {total}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads + readers:
        th.start()
    for th in threads:
        th.join()
    stop.set()
    for th in readers:
        th.join()
    assert errors == []
    assert len(committed) == 120
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading) as t:
        acc = db.open_btree(ctx, "acc", t)
        acc.first(ctx)
        items = acc.get_items(ctx, sop.PagingInfo(page_size=100))
        assert sum(i.value for i in items) == 2000
        assert acc.count() == 20
