#!/usr/bin/env bash
# scripts/test.sh - THE test command (CI runs exactly this through .ci/run).
#
#   bash scripts/test.sh            every step below, in order
#   bash scripts/test.sh asan py    only the named steps (setup always runs)
#
# Steps:
#   gcc        Release build with gcc (-Wall -Wextra -Werror), ctest
#   clang      the same with clang
#   asan       AddressSanitizer + UBSan build (gcc), ctest
#   fuzz       libFuzzer runs of the decoders (scripts/fuzz.sh, clang)
#   tsan       ThreadSanitizer build (gcc), ctest -L concurrency
#              (tests/unit/test_concurrency*.c, test_mt*.c)
#   py         pip install . ; pytest tests/python
#   py-asan    pytest against the extension built with ASan+UBSan
#   py-tsan    pytest -m concurrency against the extension built with TSan
#   symbols    libsop.so exports only sop_* (all of sop.h); the installed
#              extension exports only PyInit__sop
#
# Every step runs even when an earlier one failed; a summary table follows,
# and the exit status is non-zero if any step failed.
#
# Environment:
#   SOP_SOAK=1          passed through: tests run their long soak variants
# Sanitizer runs set SOP_SANITIZER=asan|tsan for the tests (to scale down
# iteration counts, or to lift hypothesis deadlines).
#   SOP_SKIP_SETUP=1    do not run scripts/setup.sh
#   SOP_BUILD_ROOT      build folder (default: <repo>/build)
#   SOP_SAN_CC          compiler for the sanitizer builds (default: gcc)
#   SOP_PYTEST_TIMEOUT  seconds allowed per pytest run (default: 1500)
#   PYTHON              interpreter to use (default: python3 on PATH)
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SOP_ROOT" || exit 1

ALL_STEPS=(gcc clang asan tsan fuzz py py-asan py-tsan symbols)
if [ $# -gt 0 ]; then STEPS=("$@"); else STEPS=("${ALL_STEPS[@]}"); fi
for s in "${STEPS[@]}"; do
    case " ${ALL_STEPS[*]} " in *" $s "*) ;; *) die "unknown step '$s' (steps: ${ALL_STEPS[*]})" ;; esac
done
wanted() { case " ${STEPS[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

BUILD=${SOP_BUILD_ROOT:-$SOP_ROOT/build}
JOBS=$(nproc 2>/dev/null || echo 2)
SAN_CC=${SOP_SAN_CC:-gcc}
PYTEST_TIMEOUT=${SOP_PYTEST_TIMEOUT:-1500}
export CTEST_OUTPUT_ON_FAILURE=1
[ -n "${SOP_SOAK:-}" ] && export SOP_SOAK

# ---- bookkeeping -------------------------------------------------------------
RESULTS=()   # "STATUS|name|seconds|note"
record() { RESULTS+=("$1|$2|$3|${4:-}"); }

# run_step NAME CMD...: run, time and record one step (PASS/FAIL).
run_step() {
    local name=$1 t0 rc
    shift
    log "[$name] $*"
    t0=$SECONDS
    "$@"
    rc=$?
    if [ $rc -eq 0 ]; then
        record PASS "$name" $((SECONDS - t0))
    else
        record FAIL "$name" $((SECONDS - t0)) "exit $rc"
    fi
    return $rc
}
skip_step() { log "[$1] skipped: $2"; record SKIP "$1" 0 "$2"; }

summary() {
    local pass=0 fail=0 skip=0 r status name secs note
    printf '\n==================== scripts/test.sh summary ====================\n'
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r status name secs note <<<"$r"
        printf '  %-4s  %-22s %5ss  %s\n' "$status" "$name" "$secs" "$note"
        case $status in PASS) pass=$((pass + 1)) ;; FAIL) fail=$((fail + 1)) ;; SKIP) skip=$((skip + 1)) ;; esac
    done
    printf '  total time %ss\n' "$SECONDS"
    printf 'steps: %d passed, %d failed, %d skipped\n' "$pass" "$fail" "$skip"
    [ "$fail" -eq 0 ]
}

# configure_build NAME DIR CC [cmake args...]
configure_build() {
    local dir=$2 cc=$3
    shift 3
    cmake -S "$SOP_ROOT" -B "$dir" -G Ninja -DCMAKE_C_COMPILER="$cc" "$@" &&
        cmake --build "$dir" -j "$JOBS"
}

