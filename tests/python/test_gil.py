"""The extension releases the GIL during engine work: while one thread is
inside a long engine call (a large commit), other Python threads keep
running."""

import threading
import time

import pytest

import sop
from sop import Item


@pytest.mark.concurrency
def test_other_threads_run_during_a_long_commit(db, ctx):
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "big", t)
    for i in range(100_000):
        s.add(ctx, Item(key=i, value="x" * 100))
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    th = threading.Thread(target=ticker)
    th.start()
    time.sleep(0.05)
    start = time.perf_counter()
    t.commit(ctx)  # encodes and writes ~100k items, then fsyncs: GIL released
    end = time.perf_counter()
    stop.set()
    th.join()
    during = [x for x in ticks if start < x < end]
    # with the GIL held for the whole commit the ticker could not run at all
    # (it only gets the interpreter at the switch interval otherwise)
    assert end - start > 0.01
    assert len(during) > 1000, (len(during), end - start)
