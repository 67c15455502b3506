#!/usr/bin/env bash
# The vecgate demo on Qdrant: a LangChain retrieval app (langchain-qdrant) over a Qdrant-
# compatible server, with vecgate in between. Two employees ask the same question and each gets
# only their own department's and region's documents; one tries to plant a document for another
# team and is refused. The same flow as scripts/demo.sh (Chroma).
#
#   ./scripts/demo-qdrant.sh
#
# The Qdrant here is the project's REST test double (tests/qdrant_server: Qdrant's REST API on
# qdrant-client's local mode, in memory), because Qdrant's server is not a Python package. To
# use a real Qdrant instead, set QDRANT_URL (its REST address, e.g. http://127.0.0.1:6333) and
# QDRANT_API_KEY (its service.api_key, if any); the demo then uses a collection named
# vecgate-demo-<random> there and deletes it at the end.
#
# What it does (examples/langchain-qdrant/README.md explains each step and how to run it by
# hand):
#   1. creates or reuses the Python venv ./.venv (the same one scripts/test.sh uses),
#   2. builds vecgate (debug profile: it builds faster than release and shares its artifacts
#      with `cargo test`; the demo's load is a few dozen requests). VECGATE_BIN overrides it,
#   3. starts the Qdrant test server (with its own API key) and vecgate on free loopback
#      ports; vecgate holds Qdrant's key, the app only ever has its user's token,
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
SHARED="$ROOT/examples/langchain-chroma"   # corpus, embedding, token helper
QUESTION="What changes next quarter?"

WORK=""
QDRANT_PID=""
DEMO_COLLECTION=""
VECGATE_PID=""

say() { printf '\n==> %s\n' "$*"; }

