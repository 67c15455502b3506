#!/usr/bin/env bash
# Prints the path of a `promtool` binary, obtaining it without root if needed.
#
# promtool ships in Debian's `prometheus` package. This script never installs anything
# system-wide: it downloads the .deb into .tmp/promtool/ (inside the repository), unpacks it
# there with `dpkg-deb -x`, and prints the path of the unpacked binary. Later calls reuse it.
#
# Order of attempts:
#   1. $PROMTOOL if set and executable (an operator's own binary);
#   2. the cached copy in .tmp/promtool/;
#   3. `apt-get download prometheus` (unprivileged; needs the apt lists, i.e. an earlier
#      `apt-get update` on the machine);
#   4. the .deb fetched directly from the Debian mirror configured in /etc/apt/sources.list*,
#      at the pool path that `apt-cache show prometheus` reports.
#
# stdout: the path, one line. stderr: what was tried. Exit 1 if no promtool could be had.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="$PWD/.tmp/promtool"
BINARY="$CACHE/root/usr/bin/promtool"

say() { printf 'promtool.sh: %s\n' "$*" >&2; }

works() { [[ -x $1 ]] && "$1" --version >/dev/null 2>&1; }

if [[ -n ${PROMTOOL:-} ]]; then
    if works "$PROMTOOL"; then
        echo "$PROMTOOL"
        exit 0
    fi
    say "PROMTOOL=$PROMTOOL is not a working promtool; ignoring it"
fi

mkdir -p "$CACHE"
# Tests may call this concurrently: one download at a time.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then flock 9; fi

if works "$BINARY"; then
    echo "$BINARY"
    exit 0
fi

# shellcheck source=scripts/debian-package.sh
source "$PWD/scripts/debian-package.sh"
if debian_package_unpack prometheus "$CACHE" && works "$BINARY"; then
    echo "$BINARY"
    exit 0
fi
say "no working promtool could be had"
exit 1
