#!/usr/bin/env bash
# scripts/demo.sh - the main job: install what is needed, build and install
# the Python package (pip install .), then run examples/demo.py, which builds
# an embedded database in a temporary folder and works with two stores in
# one transaction.  Arguments are passed to the demo (e.g. --keep, --users N).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$SOP_ROOT/scripts/setup.sh"
PY=$(sop_python) || die "no python3"
sop_pip_env "$PY"
log "pip install . (builds libsop and the extension sop._sop)"
"$PY" -m pip install -q --no-build-isolation "$SOP_ROOT"
log "python examples/demo.py $*"
cd "$SOP_ROOT"
exec "$PY" examples/demo.py "$@"
