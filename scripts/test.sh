#!/usr/bin/env bash
# Runs every test of vecgate. This is the one test command (README, CI via .ci/run).
#
#  1. Python environment: creates ./.venv and installs tests/python/requirements.txt (the real
#     chromadb with its Rust server, langchain-chroma, qdrant-client, langchain-qdrant, pytest,
#     PyJWT, requests). Reused as long as the requirements file and the base Python are
#     unchanged (a hash stamp lives inside the venv); rebuilt from scratch otherwise.
#  1b. Cerbos PDP (scripts/cerbos.sh): the pinned Cerbos binary, the oracle of the PDP
#     differential tests, from npm into .tmp/cerbos (checksum verified), found through
#     VECGATE_CERBOS.
#  2. Rust: `cargo test --all-targets`, then the doctests. Integration tests start their own
#     servers (Chroma, …) on free loopback ports using the venv's Python, found through
#     VECGATE_PYTHON, and stop them when done.
#  3. Node.js clients (scripts/node-clients.sh), then Python: `pytest tests/python`.
#  4. Qdrant, a second time: steps 2 and 3 run every Qdrant suite against the Qdrant test
#     double (tests/qdrant_server, Qdrant Edge inside). When a real Qdrant server can be had
#     (QDRANT_URL, else an executable from scripts/qdrant.sh: QDRANT_BIN, PATH, or
#     ../shared/qdrant/ unpacked once into ~/.cache/vecgate), the Rust and Python suites that
#     use Qdrant run again against it, with the double-vs-server conformance test. Without
#     one, the summary says so.
#
# Needs: a Rust toolchain, Python >= 3.10 (`python3`, or set VECGATE_BASE_PYTHON) with the
# venv module, npm (for the Cerbos binary, once), and access to crates.io, PyPI and the npm
# registry (or mirrors configured for cargo, pip and npm).
# Exits non-zero if anything fails; the last line is a summary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

START=$SECONDS
RESULTS=()      # "step: outcome (Ns)" for the summary
FAILED=0
PHASE="setup"

log() { printf '\n==> %s\n' "$*"; }

summary() {
    local rc=$?
    local total=$((SECONDS - START))
    local details
    details=$(IFS=';'; echo "${RESULTS[*]:-}")
    details=${details//;/, }
    echo
    if [[ $rc -eq 0 && $FAILED -eq 0 ]]; then
        echo "test.sh: ALL PASSED in ${total}s (${details})"
    elif [[ $PHASE == "done" ]]; then
        echo "test.sh: FAILED in ${total}s (${details})"
    else
        [[ $rc -eq 0 ]] && rc=1
        echo "test.sh: FAILED during ${PHASE} after ${total}s (${details:-nothing ran})"
    fi
    exit "$rc"
}
trap summary EXIT

# Runs one test step, recording its outcome without stopping the script, so that every step
# reports. Usage: step NAME [ok-exit-codes…] -- COMMAND…
step() {
    local name=$1; shift
    local ok_codes=(0)
    while [[ $1 != "--" ]]; do ok_codes+=("$1"); shift; done
    shift
    PHASE=$name
    log "$name: $*"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    local outcome="FAILED (exit $rc)"
    for code in "${ok_codes[@]}"; do
        if [[ $rc -eq $code ]]; then outcome="ok"; fi
    done
    if [[ $outcome != "ok" ]]; then FAILED=1; fi
    RESULTS+=("$name: $outcome ($((SECONDS - t0))s)")
}

# ---------------------------------------------------------------------------------------
# 1. Python venv
# ---------------------------------------------------------------------------------------
PHASE="python venv"
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
vecgate_venv "$ROOT" || exit 1
RESULTS+=("venv: $VENV_OUTCOME")
CHROMA_VERSION="$("$VENV/bin/python" -c 'import chromadb; print(chromadb.__version__)')" || exit 1
echo "chromadb $CHROMA_VERSION"
RESULTS+=("Chroma: the real server of chromadb $CHROMA_VERSION")
export VECGATE_PYTHON="$VENV/bin/python"
# The JavaScript clients of the client matrix (tests/node), run by the Python tests.
# shellcheck source=scripts/node-clients.sh
source "$ROOT/scripts/node-clients.sh"
vecgate_node_clients "$ROOT" || exit 1
RESULTS+=("node clients: $NODE_CLIENTS_OUTCOME")

# ---------------------------------------------------------------------------------------
# Qdrant: which real server (if any) the second pass uses. The first pass (steps 2 and 3)
# always runs against the test double, so the variables that select a real one are set aside.
# ---------------------------------------------------------------------------------------
QDRANT_REAL_ENV=()     # the environment of the second pass; empty: no real server
QDRANT_REAL_DESC=""
qdrant_find_real() {
    if [[ -n ${QDRANT_URL:-} ]]; then
        QDRANT_REAL_ENV=("QDRANT_URL=$QDRANT_URL" "QDRANT_API_KEY=${QDRANT_API_KEY:-}")
        QDRANT_REAL_DESC="real Qdrant at $QDRANT_URL"
        return 0
    fi
    local bin rc=0
    bin="$("$ROOT/scripts/qdrant.sh")" || rc=$?
    case $rc in
        0)
            QDRANT_REAL_ENV=("QDRANT_BIN=$bin")
            QDRANT_REAL_DESC="real $("$bin" --version 2>/dev/null | head -1 || echo qdrant)"
            echo "real Qdrant server for the second pass: $bin"
            ;;
        1) ;;
        *)
            FAILED=1
            RESULTS+=("real Qdrant: FAILED to set up (scripts/qdrant.sh exit $rc)")
            ;;
    esac
}
qdrant_find_real
unset QDRANT_URL QDRANT_BIN QDRANT_API_KEY

