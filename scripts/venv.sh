# Creates or reuses the project's Python virtualenv. Sourced by scripts/test.sh and
# scripts/demo.sh (not run on its own), so both use the same ./.venv and the same stamp.
#
#   source scripts/venv.sh
#   vecgate_venv "$ROOT"        # -> sets VENV, VENV_OUTCOME; exports VECGATE_PYTHON
#
# The venv gets tests/python/requirements.txt (the real chromadb with its Rust server,
# langchain-chroma, qdrant-client, langchain-qdrant, pytest, PyJWT, requests). It is reused as
# long as that file and the base interpreter are unchanged (a hash stamp lives inside the
# venv) and rebuilt from scratch otherwise. The base interpreter is `python3`, or
# VECGATE_BASE_PYTHON; it must be Python >= 3.10 with the venv module.
# Returns non-zero (after printing why) when it cannot build the venv.

vecgate_venv() {
    local root=$1
    local requirements="$root/tests/python/requirements.txt"
    # The client matrix's framework integrations (llama-index, haystack): a file of their own.
    local requirements_clients="$root/tests/python/requirements-clients.txt"
    local base_python="${VECGATE_BASE_PYTHON:-python3}"
    VENV="$root/.venv"
    local stamp="$VENV/.vecgate-requirements.sha256"

    if ! command -v "$base_python" >/dev/null 2>&1; then
        echo "error: $base_python not found; install Python >= 3.10 or set VECGATE_BASE_PYTHON" >&2
        return 1
    fi
    if ! "$base_python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
        echo "error: $base_python is $("$base_python" --version 2>&1); Python >= 3.10 is needed" >&2
        return 1
    fi

    # The stamp covers the requirements and the base interpreter the venv was built from.
    local want have
    want="$("$base_python" - "$requirements" "$requirements_clients" <<'PY'
import hashlib, sys
h = hashlib.sha256(open(sys.argv[1], "rb").read())
h.update(open(sys.argv[2], "rb").read())
h.update(f"{sys.version} {sys.executable}".encode())
print(h.hexdigest())
PY
)" || return 1
    have="$(cat "$stamp" 2>/dev/null || true)"

    if [[ "$want" == "$have" && -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'pass' 2>/dev/null; then
        printf '\n==> python venv: reusing %s (requirements unchanged)\n' "$VENV"
        VENV_OUTCOME="reused"
    else
        local t0=$SECONDS
        printf '\n==> python venv: creating %s and installing %s (one to two minutes)\n' \
            "$VENV" "${requirements#"$root"/}"
        rm -rf "$VENV"
        if ! "$base_python" -m venv "$VENV"; then
            echo "error: '$base_python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
            return 1
        fi
        "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
            --quiet -r "$requirements" -r "$requirements_clients" || return 1
        "$VENV/bin/python" -c 'import chromadb, chromadb_rust_bindings, langchain_chroma, langchain_core, qdrant_client, langchain_qdrant, jwt, requests, pytest' \
            || return 1
        echo "$want" > "$stamp"
        VENV_OUTCOME="installed ($((SECONDS - t0))s)"
    fi
    export VECGATE_PYTHON="$VENV/bin/python"
}
