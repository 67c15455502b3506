#!/usr/bin/env bash
# Prints the path of a `promtool` binary, obtaining it without root if needed.
#
# promtool ships in Debian's `prometheus` package, which scripts/prometheus.sh downloads and
# unpacks inside the repository (.tmp/prometheus/, shared with the Prometheus server the alert
# tests run); nothing is installed system-wide.
#
# Order of attempts:
#   1. $PROMTOOL if set and executable (an operator's own binary);
#   2. `scripts/prometheus.sh promtool` (the cached copy, else the package's download).
#
# stdout: the path, one line. stderr: what was tried. Exit 1 if no promtool could be had.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'promtool.sh: %s\n' "$*" >&2; }

works() { [[ -x $1 ]] && "$1" --version >/dev/null 2>&1; }

if [[ -n ${PROMTOOL:-} ]]; then
    if works "$PROMTOOL"; then
        echo "$PROMTOOL"
        exit 0
    fi
    say "PROMTOOL=$PROMTOOL is not a working promtool; ignoring it"
fi

exec "$PWD/scripts/prometheus.sh" promtool
