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

# shellcheck source=scripts/debian-package.sh
source "$PWD/scripts/debian-package.sh"
if debian_package_binary "$PACKAGE" "$CACHE" "$BINARY"; then
    exit 0
fi

if works /usr/sbin/nginx; then
    say "using the installed /usr/sbin/nginx"
    echo /usr/sbin/nginx
    exit 0
fi
say "no nginx available"
exit 1
