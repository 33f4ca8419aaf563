#!/usr/bin/env bash
# test_install.sh - what `cmake --install` gives a C user, checked from outside:
# installs this build into a temporary prefix, then builds examples/example.c
#   1. with `pkg-config --cflags --libs sop` (the .pc file is relocatable), and
#   2. with a tiny CMake project that uses find_package(sop) (sop::sop and
#      sop::sop_static),
# and runs every program built; also runs the installed `sop` tool.  A private
# prefix is not searched by the dynamic linker: the install says so (and runs
# no ldconfig).
#
# usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER CMAKE SHARED(ON|OFF) GENERATOR
# (ctest passes these; see CMakeLists.txt)
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) cc=$3 cmake=$4 shared=$5 generator=$6
work=$(mktemp -d "${TMPDIR:-/tmp}/sop_install_XXXXXX")
trap '[ -n "${SOP_KEEP:-}" ] || rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "-- $*"; }

command -v pkg-config >/dev/null || fail "pkg-config is not installed (scripts/setup.sh installs it)"

prefix=$work/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
test -f "$prefix/include/sop.h" || fail "no include/sop.h"
test -x "$prefix/bin/sop" || fail "no bin/sop"
pc=$(find "$prefix" -name sop.pc -path "*/pkgconfig/*" -print -quit)
test -n "$pc" || fail "no sop.pc"
cfg=$(find "$prefix" -name sopConfig.cmake -print -quit)
test -n "$cfg" || fail "no sopConfig.cmake"
version=$(sed -n 's/^#define SOP_VERSION_STRING "\(.*\)"/\1/p' "$src/include/sop.h")
# (no `cmd | grep -q` under pipefail: grep's early exit would fail the pipe)
out=$("$prefix/bin/sop" --version) && [[ $out == *"$version"* ]] || fail "installed sop --version: $out"
if [ "$shared" = ON ]; then
    grep -q "is not searched by the dynamic linker" "$work/install.log" ||
        { cat "$work/install.log"; fail "the install did not say that $prefix is not searched by ld.so"; }
fi
say "installed into $prefix"

# Move the prefix: a relocatable sop.pc and CMake package still work.
mv "$prefix" "$work/moved"
prefix=$work/moved
pc=${pc/#$work\/prefix/$prefix}
export PKG_CONFIG_PATH=$(dirname "$pc")
[ "$(pkg-config --modversion sop)" = "$version" ] || fail "pkg-config --modversion sop"
libdir=$(realpath "$(pkg-config --variable=libdir sop)")
test -f "$(pkg-config --variable=includedir sop)/sop.h" || fail "pkg-config includedir has no sop.h"

# 1. pkg-config
# shellcheck disable=SC2046  # word splitting of the flags is intended
"$cc" -o "$work/example_pc" "$src/examples/example.c" $(pkg-config --cflags sop) $(pkg-config --libs sop) ||
    fail "compile with pkg-config --cflags --libs sop"
if [ "$shared" = ON ]; then
    out=$(LD_LIBRARY_PATH=$libdir ldd "$work/example_pc")
    [[ $out == *"$libdir/libsop.so"* ]] || fail "example_pc does not use the installed libsop.so: $out"
fi
LD_LIBRARY_PATH=$libdir TMPDIR=$work "$work/example_pc" >"$work/example_pc.log" 2>&1 || { cat "$work/example_pc.log"; fail "example built with pkg-config"; }
# shellcheck disable=SC2046
"$cc" -o "$work/example_pc_static" "$src/examples/example.c" $(pkg-config --cflags sop) \
    "$libdir/libsop.a" $(pkg-config --static --libs-only-other --libs-only-l sop | sed 's/-lsop//') ||
    fail "static link with pkg-config --static"
TMPDIR=$work "$work/example_pc_static" >/dev/null 2>&1 || fail "example linked statically"
say "pkg-config: built and ran examples/example.c"

# 2. find_package(sop)
mkdir -p "$work/proj"
cat >"$work/proj/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(use_sop C)
find_package(sop $version REQUIRED)
add_executable(example_default "$src/examples/example.c")
target_link_libraries(example_default PRIVATE sop::sop)
add_executable(example_static "$src/examples/example.c")
target_link_libraries(example_static PRIVATE sop::sop_static)
CMAKE
"$cmake" -S "$work/proj" -B "$work/proj/build" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" >"$work/proj.log" 2>&1 || { cat "$work/proj.log"; fail "find_package(sop)"; }
"$cmake" --build "$work/proj/build" >>"$work/proj.log" 2>&1 || { cat "$work/proj.log"; fail "build against sop::sop"; }
for exe in example_default example_static; do
    TMPDIR=$work "$work/proj/build/$exe" >"$work/$exe.log" 2>&1 || { cat "$work/$exe.log"; fail "$exe"; }
done
if [ "$shared" = ON ]; then
    out=$(ldd "$work/proj/build/example_default")
    [[ $out == *"$libdir/libsop.so"* ]] || fail "sop::sop is not the installed libsop.so: $out"
fi
say "find_package(sop): built and ran examples/example.c with sop::sop and sop::sop_static"
echo "install: 1 passed, 0 failed"
