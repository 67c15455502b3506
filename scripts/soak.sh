#!/usr/bin/env bash
# The soak (issue 8): 1,000 keep-alive connections of mixed reads and writes for 10 minutes
# through the vecgate release binary to a real Chroma server; RSS sampled, every answer
# checked, a differential check at the end. Not part of scripts/test.sh.
#
#   ./scripts/soak.sh                                  # 600 s, 1,000 connections, 30 req/s
#   ./scripts/soak.sh --duration 60                    # a smoke run
#   ./scripts/soak.sh --connections 200 --rate 100     # other flags: --help
#
# Sets up what it needs: the Python venv with the real Chroma (scripts/venv.sh, as
# scripts/test.sh does; an existing interpreter in VECGATE_PYTHON is used as is), a higher
# `ulimit -n`, and the release build (`cargo bench`). The bench starts Chroma and vecgate on
# free loopback ports and stops both when it ends. Exit status non-zero on any FAIL.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

if [[ -n "${VECGATE_PYTHON:-}" && -x "$VECGATE_PYTHON" ]]; then
    printf '==> python: %s (VECGATE_PYTHON)\n' "$VECGATE_PYTHON"
else
    # shellcheck source=scripts/venv.sh
    source "$ROOT/scripts/venv.sh"
    vecgate_venv "$ROOT"
fi

# Each connection is a socket in this process and one in vecgate, which inherits the limit.
want=65536
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $want ]]; then want=$hard; fi
ulimit -n "$want"
printf '==> ulimit -n %s\n' "$(ulimit -n)"

exec cargo bench --bench soak -- "$@"
