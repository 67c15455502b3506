#!/usr/bin/env bash
# Prints the path of an `haproxy` binary, obtaining it without root if needed. Used by the load
# harness (bench/run-load.sh) for its "client → HAProxy (JWT verified) → database" path.
#
# Like scripts/nginx.sh, this never installs anything system-wide: it downloads Debian's
# `haproxy` package and the three libraries it needs that a base system lacks (liblua5.3-0,
# libopentracing-c-wrapper0, libopentracing1) into .tmp/haproxy/, unpacks each there with
# `dpkg-deb -x`, and writes .tmp/haproxy/haproxy, a wrapper that runs the unpacked binary with
# those libraries on LD_LIBRARY_PATH. The harness runs it with its own configuration file; no
# file from the package's /etc is used. Later calls reuse the copy.
#
# Order of attempts:
#   1. $VECGATE_HAPROXY if set and executable (an operator's own binary);
#   2. the cached wrapper in .tmp/haproxy/;
#   3. the packages downloaded with `apt-get download` (needs the apt lists: an earlier
#      `apt-get update`), else from the configured Debian mirror (scripts/debian-package.sh);
#   4. an installed /usr/sbin/haproxy.
#
# stdout: the path, one line. stderr: what was tried. Exit 1 if no haproxy could be had.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="$PWD/.tmp/haproxy"
WRAPPER="$CACHE/haproxy"
PACKAGES=(haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1)

say() { printf 'haproxy.sh: %s\n' "$*" >&2; }

works() { [[ -x $1 ]] && "$1" -v >/dev/null 2>&1; }

if [[ -n ${VECGATE_HAPROXY:-} ]]; then
    if works "$VECGATE_HAPROXY"; then
        echo "$VECGATE_HAPROXY"
        exit 0
    fi
    say "VECGATE_HAPROXY=$VECGATE_HAPROXY is not a working haproxy; ignoring it"
fi

# shellcheck source=scripts/debian-package.sh
source "$PWD/scripts/debian-package.sh"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then flock 9; fi
if works "$WRAPPER"; then
    echo "$WRAPPER"
    exit 0
fi

unpacked=1
for package in "${PACKAGES[@]}"; do
    if ! debian_package_unpack "$package" "$CACHE/pkg/$package"; then
        unpacked=0
        break
    fi
done
if [[ $unpacked -eq 1 ]]; then
    libs=""
    for package in "${PACKAGES[@]:1}"; do
        for dir in "$CACHE/pkg/$package/root/usr/lib/x86_64-linux-gnu" "$CACHE/pkg/$package/root/usr/lib"; do
            [[ -d $dir ]] && libs="$libs${libs:+:}$dir"
        done
    done
    cat >"$WRAPPER" <<WRAP
#!/bin/sh
# Written by scripts/haproxy.sh: Debian's haproxy with its unpacked libraries.
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$CACHE/pkg/haproxy/root/usr/sbin/haproxy" "\$@"
WRAP
    chmod +x "$WRAPPER"
    if works "$WRAPPER"; then
        echo "$WRAPPER"
        exit 0
    fi
    say "the packages unpacked, but $WRAPPER does not run: $("$WRAPPER" -v 2>&1 | head -3)"
fi

if works /usr/sbin/haproxy; then
    say "using the installed /usr/sbin/haproxy"
    echo /usr/sbin/haproxy
    exit 0
fi
say "no haproxy available"
exit 1
