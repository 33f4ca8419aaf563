#!/usr/bin/env bash
# scripts/check_symbols.sh - check what the shared objects export.
#
#   check_symbols.sh LIBSOP_SO [PYTHON_EXTENSION_SO ...]
#
# libsop.so must export only sop_* symbols declared in include/sop.h, and
# every function declared SOP_API there (a missing one is a warning instead of a failure
# when SOP_ALLOW_MISSING_API=1).  A Python extension must export only its
# PyInit_* function (the static libsop inside it stays hidden).
# Exit 0 when all is well, 1 otherwise.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
header="$root/include/sop.h"
[ $# -ge 1 ] || { echo "usage: $0 LIBSOP_SO [EXTENSION_SO ...]" >&2; exit 2; }

# Defined dynamic symbols, one name a line, without @VERSION suffixes.
exports() {
    nm -D --defined-only "$1" | awk 'NF >= 2 { sub(/@.*/, "", $NF); print $NF }' | sort -u
}

# Print a newline-separated list, indented.
indent() { printf '%s\n' "$1" | sed 's/^/    /'; }

status=0
lib=$1
shift
[ -f "$lib" ] || { echo "FAIL: $lib: no such file" >&2; exit 1; }

syms=$(exports "$lib")
# Linker-made markers that some toolchains put in .dynsym; not ours.
bad=$(printf '%s\n' "$syms" | grep -vE '^(sop_|_init$|_fini$|_edata$|_end$|__bss_start$)' | grep -v '^$' || true)
if [ -n "$bad" ]; then
    echo "FAIL: $lib exports symbols outside sop_*:" >&2
    indent "$bad" >&2
    status=1
fi

declared=$(grep -E '^SOP_API' "$header" | grep -oE '\bsop_[a-z0-9_]+ *\(' | tr -d ' (' | sort -u)
missing=$(comm -23 <(printf '%s\n' "$declared") <(printf '%s\n' "$syms"))
if [ -n "$missing" ]; then
    n=$(printf '%s\n' "$missing" | wc -l)
    if [ "${SOP_ALLOW_MISSING_API:-0}" = 1 ]; then
        echo "warning: $lib lacks $n SOP_API function(s) of sop.h (SOP_ALLOW_MISSING_API=1):" >&2
    else
        echo "FAIL: $lib lacks $n SOP_API function(s) declared in sop.h:" >&2
        status=1
    fi
    indent "$missing" >&2
fi
undeclared=$(comm -13 <(printf '%s\n' "$declared") <(printf '%s\n' "$syms" | grep '^sop_' || true))
if [ -n "$undeclared" ]; then
    echo "FAIL: $lib exports sop_* symbols that sop.h does not declare (mark internals without SOP_API):" >&2
    indent "$undeclared" >&2
    status=1
fi
n_ok=$(printf '%s\n' "$syms" | grep -c '^sop_' || true)
echo "$lib: $n_ok sop_* symbols exported, $(printf '%s\n' "$declared" | wc -l) declared in sop.h"

for ext in "$@"; do
    [ -f "$ext" ] || { echo "FAIL: $ext: no such file" >&2; status=1; continue; }
    extra=$(exports "$ext" | grep -vE '^(PyInit_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
    if [ -n "$extra" ]; then
        echo "FAIL: $ext exports more than PyInit_*:" >&2
        indent "$extra" | head -20 >&2
        status=1
    else
        echo "$ext: exports only PyInit_*"
    fi
done
exit $status
