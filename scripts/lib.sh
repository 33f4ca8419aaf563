# shellcheck shell=bash
# scripts/lib.sh - helpers shared by setup.sh, test.sh and demo.sh (sourced,
# never run).  Picks the Python interpreter and makes pip quiet and usable as
# root on Debian's system Python.

SOP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SOP_ROOT

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run as root directly, otherwise through sudo when it exists.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# The interpreter: $PYTHON if set, else python3 on PATH.  Resolved to the
# real executable (pyenv's python3 is a shell shim, and LD_PRELOAD of a
# sanitizer runtime must reach the interpreter, not bash).
sop_python() {
    local py=${PYTHON:-python3}
    command -v "$py" >/dev/null 2>&1 || return 1
    "$py" -c 'import sys; print(sys.executable)'
}

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore
export PIP_NO_INPUT=1
export DEBIAN_FRONTEND=noninteractive

# Debian's own python3 refuses pip installs (PEP 668) unless told otherwise.
# Only set the override when that interpreter is marked externally managed.
sop_pip_env() {
    local py=$1 marker
    marker=$("$py" -c 'import sysconfig, os; print(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))')
    if [ -f "$marker" ]; then
        export PIP_BREAK_SYSTEM_PACKAGES=1
    fi
}
