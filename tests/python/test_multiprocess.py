"""Several processes on one Standalone database folder, no Redis: the
cookbook's swarm section with its option A, changed only to use
multiprocessing instead of threads, ends with every item present.
SOP_SOAK=1: ten times the items per process, and test_swarm_rounds (ten
rounds of five processes on one folder, reopened each round)."""

import multiprocessing
import random
import time

import pytest

from conftest import soak_scale
from sop import Context, Database, DatabaseOptions, DatabaseType, Item


def worker(folder, thread_id, items_per_thread):
    # The cookbook's worker, in a process of its own.
    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=[folder], type=DatabaseType.Standalone))
    retry_count = 0
    committed = False
    while not committed and retry_count < 10:
        try:
            with db.begin_transaction(ctx) as t:
                btree = db.open_btree(ctx, "concurrent_tree", t)
                for j in range(items_per_thread):
                    key = (thread_id * items_per_thread) + j
                    btree.add(ctx, Item(key=key, value=f"Thread {thread_id} - Item {j}"))
            committed = True
        except Exception:
            retry_count += 1
            time.sleep(random.random() * 0.5)
    if not committed:
        raise SystemExit(1)


@pytest.mark.concurrency
def test_swarm_with_processes(tmp_path):
    folder = str(tmp_path / "sop_swarm")
    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=[folder], type=DatabaseType.Standalone))
    with db.begin_transaction(ctx) as t:
        btree = db.new_btree(ctx, "concurrent_tree", t)
        btree.add(ctx, Item(key=-1, value="Root Seed"))
    mp = multiprocessing.get_context("spawn")
    per_proc = soak_scale(100)
    procs = [mp.Process(target=worker, args=(folder, i, per_proc)) for i in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with db.begin_transaction(ctx) as t:
        btree = db.open_btree(ctx, "concurrent_tree", t)
        assert btree.count() == 5 * per_proc + 1
        for key in range(-1, 5 * per_proc):
            assert btree.find(ctx, key)


@pytest.mark.soak
@pytest.mark.concurrency
def test_swarm_rounds(tmp_path):
    folder = str(tmp_path / "sop_swarm")
    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=[folder], type=DatabaseType.Standalone))
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "concurrent_tree", t)
    db.close()
    mp = multiprocessing.get_context("spawn")
    per_proc, rounds = 200, 10
    for r in range(rounds):
        base = r * 5  # worker ids of this round: keys base*per_proc ...
        procs = [mp.Process(target=worker, args=(folder, base + i, per_proc)) for i in range(5)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
            assert p.exitcode == 0
        with db.begin_transaction(ctx) as t:
            assert db.open_btree(ctx, "concurrent_tree", t).count() == (r + 1) * 5 * per_proc
        db.close()
    with db.begin_transaction(ctx) as t:
        btree = db.open_btree(ctx, "concurrent_tree", t)
        for key in range(rounds * 5 * per_proc):
            assert btree.find(ctx, key)
