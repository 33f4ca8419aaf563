#!/usr/bin/env bash
# scripts/fuzz.sh - build the libFuzzer targets (tests/fuzz/fuzz_*.c) with
# clang + ASan + UBSan and run each on a copy of its checked-in corpus
# (tests/fuzz/corpus/<target>) for SOP_FUZZ_SECONDS (default 15; 300 with
# SOP_SOAK=1).  Exits non-zero on the first crash, leak or sanitizer report.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${SOP_FUZZ_SECONDS:-$([ -n "${SOP_SOAK:-}" ] && echo 300 || echo 15)}
out=${SOP_BUILD_ROOT:-$root/build}/fuzz
mkdir -p "$out"
srcs=("$root"/src/*.c)
flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$root/include" -I"$root/src")
status=0
for target in "$root"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$target" .c)
    short=${name#fuzz_}
    clang "${flags[@]}" "${srcs[@]}" "$target" -o "$out/$name" -lpthread -lm
    corpus="$out/corpus-$short"
    rm -rf "$corpus" && mkdir -p "$corpus"
    cp "$root/tests/fuzz/corpus/$short/"* "$corpus/"
    echo "==> $name for ${secs}s"
    if ! "$out/$name" -max_total_time="$secs" -print_final_stats=0 "$corpus" 2> "$out/$name.log"; then
        tail -40 "$out/$name.log"
        status=1
    else
        grep -E "^Done" "$out/$name.log" || true
    fi
done
exit $status