# c_suite NAME CC BUILD_TYPE [cmake args...]: configure + build, then ctest.
c_suite() {
    local name=$1 cc=$2 type=$3 dir="$BUILD/$1"
    shift 3
    if ! command -v "$cc" >/dev/null 2>&1; then
        record FAIL "$name build" 0 "$cc not installed (scripts/setup.sh installs it)"
        return
    fi
    if run_step "$name build" configure_build "$name" "$dir" "$cc" \
        -DCMAKE_BUILD_TYPE="$type" -DSOP_BUILD_PYTHON=OFF "$@"; then
        run_step "$name ctest" ctest --test-dir "$dir" -j "$JOBS" --no-tests=error
    else
        skip_step "$name ctest" "build failed"
    fi
}

# ---- the Python interpreter and pytest helpers ------------------------------------
PY=""
have_python_tests() { compgen -G "tests/python/test_*.py" >/dev/null || compgen -G "tests/python/**/test_*.py" >/dev/null; }

# run_pytest NAME [env...] -- [pytest args...]: SKIP when tests/python holds
# no test file yet.  pytest's exit 5 (nothing collected) is a SKIP when the
# selection is a marker (-m) that matched no test, and a FAIL otherwise (test
# files that collect nothing are a mistake).
run_pytest() {
    local name=$1 t0 rc envs=() marker=0
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    case " $* " in *" -m "*) marker=1 ;; esac
    if ! have_python_tests; then
        skip_step "$name" "no tests/python/test_*.py yet"
        return
    fi
    log "[$name] ${envs[*]} $PY -m pytest $*"
    t0=$SECONDS
    env "${envs[@]}" timeout -k 30 "$PYTEST_TIMEOUT" "$PY" -m pytest "$@"
    rc=$?
    if [ $rc -eq 0 ]; then
        record PASS "$name" $((SECONDS - t0))
    elif [ $rc -eq 5 ] && [ $marker -eq 1 ]; then
        record SKIP "$name" $((SECONDS - t0)) "no tests selected"
    elif [ $rc -eq 124 ]; then
        record FAIL "$name" $((SECONDS - t0)) "timed out after ${PYTEST_TIMEOUT}s"
    else
        record FAIL "$name" $((SECONDS - t0)) "pytest exit $rc"
    fi
}

# Build the extension in-tree with a sanitizer; it is staged, with the pure
# modules of python/sop, in $BUILD/<name>/python (put that on PYTHONPATH).
build_san_extension() {
    local name=$1 san=$2 dir="$BUILD/$1"
    rm -rf "$dir/python"   # no stale modules in the staged package
    configure_build "$name" "$dir" "$SAN_CC" -DCMAKE_BUILD_TYPE=Debug -DSOP_SANITIZE="$san" \
        -DSOP_BUILD_PYTHON=ON -DSOP_BUILD_TESTS=OFF -DSOP_BUILD_EXAMPLES=OFF \
        -DSOP_BUILD_SHARED=OFF -DPython_EXECUTABLE="$PY"
}