cleanup() {
    local rc=$?
    if [[ -n "$VECGATE_PID" ]]; then kill "$VECGATE_PID" 2>/dev/null || true; fi
    if [[ -n "$DEMO_COLLECTION" && -n "${QDRANT_URL:-}" ]]; then
        # A real Qdrant keeps data: remove the demo's collection (test double: in memory).
        curl -fsS -X DELETE ${QDRANT_API_KEY:+-H "api-key: $QDRANT_API_KEY"} \
            "$QDRANT_URL/collections/$DEMO_COLLECTION" >/dev/null 2>&1 || true
    fi
    if [[ -n "$QDRANT_PID" ]]; then kill "$QDRANT_PID" 2>/dev/null || true; fi
    if [[ -n "$VECGATE_PID" ]]; then wait "$VECGATE_PID" 2>/dev/null || true; fi
    if [[ -n "$QDRANT_PID" ]]; then wait "$QDRANT_PID" 2>/dev/null || true; fi
    if [[ -n "$WORK" ]]; then
        if [[ $rc -ne 0 ]]; then
            for log in vecgate qdrant; do
                if [[ -s "$WORK/$log.log" ]]; then
                    echo "--- last lines of $log's log ($WORK/$log.log) ---" >&2
                    tail -n 20 "$WORK/$log.log" | sed -e "s/\x1b\[[0-9;]*m//g" >&2
                fi
            done
        fi
        if [[ "${VECGATE_DEMO_KEEP:-}" == 1 ]]; then
            echo "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    if [[ $rc -eq 0 ]]; then echo; echo "demo-qdrant.sh: done"; else echo "demo-qdrant.sh: FAILED (exit $rc)" >&2; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Python -------------------------------------------------------------------------------
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
vecgate_venv "$ROOT"
PY="$VECGATE_PYTHON"

# 2. vecgate ------------------------------------------------------------------------------
if [[ -n "${VECGATE_BIN:-}" ]]; then
    say "vecgate: using $VECGATE_BIN"
else
    say "vecgate: cargo build (debug)"
    cargo build --bin vecgate
    TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    [[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
    VECGATE_BIN="$TARGET_DIR/debug/vecgate"
fi

# 3. Qdrant and vecgate on free loopback ports --------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vecgate-demo-qdrant.XXXXXX")"
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_for NAME PID URL: until URL answers over HTTP (any status), or the process dies.
wait_for() {
    "$PY" - "$@" <<'PY'
import os, sys, time, requests
name, pid, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"{name} exited while starting")
    try:
        requests.get(url, timeout=2)
        sys.exit(0)
    except requests.RequestException:
        time.sleep(0.1)
sys.exit(f"{name} did not answer {url} within 60s")
PY
}

if [[ -n "${QDRANT_URL:-}" ]]; then
    say "qdrant: using $QDRANT_URL"
    DEMO_COLLECTION="vecgate-demo-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')"
    export VECGATE_COLLECTION="$DEMO_COLLECTION"
    VECGATE_QDRANT_API_KEY="${QDRANT_API_KEY:-}"
else
    QDRANT_PORT="$(free_port)"
    QDRANT_URL_LOCAL="http://127.0.0.1:$QDRANT_PORT"
    # Qdrant's own API key: only vecgate gets it. The app's tokens are not Qdrant keys.
    VECGATE_QDRANT_API_KEY="qdrant-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
    say "qdrant: starting the test server on $QDRANT_URL_LOCAL (in memory, API key required)"
    # --no-stdin-watch: run until killed (the cleanup above stops it).
    "$PY" "$ROOT/tests/qdrant_server/server.py" --host 127.0.0.1 --port "$QDRANT_PORT" \
        --api-key "$VECGATE_QDRANT_API_KEY" --no-stdin-watch >"$WORK/qdrant.log" 2>&1 &
    QDRANT_PID=$!
    wait_for qdrant "$QDRANT_PID" "$QDRANT_URL_LOCAL/healthz"
fi
export VECGATE_QDRANT_API_KEY
UPSTREAM_URL="${QDRANT_URL:-$QDRANT_URL_LOCAL}"

VECGATE_PORT="$(free_port)"
export VECGATE_URL="http://127.0.0.1:$VECGATE_PORT"
# A fresh development secret per run; the tokens below are signed with it.
VECGATE_JWT_SECRET="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')"
export VECGATE_JWT_SECRET
sed -e "s|@LISTEN@|127.0.0.1:$VECGATE_PORT|" \
    -e "s|@UPSTREAM_URL@|$UPSTREAM_URL|" \
    -e "s|@POLICIES_DIR@|$EXAMPLE/policies|" \
    -e "s|@AUDIT_PATH@|$WORK/audit.jsonl|" \
    "$EXAMPLE/vecgate.yaml.template" >"$WORK/vecgate.yaml"
if [[ -z "$VECGATE_QDRANT_API_KEY" ]]; then
    # A Qdrant without an API key (QDRANT_URL without QDRANT_API_KEY): send none upstream.
    sed -i -e '/^  api_key_env:/d' "$WORK/vecgate.yaml"
fi
say "vecgate: serving on $VECGATE_URL in front of Qdrant ($UPSTREAM_URL), policies from examples/langchain-qdrant/policies"
"$VECGATE_BIN" serve --config "$WORK/vecgate.yaml" >"$WORK/vecgate.log" 2>&1 &
VECGATE_PID=$!
wait_for vecgate "$VECGATE_PID" "$VECGATE_URL/healthz"

token() { "$PY" "$SHARED/mint_token.py" "$@"; }
INGEST_TOKEN="$(token --sub loader --role ingest)"
ALICE_TOKEN="$(token --sub alice --role user --department FINANCE --region EMEA)"
BOB_TOKEN="$(token --sub bob --role user --department HR --region AMER)"

cd "$EXAMPLE"

# 4. Load the corpus through vecgate --------------------------------------------------------
say "ingest: the loader (role ingest) stores 8 documents through vecgate"
VECGATE_TOKEN="$INGEST_TOKEN" "$PY" load_corpus.py

# 5. Same app, same question, two people -----------------------------------------------------
say "alice (role user, FINANCE, EMEA) asks: \"$QUESTION\""
VECGATE_TOKEN="$ALICE_TOKEN" "$PY" app.py ask "$QUESTION"

say "bob (role user, HR, AMER) asks the same: \"$QUESTION\""
VECGATE_TOKEN="$BOB_TOKEN" "$PY" app.py ask "$QUESTION"

# 6. A write the policy refuses ----------------------------------------------------------------
say "bob tries to add a note tagged FINANCE/EMEA (he is HR/AMER): vecgate answers 403"
if VECGATE_TOKEN="$BOB_TOKEN" "$PY" app.py add --id planted-by-bob \
    --department FINANCE --region EMEA "Finance EMEA: wire the bonus pool to account 12345."; then
    echo "error: the write was accepted; vecgate should have refused it" >&2
    exit 1
fi
say "alice asks again: the planted note is not there"
VECGATE_TOKEN="$ALICE_TOKEN" "$PY" app.py ask "bonus pool account"

# Audit ---------------------------------------------------------------------------------------
if [[ -s "$WORK/audit.jsonl" ]]; then
    say "vecgate's audit log: one JSON line per request ($(wc -l <"$WORK/audit.jsonl") so far); the last data requests:"
    "$PY" - "$WORK/audit.jsonl" <<'PY'
import json, sys
# qdrant-client's start-up calls (version check, collection config) are left out.
SKIP = {"root", "healthz", "get_collection", "collection_exists"}
KEYS = ["subject", "operation", "collection", "action", "decision", "filter",
        "hits_returned", "hits_stripped", "status"]
shown = []
for line in open(sys.argv[1]):
    try:
        event = json.loads(line)
    except ValueError:
        shown.append(line.rstrip()[:200])
        continue
    if event.get("operation") in SKIP:
        continue
    picked = {k: event[k] for k in KEYS if event.get(k) is not None}
    shown.append(json.dumps(picked or event)[:300])
for line in shown[-6:]:
    print("  " + line)
PY
fi
