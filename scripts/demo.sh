#!/usr/bin/env bash
# The vecgate demo: a LangChain retrieval app over a real Chroma server, with vecgate in
# between. Two employees ask the same question and each gets only their own department's and
# region's documents; one tries to plant a document for another team and is refused.
#
#   ./scripts/demo.sh
#
# What it does (examples/langchain-chroma/README.md explains each step and how to run it by
# hand):
#   1. creates or reuses the Python venv ./.venv (the same one scripts/test.sh uses),
#   2. builds vecgate (debug profile: it builds faster than release and shares its artifacts
#      with `cargo test`; the demo's load is a few dozen requests). VECGATE_BIN overrides it,
#   3. starts Chroma and vecgate on free loopback ports with a throwaway data directory,
#   4. loads the corpus through vecgate as the `ingest` principal,
#   5. runs examples/langchain-chroma/app.py as alice (FINANCE, EMEA) and bob (HR, AMER),
#   6. shows a refused write and the tail of vecgate's audit log,
#   7. asks `vecgate explain` why bob cannot see fin-emea-budget and `vecgate who-can` who can.
# Everything it starts is stopped when it exits, however it exits. Set VECGATE_DEMO_KEEP=1 to
# keep the temporary directory (logs, config, audit log) for a look afterwards.
#
# Needs: a Rust toolchain, Python >= 3.10 (`python3` or VECGATE_BASE_PYTHON) and access to
# crates.io and PyPI (or mirrors). Only loopback addresses are used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
EXAMPLE="$ROOT/examples/langchain-chroma"
DEMO="demo.sh"
LOGS="vecgate chroma"
# shellcheck source=scripts/demo-lib.sh
source "$ROOT/scripts/demo-lib.sh"

# 1, 2. Python venv, vecgate binary, a work directory ---------------------------------------
demo_begin

# 3. Chroma and vecgate on free loopback ports --------------------------------------------
CHROMA_PORT="$(free_port)"
say "chroma: starting the real server on 127.0.0.1:$CHROMA_PORT (data in $WORK/chroma-data)"
"$PY" -c 'import sys, chromadb_rust_bindings as c; c.cli(["chroma", "run", "--path", sys.argv[1], "--host", "127.0.0.1", "--port", sys.argv[2]])' \
    "$WORK/chroma-data" "$CHROMA_PORT" >"$WORK/chroma.log" 2>&1 &
DEMO_PIDS+=($!)
wait_for chroma "$!" "http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat"
start_vecgate "http://127.0.0.1:$CHROMA_PORT" /api/v2/heartbeat

# 4-6. The corpus, two users, a refused write ------------------------------------------------
demo_story

# 7. Why bob cannot see the budget note, and who can ------------------------------------------
demo_explain fin-emea-budget

# The chromadb client's start-up calls (identity, tenant, database, pre-flight) are left out.
show_audit auth_identity get_tenant get_database pre_flight_checks
