#!/usr/bin/env bash
# Prints the path of a binary from Debian's `prometheus` package, obtaining the package without
# root if needed:
#
#   scripts/prometheus.sh             the Prometheus server (`prometheus`)
#   scripts/prometheus.sh promtool    its command-line tool (scripts/promtool.sh calls this)
#
# This script never installs anything system-wide: it downloads the .deb into .tmp/prometheus/
# (inside the repository), unpacks it there with `dpkg-deb -x`, and prints the path of the
# unpacked binary. Both binaries come from the same download; later calls reuse it. The server
# needs nothing else from the package: tests give it its configuration, data directory and
# listen address on the command line and use only its HTTP API, not the web UI.
#
# Order of attempts:
#   1. $VECGATE_PROMETHEUS (for `prometheus`) if set and working (an operator's own binary);
#   2. the cached copy in .tmp/prometheus/;
#   3. `apt-get download prometheus` (unprivileged; needs the apt lists, i.e. an earlier
#      `apt-get update` on the machine);
#   4. the .deb fetched directly from the Debian mirror configured in /etc/apt/sources.list*,
#      at the pool path that `apt-cache show prometheus` reports.
#
# stdout: the path, one line. stderr: what was tried. Exit 1 if no working binary could be had.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="$PWD/.tmp/prometheus"
NAME=${1:-prometheus}

say() { printf 'prometheus.sh: %s\n' "$*" >&2; }

case $NAME in
    prometheus | promtool) ;;
    *) say "usage: prometheus.sh [prometheus|promtool]"; exit 1 ;;
esac
BINARY="$CACHE/root/usr/bin/$NAME"

works() { [[ -x $1 ]] && "$1" --version >/dev/null 2>&1; }

if [[ $NAME == prometheus && -n ${VECGATE_PROMETHEUS:-} ]]; then
    if works "$VECGATE_PROMETHEUS"; then
        echo "$VECGATE_PROMETHEUS"
        exit 0
    fi
    say "VECGATE_PROMETHEUS=$VECGATE_PROMETHEUS is not a working prometheus; ignoring it"
fi

# shellcheck source=scripts/debian-package.sh
source "$PWD/scripts/debian-package.sh"
if debian_package_binary prometheus "$CACHE" "$BINARY"; then
    exit 0
fi
say "no working $NAME could be had"
exit 1
