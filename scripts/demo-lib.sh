# shellcheck shell=bash
# What scripts/demo.sh (Chroma) and scripts/demo-qdrant.sh (Qdrant) share: set-up, the
# vecgate process, the story told as two users, the audit tail, and stopping everything.
#
# The sourcing script sets, before calling demo_begin:
#   ROOT     the repository root
#   EXAMPLE  the example directory (vecgate.yaml.template, policies/, app.py, load_corpus.py)
#   DEMO     the script's name, for messages
#   LOGS     names of the logs in $WORK to show when the demo fails (e.g. "vecgate chroma")
# and may define demo_before_stop, run first when the demo ends (however it ends).
# Everything a demo starts goes into DEMO_PIDS and is stopped at the end.

DEMO_PIDS=()
WORK=""
QUESTION="What changes next quarter?"

say() { printf '\n==> %s\n' "$*"; }

demo_end() {
    local rc=$?
    if declare -F demo_before_stop >/dev/null; then demo_before_stop || true; fi
    local pid
    for pid in "${DEMO_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${DEMO_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "$WORK" ]]; then
        if [[ $rc -ne 0 ]]; then
            local log
            for log in $LOGS; do
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
    if [[ $rc -eq 0 ]]; then echo; echo "$DEMO: done"; else echo "$DEMO: FAILED (exit $rc)" >&2; fi
    exit "$rc"
}

# Steps 1 and 2: the Python venv (PY) and the vecgate binary (VECGATE_BIN); a work directory.
demo_begin() {
    trap demo_end EXIT
    trap 'exit 130' INT TERM
    # shellcheck source=scripts/venv.sh
    source "$ROOT/scripts/venv.sh"
    vecgate_venv "$ROOT"
    PY="$VECGATE_PYTHON"
    if [[ -n "${VECGATE_BIN:-}" ]]; then
        say "vecgate: using $VECGATE_BIN"
    else
        say "vecgate: cargo build (debug)"
        cargo build --bin vecgate
        local target_dir="${CARGO_TARGET_DIR:-target}"
        [[ "$target_dir" == /* ]] || target_dir="$ROOT/$target_dir"
        VECGATE_BIN="$target_dir/debug/vecgate"
    fi
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/$DEMO.XXXXXX")"
}

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

# start_vecgate UPSTREAM_URL HEALTH_PATH [sed args…]: vecgate on a free port in front of the
# upstream, configured from the example's template (extra sed arguments edit the result).
start_vecgate() {
    local upstream=$1 health=$2
    shift 2
    local port
    port="$(free_port)"
    export VECGATE_URL="http://127.0.0.1:$port"
    # A fresh development secret per run; the tokens are signed with it.
    VECGATE_JWT_SECRET="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')"
    export VECGATE_JWT_SECRET
    sed -e "s|@LISTEN@|127.0.0.1:$port|" \
        -e "s|@UPSTREAM_URL@|$upstream|" \
        -e "s|@POLICIES_DIR@|$EXAMPLE/policies|" \
        -e "s|@AUDIT_PATH@|$WORK/audit.jsonl|" \
        "$@" "$EXAMPLE/vecgate.yaml.template" >"$WORK/vecgate.yaml"
    say "vecgate: serving on $VECGATE_URL in front of $upstream, policies from ${EXAMPLE#"$ROOT"/}/policies"
    "$VECGATE_BIN" serve --config "$WORK/vecgate.yaml" >"$WORK/vecgate.log" 2>&1 &
    DEMO_PIDS+=($!)
    wait_for vecgate "$!" "$VECGATE_URL$health"
}

# Steps 4 to 6: the corpus loaded as `ingest`, the same question asked by alice and bob, and
# bob's write for another team refused.
demo_story() {
    local mint="$ROOT/examples/langchain-chroma/mint_token.py"
    local ingest alice bob
    ingest="$("$PY" "$mint" --sub loader --role ingest)"
    alice="$("$PY" "$mint" --sub alice --role user --department FINANCE --region EMEA)"
    bob="$("$PY" "$mint" --sub bob --role user --department HR --region AMER)"
    cd "$EXAMPLE"

    say "ingest: the loader (role ingest) stores 8 documents through vecgate"
    VECGATE_TOKEN="$ingest" "$PY" load_corpus.py

    say "alice (role user, FINANCE, EMEA) asks: \"$QUESTION\""
    VECGATE_TOKEN="$alice" "$PY" app.py ask "$QUESTION"
    say "bob (role user, HR, AMER) asks the same: \"$QUESTION\""
    VECGATE_TOKEN="$bob" "$PY" app.py ask "$QUESTION"

    say "bob tries to add a note tagged FINANCE/EMEA (he is HR/AMER): vecgate answers 403"
    if VECGATE_TOKEN="$bob" "$PY" app.py add --id planted-by-bob \
        --department FINANCE --region EMEA "Finance EMEA: wire the bonus pool to account 12345."; then
        echo "error: the write was accepted; vecgate should have refused it" >&2
        exit 1
    fi
    say "alice asks again: the planted note is not there"
    VECGATE_TOKEN="$alice" "$PY" app.py ask "bonus pool account"
}

# demo_explain ID: why bob cannot see record ID, why alice can, and who can read it, asked of the running
# demo's database through vecgate's own configuration (`vecgate explain`, `vecgate who-can`).
demo_explain() {
    local id=$1 mint="$ROOT/examples/langchain-chroma/mint_token.py" alice bob
    alice="$("$PY" "$mint" --sub alice --role user --department FINANCE --region EMEA)"
    bob="$("$PY" "$mint" --sub bob --role user --department HR --region AMER)"
    say "why can't bob see $id? vecgate explain (the record read from the database)"
    "$VECGATE_BIN" explain --config "$WORK/vecgate.yaml" --collection company-docs --id "$id" --token "$bob"
    say "and why can alice? vecgate explain"
    "$VECGATE_BIN" explain --config "$WORK/vecgate.yaml" --collection company-docs --id "$id" --token "$alice"
    say "who can read $id? vecgate who-can"
    "$VECGATE_BIN" who-can --config "$WORK/vecgate.yaml" --collection company-docs --id "$id"
}

# show_audit OPERATION…: the last data requests of the audit log, leaving out the client's own
# start-up calls (the operations named).
show_audit() {
    [[ -s "$WORK/audit.jsonl" ]] || return 0
    say "vecgate's audit log: one JSON line per request ($(wc -l <"$WORK/audit.jsonl") so far); the last data requests:"
    "$PY" - "$WORK/audit.jsonl" "$@" <<'PY'
import json, sys
skip = set(sys.argv[2:])
KEYS = ["subject", "operation", "collection", "action", "decision", "filter",
        "hits_returned", "hits_stripped", "status"]
shown = []
for line in open(sys.argv[1]):
    try:
        event = json.loads(line)
    except ValueError:
        shown.append(line.rstrip()[:200])
        continue
    if event.get("operation") in skip:
        continue
    picked = {k: event[k] for k in KEYS if event.get(k) is not None}
    shown.append(json.dumps(picked or event)[:300])
for line in shown[-6:]:
    print("  " + line)
PY
}