# ---------------------------------------------------------------------------------------
# 1b. Cerbos PDP binary (pinned, checksum-verified, cached in .tmp/cerbos) for the
#     differential tests against the real PDP (tests/pdp_*.rs, tests/policy_test_vs_*.rs).
# ---------------------------------------------------------------------------------------
PHASE="cerbos pdp"
VECGATE_CERBOS="$("$ROOT/scripts/cerbos.sh")" || exit 1
export VECGATE_CERBOS
RESULTS+=("Cerbos: the real PDP binary, $("$VECGATE_CERBOS" --version 2>/dev/null | head -n1)")

# ---------------------------------------------------------------------------------------
# 2. Rust tests (unit, integration, benches in test mode, examples), then doctests
# ---------------------------------------------------------------------------------------
step "cargo test" -- cargo test --all-targets
step "doctests" -- cargo test --doc

# ---------------------------------------------------------------------------------------
# 3. Python tests (LangChain / native SDKs through vecgate). Runs once tests exist.
#    pytest exit code 5 means "no tests collected", which is not a failure here.
# ---------------------------------------------------------------------------------------
if [[ -n "$(find tests/python \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit 2>/dev/null)" ]]; then
    step "pytest" 5 -- "$VENV/bin/python" -m pytest tests/python -q
else
    RESULTS+=("pytest: no tests yet")
fi

# ---------------------------------------------------------------------------------------
# 4. The Qdrant suites again, against the real server found above (with the conformance test
#    of the double against it). Which Qdrant each step used is in its name.
# ---------------------------------------------------------------------------------------
qdrant_real_pass() {
    local rust_tests=() py_tests=() t
    for t in $(grep -l 'QdrantServer::start' tests/*.rs); do
        rust_tests+=(--test "$(basename "$t" .rs)")
    done
    mapfile -t py_tests < <(grep -l 'vecgate_qdrant\|qdrant_as\|qdrant_direct' tests/python/test_*.py)
    RESULTS+=("(Qdrant suites above: on the Qdrant Edge test double)")
    step "cargo test [Qdrant suites on $QDRANT_REAL_DESC]" -- \
        env "${QDRANT_REAL_ENV[@]}" cargo test "${rust_tests[@]}"
    step "pytest [Qdrant suites on $QDRANT_REAL_DESC]" -- \
        env "${QDRANT_REAL_ENV[@]}" "$VENV/bin/python" -m pytest "${py_tests[@]}" -q
}
if [[ ${#QDRANT_REAL_ENV[@]} -gt 0 ]]; then
    qdrant_real_pass
else
    RESULTS+=("real Qdrant: none found (QDRANT_URL/QDRANT_BIN unset, no qdrant on PATH, no ../shared/qdrant): the Qdrant suites ran on the test double only")
fi

PHASE="done"
exit "$FAILED"
