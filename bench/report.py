#!/usr/bin/env python3
"""Turn the JSON lines of bench_c / bench_py into markdown tables of medians.

    python3 bench/report.py bench/results/<stamp>/*.jsonl

Every figure is the median over runs.  Ratios are sop / baseline of the
medians, from the same suite run (same machine, same session).
"""
import json
import statistics
import sys
from collections import defaultdict

MiB = 1 << 20


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def med(xs):
    return statistics.median(xs) if xs else None


def fmt_ops(x):
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e4:
        return f"{x / 1e3:.0f} k"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"**{r:.2f}x**" if r < 0.5 else f"{r:.2f}x"


def fmt_mib(x):
    return "–" if x is None else f"{x / MiB:.1f}"


def cfg_key(r):
    return (r.get("workload"), r.get("n"), r.get("order"), r.get("threads", 1),
            r.get("per_txn", 1), r.get("sync", 1), r.get("cache_mib", 0))


def agg(rows):
    """(cfg, engine, slot, phase) -> dict of medians."""
    g = defaultdict(lambda: defaultdict(list))
    rss = defaultdict(list)
    for r in rows:
        k = (cfg_key(r), r["engine"], r.get("slot", 0), r["phase"])
        g[k]["ops_s"].append(r["ops_s"])
        g[k]["disk"].append(r["disk_bytes"])
        for f in ("commits_s", "items_s", "conflicts"):
            if f in r:
                g[k][f].append(r[f])
        rss[(cfg_key(r), r["engine"], r.get("slot", 0), r.get("run"))] = r["rss_kb"]
    out = {}
    for k, d in g.items():
        out[k] = {f: med(v) for f, v in d.items()}
    peak = defaultdict(list)
    for (c, e, s, _run), v in rss.items():
        peak[(c, e, s)].append(v)
    return out, {k: med(v) * 1024 for k, v in peak.items()}


def speed_table(title, cmd, rows, phases, metric="ops_s", unit="ops/s", extra_cols=None,
                baselines=("lmdb", "sqlite"), names=None):
    names = names or {"lmdb": "LMDB", "sqlite": "SQLite"}
    a, _ = agg(rows)
    cfgs = sorted({(k[0], k[2]) for k in a if k[1] == "sop"},
                  key=lambda x: (x[0][1], x[0][2], x[0][3], x[0][4], x[1]))
    out = [f"### {title}", "", f"`{cmd}`", ""]
    hdr = ["N", "order"]
    if extra_cols:
        hdr += [c for c, _ in extra_cols]
    hdr += ["phase", f"sop {unit}"] + [f"{names[b]} {unit}" for b in baselines] + \
        [f"sop / {names[b]}" for b in baselines]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" * len(hdr))
    for c, slot in cfgs:
        for ph in phases:
            s = a.get((c, "sop", slot, ph))
            if not s:
                continue
            bl = [a.get((c, b, 0, ph)) for b in baselines]
            sv = s.get(metric)
            bv = [x.get(metric) if x else None for x in bl]
            row = [f"{c[1]:,}", c[2]]
            if extra_cols:
                row += [fn(c, slot, s) for _, fn in extra_cols]
            row += [ph, fmt_ops(sv)] + [fmt_ops(x) for x in bv] + [fmt_ratio(sv, x) for x in bv]
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    return out


def resource_table(title, cmd, rows, phases, engines=("sop", "lmdb", "sqlite")):
    a, peak = agg(rows)
    cfgs = sorted({(k[0], k[1], k[2]) for k in a if k[1] in engines},
                  key=lambda x: (x[0][1], x[0][2], x[0][3], x[0][4], engines.index(x[1]), x[2]))
    out = [f"### {title}", "", f"`{cmd}`", ""]
    hdr = ["N", "order", "engine", "peak RSS MiB"] + [f"disk after {p} MiB" for p in phases]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" * len(hdr))
    for c, e, slot in cfgs:
        name = e + (f" (slot {slot}, cache {c[6]} MiB)" if e == "sop" and slot else "")
        row = [f"{c[1]:,}", c[2], name, fmt_mib(peak.get((c, e, slot)))]
        for p in phases:
            d = a.get((c, e, slot, p))
            row.append(fmt_mib(d["disk"]) if d else "–")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    return out


def main():
    rows = load(sys.argv[1:])
    by = defaultdict(list)
    for r in rows:
        by[r["workload"]].append(r)
    cmds = {}
    for r in rows:
        if "cmd" in r:
            cmds[r["workload"]] = r["cmd"]
    out = []
    slotcol = [("slot", lambda c, s, _d: str(s)), ("cache MiB", lambda c, s, _d: str(c[6]))]
    if by["bulk"]:
        out += speed_table("Workload 1: insert / read / delete N items, one transaction each (C API)",
                           "bash scripts/bench.sh --only bulk   # --full adds 1,000,000", by["bulk"],
                           ["insert", "read", "delete", "reinsert"], extra_cols=slotcol)
        out += resource_table("Workload 1: peak RSS and bytes on disk",
                              "same run", by["bulk"], ["insert", "delete", "reinsert", "closed"])
    if by["durable"]:
        cols = [("items/txn", lambda c, s, d: str(c[4])), ("threads", lambda c, s, d: str(c[3])),
                ("sop conflicts", lambda c, s, d: f"{d.get('conflicts', 0):.0f}")]
        out += speed_table("Workload 2: durable small transactions (commits/s, all threads)",
                           "bash scripts/bench.sh --only durable   # --full: every size, 3 s each", by["durable"],
                           sorted({r["phase"] for r in by["durable"] if r["phase"].startswith("commit")}),
                           metric="commits_s", unit="commits/s", extra_cols=cols)
    if by["reads"]:
        out += speed_table("Workload 3: point reads, 100-item range scans (scans/s), 90/10 mixed with 2 threads (ops/s)",
                           "bash scripts/bench.sh --only reads", by["reads"],
                           ["load", "point_read", "scan100", "mixed90_10_t2"])
        out += resource_table("Workload 3: peak RSS and bytes on disk", "same run",
                              by["reads"], ["load", "closed"])
    if by["big"]:
        out += speed_table("Workload 4: data set > 4x the configured cache",
                           "bash scripts/bench.sh --only big", by["big"], ["load", "point_read", "scan100"],
                           extra_cols=[("cache MiB", lambda c, s, d: str(c[6]))])
        out += resource_table("Workload 4: peak RSS and bytes on disk", "same run",
                              by["big"], ["load", "closed"])
    if by["py_bulk"]:
        out += speed_table("Workload 5: Python, item by item (sop package vs sqlite3 vs lmdb)",
                           "bash scripts/bench.sh --only python   # --full adds 1,000,000", by["py_bulk"], ["insert", "read", "delete"],
                           baselines=("sqlite", "lmdb"),
                           names={"sqlite": "sqlite3", "lmdb": "lmdb pkg"})
        out += resource_table("Workload 5: peak RSS (whole Python process) and bytes on disk",
                              "same run", by["py_bulk"], ["insert", "delete"],
                              engines=("sop", "sqlite", "lmdb"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