# Check that `import sop` in the sanitizer run picks the staged build.
check_staged_import() {
    local stage=$1 preload=$2 opts_var=$3 opts=$4 got
    got=$(cd "$SOP_ROOT/tests" && env "$opts_var=$opts" LD_PRELOAD="$preload" PYTHONPATH="$stage" \
        "$PY" -c 'import sop._sop as m; print(m.__file__)') || return 1
    case $got in
        "$stage"/*) echo "sop._sop from $got" ;;
        *) echo "error: sop._sop imported from $got, not from $stage" >&2; return 1 ;;
    esac
}

# ---- 0. set-up -----------------------------------------------------------------
if [ "${SOP_SKIP_SETUP:-0}" != 1 ]; then
    if ! run_step setup bash "$SOP_ROOT/scripts/setup.sh"; then
        summary
        exit 1
    fi
fi
PY=$(sop_python) || die "no python3"
sop_pip_env "$PY"
mkdir -p "$BUILD"

# ---- 1-4. C suites ---------------------------------------------------------------
wanted gcc && c_suite gcc gcc Release
wanted clang && c_suite clang clang Release

ASAN_ENV=(
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
)
TSAN_ENV=("TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1:exitcode=66")

if wanted asan; then
    export "${ASAN_ENV[@]}" SOP_SANITIZER=asan
    c_suite asan "$SAN_CC" Debug -DSOP_SANITIZE=asan
    unset ASAN_OPTIONS UBSAN_OPTIONS SOP_SANITIZER
fi

if wanted tsan; then
    dir="$BUILD/tsan"
    if run_step "tsan build" configure_build tsan "$dir" "$SAN_CC" \
        -DCMAKE_BUILD_TYPE=Debug -DSOP_SANITIZE=tsan -DSOP_BUILD_PYTHON=OFF \
        -DSOP_BUILD_EXAMPLES=OFF; then
        n=$(ctest --test-dir "$dir" -N -L concurrency | sed -n 's/^Total Tests: //p')
        if [ "${n:-0}" -gt 0 ]; then
            run_step "tsan ctest" env "${TSAN_ENV[@]}" SOP_SANITIZER=tsan ctest --test-dir "$dir" -j "$JOBS" -L concurrency
        else
            skip_step "tsan ctest" "no test_concurrency*.c / test_mt*.c yet"
        fi
    else
        skip_step "tsan ctest" "build failed"
    fi
fi

# ---- 5. Python package ---------------------------------------------------------------
# --no-build-isolation: setup.sh installed the build backend; this keeps the
# build incremental (build/py-*) and needs no download.
if wanted fuzz; then
    run_step "fuzz" bash "$SOP_ROOT/scripts/fuzz.sh"
fi

if wanted py || wanted symbols; then
    if run_step "pip install ." "$PY" -m pip install -q --no-build-isolation "$SOP_ROOT"; then
        wanted py && run_pytest "pytest" -- tests/python
    else
        wanted py && skip_step "pytest" "pip install failed"
    fi
fi

# ---- 6. pytest under ASan+UBSan -------------------------------------------------------
# The interpreter is not instrumented, so the ASan runtime is preloaded into it;
# leaks are not reported (CPython keeps memory until exit by design).
# PYTHONDEVMODE=1 is `python -X dev` (debug hooks on the allocators, warnings).
# PYTHONMALLOC=malloc makes Python objects visible to ASan.  --capture=sys
# keeps sanitizer reports (written to fd 2) on the terminal.
if wanted py-asan; then
    stage="$BUILD/py-asan/python"
    if run_step "py-asan build" build_san_extension py-asan asan; then
        preload=$("$SAN_CC" -print-file-name=libasan.so)
        if run_step "py-asan import" check_staged_import "$stage" "$preload" \
            ASAN_OPTIONS detect_leaks=0; then
            run_pytest "pytest asan" LD_PRELOAD="$preload" PYTHONPATH="$stage" PYTHONMALLOC=malloc SOP_SANITIZER=asan \
                "ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0" \
                "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1" \
                PYTHONDEVMODE=1 -- -p no:cacheprovider --capture=sys tests/python
        else
            skip_step "pytest asan" "staged extension not importable"
        fi
    else
        skip_step "pytest asan" "build failed"
    fi
fi

# ---- 7. concurrency pytest under TSan ------------------------------------------------
if wanted py-tsan; then
    stage="$BUILD/py-tsan/python"
    if run_step "py-tsan build" build_san_extension py-tsan tsan; then
        preload=$("$SAN_CC" -print-file-name=libtsan.so)
        if run_step "py-tsan import" check_staged_import "$stage" "$preload" TSAN_OPTIONS ""; then
            run_pytest "pytest tsan" LD_PRELOAD="$preload" PYTHONPATH="$stage" PYTHONMALLOC=malloc SOP_SANITIZER=tsan \
                "${TSAN_ENV[@]}" -- -p no:cacheprovider --capture=sys -m concurrency tests/python
        else
            skip_step "pytest tsan" "staged extension not importable"
        fi
    else
        skip_step "pytest tsan" "build failed"
    fi
fi

# ---- 8. exported symbols ---------------------------------------------------------------
if wanted symbols; then
    lib="$BUILD/gcc/libsop.so"
    if [ ! -f "$lib" ]; then
        configure_build gcc "$BUILD/gcc" gcc -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_PYTHON=OFF >/dev/null 2>&1
    fi
    ext=$(cd "$SOP_ROOT/tests" && "$PY" -c 'import sop._sop as m; print(m.__file__)' 2>/dev/null)
    if [ -f "$lib" ]; then
        run_step "symbols" bash "$SOP_ROOT/scripts/check_symbols.sh" "$lib" ${ext:+"$ext"}
    else
        record FAIL "symbols" 0 "no libsop.so (build failed)"
    fi
    [ -n "$ext" ] || record FAIL "symbols (extension)" 0 "sop._sop not importable"
fi

summary
