#!/usr/bin/env bash
# vecgate explain and vecgate who-can, offline, on this folder's policies and one record:
# who can read the budget note, in each evaluation mode, and why bob (an HR user and a
# low-clearance auditor) cannot while alice (a FINANCE EMEA user) can only under `cerbos`.
#
#   ./examples/explain-who-can/run.sh          # builds vecgate (debug) unless VECGATE_BIN is set
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ -z "${VECGATE_BIN:-}" ]]; then
    cargo build --quiet --bin vecgate
    VECGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/vecgate"
fi
POLICIES=examples/explain-who-can/policies
# The note carries no `embargoed` attribute: the embargo DENY errors on it.
RECORD='{"department":"FINANCE","region":"EMEA","topic":"budget","sensitivity":2}'
BOB='{"id":"bob","roles":["user","auditor"],"attr":{"department":"HR","region":"AMER","clearance":1}}'
ALICE='{"id":"alice","roles":["user"],"attr":{"department":"FINANCE","region":"EMEA"}}'
record=(--kind document --id fin-emea-budget --record "$RECORD")

for mode in cerbos fail-closed; do
    printf '\n==> vecgate who-can (--evaluation %s)\n' "$mode"
    "$VECGATE_BIN" who-can --policies "$POLICIES" "${record[@]}" --evaluation "$mode"
done
printf '\n==> vecgate explain: bob\n'
"$VECGATE_BIN" explain --policies "$POLICIES" "${record[@]}" --principal "$BOB"
printf '\n==> vecgate explain: alice, under fail_closed (the erroring DENY applies)\n'
"$VECGATE_BIN" explain --policies "$POLICIES" "${record[@]}" --principal "$ALICE" --evaluation fail-closed
