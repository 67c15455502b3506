#!/usr/bin/env bash
# The load harness in one command: client → database directly, → nginx → database, → HAProxy
# (verifying the JWT) → database, and → vecgate → database, on the real Chroma server, on a
# stub upstream (LangChain's Chroma query and Qdrant hybrid query), and on Qdrant: the real
# server when one can be had (QDRANT_URL, or scripts/qdrant.sh: QDRANT_BIN, PATH,
# ../shared/qdrant), else the Qdrant test double.
#
# Before/after in one run: VECGATE_BASELINE_BIN=[LABEL=]PATH[,…] runs older vecgate builds
# beside the current one on every path but real Qdrant's (bench/build-baseline.sh COMMIT
# builds one and prints its path).
#
#   bench/run-load.sh            # full run (about 10 minutes on 2 cores), writes the results
#                                # into bench/README.md between the load-results markers
#   bench/run-load.sh --quick    # about 2 minutes, prints the results only
#   bench/run-load.sh --quick --readme     # …and writes them too
#   bench/run-load.sh --only chroma        # any other argument goes to the harness (--help)
#
# Set-up on a fresh machine, as scripts/test.sh does it:
#   1. the Python venv ./.venv with the real chromadb and qdrant-client (scripts/venv.sh),
#      unless VECGATE_PYTHON already points at a working interpreter with them;
#   2. nginx and HAProxy, unpacked from Debian's packages into .tmp/nginx/ and .tmp/haproxy/
#      (scripts/nginx.sh, scripts/haproxy.sh);
#   3. a higher open-file limit (1,000 client connections plus the proxy's 1,000);
#   4. `cargo bench --bench load` (builds vecgate in release mode; bench/load.rs).
# Everything the harness starts it stops again, also when it fails.
#
# Needs: a Rust toolchain, Python >= 3.10 with venv, apt-get or a Debian mirror for nginx
# (or an installed /usr/sbin/nginx, or VECGATE_NGINX), access to crates.io and PyPI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

say() { printf '\n==> %s\n' "$*"; }

# 1. Python --------------------------------------------------------------------------------
if [[ -n ${VECGATE_PYTHON:-} ]] && "$VECGATE_PYTHON" -c 'import chromadb_rust_bindings, qdrant_client' 2>/dev/null; then
    say "python: using VECGATE_PYTHON=$VECGATE_PYTHON"
else
    # shellcheck source=scripts/venv.sh
    source "$ROOT/scripts/venv.sh"
    vecgate_venv "$ROOT"
fi
"$VECGATE_PYTHON" -c 'import chromadb; print("chromadb", chromadb.__version__)'

# 2. nginx ---------------------------------------------------------------------------------
say "nginx: scripts/nginx.sh"
VECGATE_NGINX="$("$ROOT/scripts/nginx.sh")"
export VECGATE_NGINX
"$VECGATE_NGINX" -v
say "haproxy: scripts/haproxy.sh"
VECGATE_HAPROXY="$("$ROOT/scripts/haproxy.sh")"
export VECGATE_HAPROXY
"$VECGATE_HAPROXY" -v | head -1
if [[ -n ${VECGATE_BASELINE_BIN:-} ]]; then
    say "older vecgate builds beside the current one: $VECGATE_BASELINE_BIN"
fi

# 3. open files ----------------------------------------------------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open-file limit: $(ulimit -n)"

# 3b. a real Qdrant server, if one can be had (QDRANT_URL, else scripts/qdrant.sh) ------------
if [[ -n ${QDRANT_URL:-} ]]; then
    say "qdrant: the real server at QDRANT_URL=$QDRANT_URL"
elif QDRANT_BIN="$("$ROOT/scripts/qdrant.sh")"; then
    export QDRANT_BIN
    say "qdrant: the real server $QDRANT_BIN ($("$QDRANT_BIN" --version 2>/dev/null | head -1))"
else
    unset QDRANT_BIN
    say "qdrant: no real server found; the Qdrant section measures the test double"
fi

# 4. the harness ---------------------------------------------------------------------------
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
args=("$@")
quick=0
for a in "$@"; do [[ $a == --quick ]] && quick=1; done
if [[ $quick -eq 0 ]]; then args+=(--readme); fi
say "cargo bench --bench load -- ${args[*]}"
cargo bench --bench load -- "${args[@]}"
