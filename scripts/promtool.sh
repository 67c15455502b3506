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

DEBS="$CACHE/debs"
rm -rf "$DEBS"
mkdir -p "$DEBS"

download_with_apt() {
    command -v apt-get >/dev/null || { say "apt-get not found"; return 1; }
    # As root, apt warns that its sandbox user cannot write here; the download still works.
    (cd "$DEBS" && apt-get download prometheus >&2)
}

# The mirror URIs from both the deb822 (*.sources) and one-line (*.list) formats.
mirror_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
}

download_from_mirror() {
    command -v apt-cache >/dev/null || { say "apt-cache not found"; return 1; }
    local pool
    pool=$(apt-cache show prometheus 2>/dev/null | awk '$1 == "Filename:" { print $2; exit }')
    if [[ -z $pool ]]; then
        say "apt-cache knows no 'prometheus' package (no apt lists? run 'apt-get update')"
        return 1
    fi
    local uri
    while read -r uri; do
        [[ -n $uri ]] || continue
        local url="${uri%/}/$pool"
        say "fetching $url"
        if command -v curl >/dev/null; then
            curl -fsSL --retry 2 -o "$DEBS/prometheus.deb" "$url" && return 0
        elif command -v wget >/dev/null; then
            wget -q -O "$DEBS/prometheus.deb" "$url" && return 0
        else
            say "neither curl nor wget found"
            return 1
        fi
    done < <(mirror_uris | awk '!seen[$0]++')
    return 1
}

if download_with_apt; then
    say "downloaded with apt-get download"
elif download_from_mirror; then
    say "downloaded from the configured Debian mirror"
else
    say "could not obtain Debian's prometheus package (apt-get download and the mirror both failed)"
    exit 1
fi

DEB=$(find "$DEBS" -maxdepth 1 -name '*.deb' | head -n 1)
if [[ -z $DEB ]]; then
    say "no .deb found after download"
    exit 1
fi
rm -rf "$CACHE/root"
mkdir -p "$CACHE/root"
dpkg-deb -x "$DEB" "$CACHE/root"
rm -rf "$DEBS"

if works "$BINARY"; then
    echo "$BINARY"
    exit 0
fi
say "the package unpacked, but $BINARY does not run"
exit 1
