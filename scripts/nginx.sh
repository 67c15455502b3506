#!/usr/bin/env bash
# Prints the path of an `nginx` binary, obtaining it without root if needed. Used by the load
# harness (bench/run-load.sh) for its "client → nginx → database" path.
#
# This script never installs anything system-wide: it downloads Debian's `nginx` package into
# .tmp/nginx/ (inside the repository), unpacks it there with `dpkg-deb -x`, and prints the path
# of the unpacked binary. The binary needs only libc, libcrypt, libpcre2, libssl3 and zlib; the
# harness runs it with `-p <prefix> -c <conf>` and its own temp, pid and log paths, so nothing
# from nginx-common (/etc/nginx, /var/lib/nginx) is needed. Later calls reuse the copy.
#
# Order of attempts:
#   1. $VECGATE_NGINX if set and executable (an operator's own binary);
#   2. the cached copy in .tmp/nginx/;
#   3. `apt-get download nginx` (unprivileged; needs the apt lists, i.e. an earlier
#      `apt-get update` on the machine);
#   4. the .deb fetched directly from the Debian mirror configured in /etc/apt/sources.list*,
#      at the pool path that `apt-cache show nginx` reports;
#   5. an installed /usr/sbin/nginx.
#
# stdout: the path, one line. stderr: what was tried. Exit 1 if no nginx could be had.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="$PWD/.tmp/nginx"
BINARY="$CACHE/root/usr/sbin/nginx"
PACKAGE=nginx

say() { printf 'nginx.sh: %s\n' "$*" >&2; }

works() { [[ -x $1 ]] && "$1" -v >/dev/null 2>&1; }

if [[ -n ${VECGATE_NGINX:-} ]]; then
    if works "$VECGATE_NGINX"; then
        echo "$VECGATE_NGINX"
        exit 0
    fi
    say "VECGATE_NGINX=$VECGATE_NGINX is not a working nginx; ignoring it"
fi

mkdir -p "$CACHE"
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
    (cd "$DEBS" && apt-get download "$PACKAGE" >&2)
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
    pool=$(apt-cache show "$PACKAGE" 2>/dev/null | awk '$1 == "Filename:" { print $2; exit }')
    if [[ -z $pool ]]; then
        say "apt-cache knows no '$PACKAGE' package (no apt lists? run 'apt-get update')"
        return 1
    fi
    local uri
    while read -r uri; do
        [[ -n $uri ]] || continue
        local url="${uri%/}/$pool"
        say "fetching $url"
        if command -v curl >/dev/null; then
            curl -fsSL --retry 2 -o "$DEBS/$PACKAGE.deb" "$url" && return 0
        elif command -v wget >/dev/null; then
            wget -q -O "$DEBS/$PACKAGE.deb" "$url" && return 0
        else
            say "neither curl nor wget found"
            return 1
        fi
    done < <(mirror_uris | awk '!seen[$0]++')
    return 1
}

unpack() {
    local deb
    deb=$(find "$DEBS" -maxdepth 1 -name '*.deb' | head -n 1)
    if [[ -z $deb ]]; then
        say "no .deb found after download"
        return 1
    fi
    rm -rf "$CACHE/root"
    mkdir -p "$CACHE/root"
    dpkg-deb -x "$deb" "$CACHE/root"
    rm -rf "$DEBS"
    works "$BINARY" || { say "the package unpacked, but $BINARY does not run"; return 1; }
}

if download_with_apt; then
    say "downloaded with apt-get download"
    if unpack; then echo "$BINARY"; exit 0; fi
elif download_from_mirror; then
    say "downloaded from the configured Debian mirror"
    if unpack; then echo "$BINARY"; exit 0; fi
else
    say "could not download Debian's $PACKAGE package (apt-get download and the mirror both failed)"
fi

if works /usr/sbin/nginx; then
    say "using the installed /usr/sbin/nginx"
    echo /usr/sbin/nginx
    exit 0
fi
say "no nginx available"
exit 1
