#!/usr/bin/env bash
# scripts/bench.sh - build and run the benchmark suite: libsop against LMDB and
# SQLite (C APIs), and the sop Python package against sqlite3 and lmdb, in one
# run on one machine.  Raw results (JSON lines) go to bench/results/<stamp>/,
# the markdown tables (medians) to bench/results/<stamp>/tables.md and stdout.
#
#   bash scripts/bench.sh                 # quick: 10k and 100k items, ~10 min
#   bash scripts/bench.sh --full          # adds 1,000,000 items everywhere
#   bash scripts/bench.sh --only bulk     # one workload: bulk durable reads big python
#   bash scripts/bench.sh --runs 5        # runs per measurement (default 3)
#
# Needs: cmake, ninja, a C compiler, liblmdb-dev, libsqlite3-dev, python3 with
# the lmdb package (scripts/setup.sh installs the rest).  The sop package is
# built into a private folder (build/bench/py) so the installed one is untouched.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build/bench}
TMPD=${BENCH_TMP:-${TMPDIR:-/tmp}}
FULL=0
RUNS=3
ONLY="bulk durable reads big python mp"
while [ $# -gt 0 ]; do
    case $1 in
        --full) FULL=1 ;;
        --runs) RUNS=$2; shift ;;
        --only) ONLY=$2; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '==> %s\n' "$*" >&2; }

# ---- build
log "building libsop (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_TESTS=OFF \
      -DSOP_BUILD_EXAMPLES=OFF -DSOP_BUILD_SHARED=OFF >/dev/null
ninja -C "$BUILD" sop_static >/dev/null
${CC:-cc} -O2 -g -std=c11 -Wall -Wextra -I "$ROOT/include" "$ROOT/bench/bench_c.c" \
    "$BUILD/libsop.a" -llmdb -lsqlite3 -lpthread -lm -o "$BUILD/bench_c"
BENCH="$BUILD/bench_c"
${CC:-cc} -O2 -g -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -I "$ROOT/include" "$ROOT/bench/bench_mp.c" \
    "$BUILD/libsop.a" -lsqlite3 -lpthread -lm -o "$BUILD/bench_mp"
PY=${PYTHON:-python3}
if [[ " $ONLY " == *" python "* ]]; then
    log "building the sop Python package into $BUILD/py"
    rm -rf "$BUILD/py"
    (cd "$ROOT" && PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore \
        "$PY" -m pip install --no-build-isolation --no-deps -q --target "$BUILD/py" . )
    "$PY" -c "import lmdb" || { echo "python lmdb package missing (pip install lmdb)" >&2; exit 1; }
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/$STAMP"
mkdir -p "$OUT"
log "results in $OUT"
{
    echo "date: $(date -u)"
    echo "kernel: $(uname -r)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc)"
    echo "mem: $(free -m | awk '/Mem:/{print $2}') MiB"
    echo "fs: $(df -T "$TMPD" | awk 'NR==2{print $2, $1}')"
    echo "git: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- src include || echo ' (dirty)')"
    echo "lmdb: $(dpkg-query -W -f '${Version}' liblmdb-dev 2>/dev/null || echo unknown)"
    echo "sqlite: $("$PY" -c 'import sqlite3; print(sqlite3.sqlite_version)')"
    echo "mode: full=$FULL runs=$RUNS"
} > "$OUT/machine.txt"

if [ $FULL = 1 ]; then SIZES="10000 100000 1000000"; else SIZES="10000 100000"; fi

# run FILE ARGS...: one bench_c invocation, its command line kept with the results
run() {
    local f=$1; shift
    echo "bench_c $*" >> "$OUT/commands.txt"
    log "bench_c $*"
    "$BENCH" -T "$TMPD" -r "$RUNS" "$@" >> "$OUT/$f.jsonl"
}

for w in $ONLY; do
    case $w in
    bulk)   # workload 1; baselines once per size/order, sop for each slot length
        for n in $SIZES; do for o in rand seq; do
            run bulk -w bulk -n "$n" -o "$o" -s 1000
            for s in 500 2000 4000; do run bulk -w bulk -n "$n" -o "$o" -s "$s" -e sop; done
        done; done ;;
    durable)  # workload 2; quick mode: 100k preloaded items, 2 s per measurement
        if [ $FULL = 1 ]; then DS="$SIZES"; D=3; else DS="100000"; D=2; fi
        for n in $DS; do for o in rand seq; do for k in 1 10; do for t in 1 2; do
            run durable -w durable -n "$n" -o "$o" -k "$k" -t "$t" -d "$D"
        done; done; done; done ;;
    reads)  # workload 3
        for n in $SIZES; do for o in rand seq; do
            run reads -w reads -n "$n" -o "$o" -d 2
        done; done ;;
    big)    # workload 4: 600k items (~66 MiB of keys+values) against an 8 MiB cache
        if [ $FULL = 1 ]; then BO="rand seq"; else BO="rand"; fi
        for o in $BO; do run big -w big -n 600000 -o "$o" -c 8 -b 10000; done ;;
    python) # workload 5
        if [ $FULL = 1 ]; then PF=--full; else PF=; fi
        echo "bench_py.py --runs $RUNS $PF" >> "$OUT/commands.txt"
        log "bench_py.py --runs $RUNS $PF"
        PYTHONPATH="$BUILD/py" "$PY" "$ROOT/bench/bench_py.py" --runs "$RUNS" $PF \
            --tmp "$TMPD" > "$OUT/python.jsonl" ;;
    mp)     # issue 6: durable commits/s with 1, 2, 4 writer processes vs SQLite WAL FULL
        echo "bench_mp 3 $RUNS" >> "$OUT/commands.txt"
        log "bench_mp 3 $RUNS"
        "$BUILD/bench_mp" 3 "$RUNS" | tee "$OUT/mp.txt" ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
    esac
done

if ls "$OUT"/*.jsonl >/dev/null 2>&1; then
    "$PY" "$ROOT/bench/report.py" "$OUT"/*.jsonl | tee "$OUT/tables.md"
fi
log "raw results: $OUT/*.jsonl, tables: $OUT/tables.md"
