# Installs the JavaScript clients of the client matrix (tests/node/package.json, pinned by its
# package-lock.json) into tests/node/node_modules, which git ignores. Sourced by
# scripts/test.sh (not run on its own):
#
#   source scripts/node-clients.sh
#   vecgate_node_clients "$ROOT"     # -> sets NODE_CLIENTS_OUTCOME; exports VECGATE_NODE
#
# Reused as long as the lock file and the Node.js version are unchanged (a hash stamp lives in
# node_modules); reinstalled with `npm ci` otherwise. The clients' optional native bindings
# (chromadb's embedded server for Node) are not installed: the tests only use the HTTP clients.
# Needs Node.js >= 20 (`node`, or VECGATE_NODE) and npm, and access to the npm registry.
# Returns non-zero (after printing why) when it cannot install them.

vecgate_node_clients() {
    local dir="$1/tests/node"
    local node="${VECGATE_NODE:-node}"
    local stamp="$dir/node_modules/.vecgate-lock.sha256"

    if ! command -v "$node" >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "error: Node.js and npm are needed for the client matrix (tests/node); install Node.js >= 20 or set VECGATE_NODE" >&2
        return 1
    fi
    if ! "$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
        echo "error: $node is $("$node" --version); the client matrix needs Node.js >= 20" >&2
        return 1
    fi

    local want have
    want="$( { cat "$dir/package-lock.json"; "$node" --version; } | sha256sum | cut -d' ' -f1)" || return 1
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [[ "$want" == "$have" ]]; then
        printf '\n==> node clients: reusing %s (lock file unchanged)\n' "$dir/node_modules"
        NODE_CLIENTS_OUTCOME="reused"
    else
        local t0=$SECONDS
        printf '\n==> node clients: npm ci in %s\n' "$dir"
        (cd "$dir" && npm ci --omit=optional --no-audit --no-fund --loglevel=error) || return 1
        echo "$want" > "$stamp"
        NODE_CLIENTS_OUTCOME="installed ($((SECONDS - t0))s)"
    fi
    VECGATE_NODE="$(command -v "$node")"
    export VECGATE_NODE
}
