#!/usr/bin/env bash
# The vecgate demo on Qdrant: a LangChain retrieval app (langchain-qdrant) over a Qdrant-
# compatible server, with vecgate in between. Two employees ask the same question and each gets
# only their own department's and region's documents; one tries to plant a document for another
# team and is refused. The same flow as scripts/demo.sh (Chroma).
#
#   ./scripts/demo-qdrant.sh
#
# Which Qdrant (no registry serves a Qdrant server, so none is downloaded):
#   - QDRANT_URL (its REST address, e.g. http://127.0.0.1:6333) and QDRANT_API_KEY (its
#     service.api_key, if any): a running real Qdrant; the demo uses a collection named
#     vecgate-demo-<random> there and deletes it at the end;
#   - QDRANT_BIN (a `qdrant` server executable): started here on free loopback ports with a
#     temporary storage path and its own API key, stopped at the end;
#   - neither: the project's REST test double (tests/qdrant_server: Qdrant's REST API over
#     Qdrant Edge, Qdrant's own engine, in-process). `scripts/qdrant.sh` prints a real server's
#     path when one can be found (QDRANT_BIN=$(scripts/qdrant.sh) ./scripts/demo-qdrant.sh).
#
# What it does (examples/langchain-qdrant/README.md explains each step and how to run it by
# hand):
#   1. creates or reuses the Python venv ./.venv (the same one scripts/test.sh uses),
#   2. builds vecgate (debug profile: it builds faster than release and shares its artifacts
#      with `cargo test`; the demo's load is a few dozen requests). VECGATE_BIN overrides it,
#   3. starts Qdrant (unless QDRANT_URL names one; with its own API key) and vecgate on free
#      loopback ports; vecgate holds Qdrant's key, the app only ever has its user's token,
#   4. loads the corpus through vecgate as the `ingest` principal,
#   5. runs examples/langchain-qdrant/app.py as alice (FINANCE, EMEA) and bob (HR, AMER),
#   6. shows a refused write and the tail of vecgate's audit log.
# Everything it starts is stopped when it exits, however it exits. Set VECGATE_DEMO_KEEP=1 to
# keep the temporary directory (logs, config, audit log) for a look afterwards.
#
# Needs: a Rust toolchain, Python >= 3.10 (`python3` or VECGATE_BASE_PYTHON) and access to
# crates.io and PyPI (or mirrors). Only loopback addresses are used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
EXAMPLE="$ROOT/examples/langchain-qdrant"
DEMO="demo-qdrant.sh"
LOGS="vecgate qdrant"
DEMO_COLLECTION=""
# shellcheck source=scripts/demo-lib.sh
source "$ROOT/scripts/demo-lib.sh"

# A real Qdrant keeps data: remove the demo's collection (the test double is in memory).
demo_before_stop() {
    if [[ -n "$DEMO_COLLECTION" && -n "${QDRANT_URL:-}" ]]; then
        curl -fsS -X DELETE ${QDRANT_API_KEY:+-H "api-key: $QDRANT_API_KEY"} \
            "$QDRANT_URL/collections/$DEMO_COLLECTION" >/dev/null 2>&1 || true
    fi
}

# 1, 2. Python venv, vecgate binary, a work directory ---------------------------------------
demo_begin

# 3. Qdrant and vecgate on free loopback ports --------------------------------------------
if [[ -n "${QDRANT_URL:-}" ]]; then
    say "qdrant: using $QDRANT_URL"
    DEMO_COLLECTION="vecgate-demo-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')"
    export VECGATE_COLLECTION="$DEMO_COLLECTION"
    VECGATE_QDRANT_API_KEY="${QDRANT_API_KEY:-}"
    UPSTREAM_URL="$QDRANT_URL"
else
    QDRANT_PORT="$(free_port)"
    UPSTREAM_URL="http://127.0.0.1:$QDRANT_PORT"
    # Qdrant's own API key: only vecgate gets it. The app's tokens are not Qdrant keys.
    VECGATE_QDRANT_API_KEY="qdrant-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
    if [[ -n "${QDRANT_BIN:-}" ]]; then
        say "qdrant: starting the real server $QDRANT_BIN on $UPSTREAM_URL (API key required)"
        mkdir -p "$WORK/qdrant"
        (cd "$WORK/qdrant" && exec env QDRANT__SERVICE__HOST=127.0.0.1 \
            QDRANT__SERVICE__HTTP_PORT="$QDRANT_PORT" QDRANT__SERVICE__GRPC_PORT="$(free_port)" \
            QDRANT__STORAGE__STORAGE_PATH="$WORK/qdrant/storage" \
            QDRANT__STORAGE__SNAPSHOTS_PATH="$WORK/qdrant/snapshots" \
            QDRANT__TELEMETRY_DISABLED=true QDRANT__SERVICE__API_KEY="$VECGATE_QDRANT_API_KEY" \
            "$QDRANT_BIN") >"$WORK/qdrant.log" 2>&1 &
        DEMO_PIDS+=($!)
        wait_for qdrant "$!" "$UPSTREAM_URL/readyz"
    else
        say "qdrant: starting the test double on $UPSTREAM_URL (Qdrant Edge, API key required)"
        # --no-stdin-watch: run until killed (demo_end stops it).
        "$PY" "$ROOT/tests/qdrant_server/server.py" --host 127.0.0.1 --port "$QDRANT_PORT" \
            --api-key "$VECGATE_QDRANT_API_KEY" --storage-dir "$WORK" --no-stdin-watch \
            >"$WORK/qdrant.log" 2>&1 &
        DEMO_PIDS+=($!)
        wait_for qdrant "$!" "$UPSTREAM_URL/healthz"
    fi
fi
export VECGATE_QDRANT_API_KEY
if [[ -z "$VECGATE_QDRANT_API_KEY" ]]; then
    # A Qdrant without an API key (QDRANT_URL without QDRANT_API_KEY): send none upstream.
    start_vecgate "$UPSTREAM_URL" /healthz -e '/^  api_key_env:/d'
else
    start_vecgate "$UPSTREAM_URL" /healthz
fi

# 4-6. The corpus, two users, a refused write ------------------------------------------------
demo_story

# qdrant-client's start-up calls (version check, collection config) are left out.
show_audit root healthz get_collection collection_exists
