#!/usr/bin/env python3
"""Workload 1 from Python, item by item as the cookbook does, for the sop
package against Python's sqlite3 and the lmdb package.

    python3 bench/bench_py.py [--sizes 10000,100000] [--full] [--runs 3]
                              [--order rand,seq] [--engines sop,sqlite,lmdb]
                              [--out results.jsonl]

For each size, order, run and engine, a fresh child process (this script with
--child) in a fresh temporary folder:
  insert  N items in one transaction, one call per item
          sop:    store.add(ctx, btree.Item(key=k, value=v))
          sqlite: cur.execute("INSERT INTO kv VALUES(?,?)", (k, v))
          lmdb:   txn.put(k, v, overwrite=False)
  read    all N in one read transaction, in insertion order
          sop:    store.find(ctx, k); store.get_current_item(ctx).value
          sqlite: cur.execute("SELECT v FROM kv WHERE k=?", (k,)).fetchone()
          lmdb:   txn.get(k)
  delete  all N in one transaction
          sop:    store.remove(ctx, k)
          sqlite: cur.execute("DELETE FROM kv WHERE k=?", (k,))
          lmdb:   txn.delete(k)
Keys are 16-character strings (seq: zero-padded decimal i; rand: 16 hex
digits of a hash of i), values 100-character strings.  sop and sqlite3 take
them as str; lmdb needs bytes, so its keys and values are encoded before the
timer starts (this favours lmdb).
Durability: sop default (fsync per commit); sqlite3 journal_mode=WAL,
synchronous=FULL, cache_size=256 MiB (sop's default cache), table
kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID; lmdb sync=True (default).
Each phase is one commit, so durability costs one fsync per phase.
Output: JSON lines (one per phase) with ops/s, peak RSS of the child (kB) and
bytes on disk after the phase.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

M64 = (1 << 64) - 1


def splitmix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def make_data(n, order):
    if order == "seq":
        keys = [f"{i:016d}" for i in range(n)]
    else:
        keys = [f"{splitmix(i):016x}" for i in range(n)]
    vals = [(f"{i:08d}" + "v" * 92) for i in range(n)]
    return keys, vals


def du(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


# ---------------------------------------------------------------- engines
def run_sop(d, keys, vals, emit):
    import sop
    from sop import btree
    ctx = sop.Context()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[d]))
    Item = btree.Item

    t0 = time.perf_counter()
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "bench", t)
        for k, v in zip(keys, vals):
            s.add(ctx, Item(key=k, value=v))
    emit("insert", time.perf_counter() - t0)

    t0 = time.perf_counter()
    n = 0
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading.value) as t:
        s = db.open_btree(ctx, "bench", t)
        for k in keys:
            if s.find(ctx, k):
                n += len(s.get_current_item(ctx).value)
    emit("read", time.perf_counter() - t0)
    assert n == 100 * len(keys), n

    t0 = time.perf_counter()
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "bench", t)
        for k in keys:
            if not s.remove(ctx, k):
                raise RuntimeError("remove failed")
    emit("delete", time.perf_counter() - t0)
    db.close()


def run_sqlite(d, keys, vals, emit):
    import sqlite3
    path = os.path.join(d, "bench.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA cache_size=-262144")
    con.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
    cur = con.cursor()

    def ckpt():
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    t0 = time.perf_counter()
    cur.execute("BEGIN")
    for k, v in zip(keys, vals):
        cur.execute("INSERT INTO kv(k, v) VALUES(?, ?)", (k, v))
    cur.execute("COMMIT")
    emit("insert", time.perf_counter() - t0, before_du=ckpt)

    t0 = time.perf_counter()
    n = 0
    cur.execute("BEGIN")
    for k in keys:
        row = cur.execute("SELECT v FROM kv WHERE k=?", (k,)).fetchone()
        if row:
            n += len(row[0])
    cur.execute("COMMIT")
    emit("read", time.perf_counter() - t0)
    assert n == 100 * len(keys), n

    t0 = time.perf_counter()
    cur.execute("BEGIN")
    for k in keys:
        cur.execute("DELETE FROM kv WHERE k=?", (k,))
    cur.execute("COMMIT")
    emit("delete", time.perf_counter() - t0, before_du=ckpt)
    con.close()


def run_lmdb(d, keys, vals, emit):
    import lmdb
    env = lmdb.open(d, map_size=64 << 30, sync=True)
    bkeys = [k.encode() for k in keys]
    bvals = [v.encode() for v in vals]

    t0 = time.perf_counter()
    with env.begin(write=True) as txn:
        for k, v in zip(bkeys, bvals):
            if not txn.put(k, v, overwrite=False):
                raise RuntimeError("put failed")
    emit("insert", time.perf_counter() - t0)

    t0 = time.perf_counter()
    n = 0
    with env.begin() as txn:
        for k in bkeys:
            v = txn.get(k)
            if v is not None:
                n += len(v)
    emit("read", time.perf_counter() - t0)
    assert n == 100 * len(keys), n

    t0 = time.perf_counter()
    with env.begin(write=True) as txn:
        for k in bkeys:
            if not txn.delete(k):
                raise RuntimeError("delete failed")
    emit("delete", time.perf_counter() - t0)
    env.close()


ENGINES = {"sop": run_sop, "sqlite": run_sqlite, "lmdb": run_lmdb}


def child(a):
    d = tempfile.mkdtemp(prefix=f"benchpy-{a.child}-", dir=a.tmp)
    keys, vals = make_data(a.n, a.order)
    n = a.n

    def emit(phase, secs, before_du=None):
        if before_du:
            before_du()
        rec = {"engine": a.child, "workload": "py_bulk", "n": n, "order": a.order,
               "phase": phase, "ops": n, "secs": secs, "ops_s": n / secs,
               "disk_bytes": du(d),
               "hwm_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        print(json.dumps(rec), flush=True)

    try:
        ENGINES[a.child](d, keys, vals, emit)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--full", action="store_true", help="add 1,000,000 items")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--order", default="rand,seq")
    ap.add_argument("--engines", default="sop,sqlite,lmdb")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--out", default=None, help="append JSON lines here too")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        a.order = a.order.split(",")[0]
        child(a)
        return
    sizes = [int(s) for s in a.sizes.split(",") if s]
    if a.full and 1000000 not in sizes:
        sizes.append(1000000)
    out = open(a.out, "a") if a.out else None
    for n in sizes:
        for order in a.order.split(","):
            for run in range(1, a.runs + 1):
                for eng in a.engines.split(","):
                    p = subprocess.Popen([sys.executable, __file__, "--child", eng, "--n", str(n),
                                          "--order", order, "--tmp", a.tmp],
                                         stdout=subprocess.PIPE, text=True)
                    data = p.stdout.read()
                    _, status, ru = os.wait4(p.pid, 0)
                    if status != 0:
                        sys.exit(f"bench_py: {eng} n={n} {order} run {run} failed ({status})")
                    for line in data.splitlines():
                        rec = json.loads(line)
                        rec["run"] = run
                        rec["rss_kb"] = ru.ru_maxrss
                        s = json.dumps(rec)
                        print(s, flush=True)
                        if out:
                            out.write(s + "\n")
                            out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
