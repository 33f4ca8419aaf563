#!/usr/bin/env bash
# scripts/setup.sh - install everything the build and the tests need on a
# Debian 12 machine: compilers, CMake/Ninja, sanitizer runtimes, and the
# Python build/test packages.  Idempotent: does nothing (quickly) when all is
# installed already.  Run as root (or with sudo available).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(
    cmake ninja-build gcc clang binutils pkg-config
    python3-dev
    libclang-rt-14-dev   # clang's sanitizer runtimes (ASan/UBSan/TSan with clang)
    liblmdb-dev libsqlite3-dev
)
PIP_PACKAGES=(scikit-build-core pytest hypothesis lmdb mypy)
PIP_MODULES=(scikit_build_core pytest hypothesis lmdb mypy)   # import names, same order

# --- Debian packages --------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
if ! command -v python3 >/dev/null 2>&1; then
    missing+=(python3)
fi
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "Debian packages: all present"
fi

# --- Python -----------------------------------------------------------------
PY=$(sop_python) || die "no python3 found"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' ||
    die "$PY is older than Python 3.9"
sop_pip_env "$PY"
if ! "$PY" -m pip --version >/dev/null 2>&1; then
    log "installing pip for $PY"
    case "$PY" in
        /usr/bin/*) as_root apt-get install -y -q --no-install-recommends python3-pip ;;
        *) "$PY" -m ensurepip --upgrade ;;
    esac
fi

need=()
for i in "${!PIP_MODULES[@]}"; do
    "$PY" -c "import ${PIP_MODULES[$i]}" >/dev/null 2>&1 || need+=("${PIP_PACKAGES[$i]}")
done
if [ ${#need[@]} -gt 0 ]; then
    log "pip install ${need[*]} (for $PY)"
    "$PY" -m pip install -q "${need[@]}"
else
    log "Python packages: all present ($PY)"
fi
