# shellcheck shell=bash
# Sourced by scripts/prometheus.sh and scripts/nginx.sh: obtains one of Debian's packages and
# unpacks it inside the repository, never installing anything system-wide.
#
#   debian_package_unpack PACKAGE CACHE
#
# downloads PACKAGE's .deb into CACHE/debs — with `apt-get download` (unprivileged; needs the
# apt lists, i.e. an earlier `apt-get update`), else from the Debian mirror configured in
# /etc/apt/sources.list*, at the pool path `apt-cache show` reports — and unpacks it into
# CACHE/root with `dpkg-deb -x`. Returns non-zero if neither download worked. The caller defines
# `say MESSAGE…` (to stderr) and holds CACHE's lock.
#
#   debian_package_binary PACKAGE CACHE BINARY
#
# prints BINARY (a path under CACHE/root) once `works BINARY` succeeds: at once if the cached
# copy works, else after debian_package_unpack. It takes CACHE's lock first (file descriptor 9,
# held until the calling script exits), so concurrent callers download once. Returns non-zero if
# no working BINARY could be had. The caller defines `say MESSAGE…` and `works PATH`.

debian_package_unpack() {
    local package=$1 cache=$2
    local debs="$cache/debs"
    rm -rf "$debs"
    mkdir -p "$debs"
    if command -v apt-get >/dev/null && (cd "$debs" && apt-get download "$package" >&2); then
        # As root, apt warns that its sandbox user cannot write here; the download still works.
        say "downloaded with apt-get download"
    elif _debian_package_from_mirror "$package" "$debs"; then
        say "downloaded from the configured Debian mirror"
    else
        say "could not download Debian's $package package (apt-get download and the mirror both failed)"
        return 1
    fi
    local deb
    deb=$(find "$debs" -maxdepth 1 -name '*.deb' | head -n 1)
    if [[ -z $deb ]]; then
        say "no .deb found after download"
        return 1
    fi
    rm -rf "$cache/root"
    mkdir -p "$cache/root"
    dpkg-deb -x "$deb" "$cache/root"
    rm -rf "$debs"
}

debian_package_binary() {
    local package=$1 cache=$2 binary=$3
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if works "$binary"; then
        echo "$binary"
        return 0
    fi
    if debian_package_unpack "$package" "$cache"; then
        if works "$binary"; then
            echo "$binary"
            return 0
        fi
        say "the package unpacked, but $binary does not run"
    fi
    return 1
}

# The mirror URIs from both the deb822 (*.sources) and one-line (*.list) formats.
_debian_mirror_uris() {
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

_debian_package_from_mirror() {
    local package=$1 debs=$2
    command -v apt-cache >/dev/null || { say "apt-cache not found"; return 1; }
    local pool
    pool=$(apt-cache show "$package" 2>/dev/null | awk '$1 == "Filename:" { print $2; exit }')
    if [[ -z $pool ]]; then
        say "apt-cache knows no '$package' package (no apt lists? run 'apt-get update')"
        return 1
    fi
    local uri
    while read -r uri; do
        [[ -n $uri ]] || continue
        local url="${uri%/}/$pool"
        say "fetching $url"
        if command -v curl >/dev/null; then
            curl -fsSL --retry 2 -o "$debs/$package.deb" "$url" && return 0
        elif command -v wget >/dev/null; then
            wget -q -O "$debs/$package.deb" "$url" && return 0
        else
            say "neither curl nor wget found"
            return 1
        fi
    done < <(_debian_mirror_uris | awk '!seen[$0]++')
    return 1
}
