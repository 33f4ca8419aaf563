"""Model-based random test: random operations on sop stores checked, one by
one, against a plain Python dict (unique stores) or a dict of lists
(non-unique stores).  Covers add, add_if_not_exists, update, upsert, remove,
find, cursor steps, paged scans both ways, commits, rollbacks and reopening
the database, over slot lengths from 4 to 1000.

SOP_MODEL_OPS sets the total number of operations (default 200,000; the
ASan run uses fewer through SOP_SANITIZER; SOP_SOAK=1 runs ten times as
many)."""

import os
import random

import pytest

import sop
from conftest import soak_scale
from sop import Item, PagingInfo


def total_ops() -> int:
    if "SOP_MODEL_OPS" in os.environ:
        return int(os.environ["SOP_MODEL_OPS"])
    return soak_scale(40_000 if os.environ.get("SOP_SANITIZER") else 200_000)


CONFIGS = [  # (slot_length, is_unique, key kind)
    (4, True, "int"),
    (5, False, "int"),
    (8, True, "str"),
    (16, False, "str"),
    (100, True, "int"),
    (1000, True, "str"),
    (64, True, "float"),
]


class Model:
    """Expected content: key -> list of values (oldest first)."""

    def __init__(self, unique: bool):
        self.unique = unique
        self.committed = {}
        self.work = {}

    def sorted_items(self):
        out = []
        for k in sorted(self.work):
            for v in self.work[k]:
                out.append((k, v))
        return out

    def count(self):
        return sum(len(v) for v in self.work.values())


def make_key(kind: str, n: int):
    if kind == "int":
        return n * 7 - 3000
    if kind == "float":
        return n / 4.0 - 100.5
    return f"k{n:05d}-{'x' * (n % 7)}"


def run_config(tmp_path, slot_length, unique, kind, n_ops, seed):
    rng = random.Random(seed)
    folder = str(tmp_path / f"db_{slot_length}_{unique}_{kind}")
    ctx = sop.Context()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[folder]))
    opts = sop.BtreeOptions("m", is_unique=unique, slot_length=slot_length)
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "m", t, options=opts)
    model = Model(unique)
    key_space = max(50, min(3000, n_ops // 10))
    t = db.begin_transaction(ctx)
    store = db.open_btree(ctx, "m", t)
    serial = 0

    def fresh_value():
        nonlocal serial
        serial += 1
        return {"v": serial, "s": "y" * (serial % 13)}

    for step in range(n_ops):
        r = rng.random()
        k = make_key(kind, rng.randrange(key_space))
        if r < 0.30:  # add
            v = fresh_value()
            ok = store.add(ctx, Item(key=k, value=v))
            if unique and k in model.work:
                assert ok is False, (step, k)
            else:
                assert ok is True, (step, k)
                model.work.setdefault(k, []).append(v)
        elif r < 0.36:  # add_if_not_exists
            v = fresh_value()
            ok = store.add_if_not_exists(ctx, Item(key=k, value=v))
            assert ok is (k not in model.work), (step, k)
            if ok:
                model.work[k] = [v]
        elif r < 0.46:  # update (the first duplicate)
            v = fresh_value()
            ok = store.update(ctx, Item(key=k, value=v))
            assert ok is (k in model.work), (step, k)
            if ok:
                model.work[k][0] = v
        elif r < 0.50:  # upsert
            v = fresh_value()
            assert store.upsert(ctx, Item(key=k, value=v)) is True
            if k in model.work:
                model.work[k][0] = v
            else:
                model.work[k] = [v]
        elif r < 0.64:  # remove (the first duplicate)
            ok = store.remove(ctx, k)
            assert ok is (k in model.work), (step, k)
            if ok:
                model.work[k].pop(0)
                if not model.work[k]:
                    del model.work[k]
        elif r < 0.80:  # find + read
            found = store.find(ctx, k)
            assert found is (k in model.work), (step, k)
            if found:
                it = store.get_current_value(ctx)
                assert it.key == k and it.value == model.work[k][0], (step, k)
        elif r < 0.86:  # cursor steps from a found key
            items = model.sorted_items()
            if items:
                i = rng.randrange(len(items))
                assert store.find(ctx, items[i][0])
                i = next(j for j, (kk, _) in enumerate(items) if kk == items[i][0])
                backward = rng.random() < 0.5
                for _ in range(rng.randrange(1, 30)):
                    moved = store.previous(ctx) if backward else store.next(ctx)
                    i += -1 if backward else 1
                    if i < 0 or i >= len(items):
                        assert moved is False
                        break
                    assert moved is True
                    cur = store.get_current_value(ctx)
                    assert (cur.key, cur.value) == items[i], (step, i)
        elif r < 0.92:  # paged scan, forward or backward, from an end
            items = model.sorted_items()
            backward = rng.random() < 0.5
            size = rng.choice([1, 3, 10, 50, 1000])
            start = store.last(ctx) if backward else store.first(ctx)
            assert start is bool(items)
            got = []
            if items:
                while True:
                    page = store.get_items(ctx, PagingInfo(page_size=size,
                                                           direction=1 if backward else 0))
                    got.extend((p.key, p.value) for p in page)
                    if len(page) < size:
                        break
            want = list(reversed(items)) if backward else items
            assert got == want, (step, size, backward)
        elif r < 0.93:  # count
            assert store.count() == model.count(), step
        elif r < 0.975:  # commit
            t.commit(ctx)
            model.committed = {k2: list(v2) for k2, v2 in model.work.items()}
            t = db.begin_transaction(ctx)
            store = db.open_btree(ctx, "m", t)
        elif r < 0.995:  # rollback
            t.rollback(ctx)
            model.work = {k2: list(v2) for k2, v2 in model.committed.items()}
            t = db.begin_transaction(ctx)
            store = db.open_btree(ctx, "m", t)
        else:  # reopen the database: recovery from the log
            t.rollback(ctx)
            model.work = {k2: list(v2) for k2, v2 in model.committed.items()}
            db.close()
            db = sop.Database(sop.DatabaseOptions(stores_folders=[folder]))
            t = db.begin_transaction(ctx)
            store = db.open_btree(ctx, "m", t)
            assert store.count() == model.count()
    t.commit(ctx)
    model.committed = model.work
    # final full comparison, after a reopen
    db.close()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[folder]))
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading) as t:
        store = db.open_btree(ctx, "m", t)
        items = model.sorted_items()
        assert store.count() == len(items)
        got = []
        if store.first(ctx):
            got = [(p.key, p.value) for p in store.get_items(ctx, PagingInfo(page_size=len(items) + 1))]
        assert got == items
    db.close()


@pytest.mark.parametrize("slot_length,unique,kind", CONFIGS)
def test_model_random_operations(tmp_path, slot_length, unique, kind):
    n = total_ops() // len(CONFIGS)
    run_config(tmp_path, slot_length, unique, kind, n, seed=slot_length * 31 + unique)
