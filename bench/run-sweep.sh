#!/usr/bin/env bash
# How vecgate's cost grows with the work, in one command: `cargo bench --bench sweep` (hits
# per answer, terms in the plan, policies loaded, client connections, upsert size, against the
# stub upstream), then the curves drawn into bench/curves/*.png by bench/plot_sweep.py with
# matplotlib from the project's venv.
#
#   bench/run-sweep.sh                 # about 6 minutes on 2 cores
#   bench/run-sweep.sh --quick         # about 3 minutes
#   bench/run-sweep.sh --only terms    # one dimension (the others keep their last numbers)
#
# Set-up: the venv of scripts/venv.sh (as scripts/test.sh makes it), plus bench/requirements-
# plot.txt (matplotlib, pinned) installed into it when missing; a higher open-file limit (1,000
# client connections and vecgate's). VECGATE_BASELINE_BIN=[LABEL=]PATH[,…] sweeps older builds
# too (bench/build-baseline.sh COMMIT builds one).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
say() { printf '\n==> %s\n' "$*"; }

# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
vecgate_venv "$ROOT"
if ! "$VECGATE_PYTHON" -c 'import matplotlib' 2>/dev/null; then
    say "installing bench/requirements-plot.txt into $VENV"
    "$VENV/bin/pip" install --quiet -r "$ROOT/bench/requirements-plot.txt"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
say "cargo bench --bench sweep -- $*"
cargo bench --bench sweep -- "$@"
say "curves: $VECGATE_PYTHON bench/plot_sweep.py"
"$VECGATE_PYTHON" "$ROOT/bench/plot_sweep.py" "$ROOT/bench/curves/sweep.json"
