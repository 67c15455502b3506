#!/usr/bin/env bash
# Prints the path of the pinned Cerbos PDP binary (the oracle of the PDP differential tests),
# obtaining it without root if needed.
#
# The Cerbos project publishes its Linux binary to the npm registry as the package
# @cerbos/cerbos-linux-x64. This script runs `npm pack` for the pinned version into
# .tmp/cerbos/ (inside the repository), checks the tarball's SHA-256 against the value pinned
# below, unpacks `package/cerbos-linux-x64` there and prints its path. Later calls reuse it.
#
# Order of attempts:
#   1. $VECGATE_CERBOS if set and it is a working cerbos of the pinned version;
#   2. the cached copy in .tmp/cerbos/;
#   3. `npm pack` from the registry npm is configured for (a mirror works too; the checksum
#      is what is trusted, not the source).
#
# stdout: the path, one line. stderr: what was tried. Exit 1 if no binary could be had.
set -euo pipefail

VERSION=0.55.0
# sha256 of cerbos-cerbos-linux-x64-0.55.0.tgz as published on registry.npmjs.org.
SHA256=dab3152a1530bec16b945473e9aea9af493fee123c477c4196a990fad58656d1

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="$PWD/.tmp/cerbos/$VERSION"
BINARY="$CACHE/package/cerbos-linux-x64"

say() { printf 'cerbos.sh: %s\n' "$*" >&2; }

works() { [[ -x $1 ]] && "$1" --version 2>/dev/null | head -n1 | grep -qx "$VERSION"; }

if [[ -n ${VECGATE_CERBOS:-} ]]; then
    if works "$VECGATE_CERBOS"; then
        echo "$VECGATE_CERBOS"
        exit 0
    fi
    say "VECGATE_CERBOS=$VECGATE_CERBOS is not a working cerbos $VERSION; ignoring it"
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) say "only linux x86_64 is pinned (package @cerbos/cerbos-linux-x64); this is $(uname -s)/$(uname -m)"; exit 1 ;;
esac

mkdir -p "$CACHE"
# Tests may call this concurrently: one download at a time.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then flock 9; fi

if works "$BINARY"; then
    echo "$BINARY"
    exit 0
fi

if ! command -v npm >/dev/null; then
    say "npm is not installed; it is needed once to fetch @cerbos/cerbos-linux-x64@$VERSION"
    exit 1
fi
say "fetching @cerbos/cerbos-linux-x64@$VERSION from the npm registry"
TARBALL="$CACHE/cerbos-cerbos-linux-x64-$VERSION.tgz"
rm -f "$TARBALL"
(cd "$CACHE" && npm pack --silent "@cerbos/cerbos-linux-x64@$VERSION" >/dev/null)
if [[ ! -f $TARBALL ]]; then
    say "npm pack did not produce $TARBALL"
    exit 1
fi
GOT=$(sha256sum "$TARBALL" | cut -d' ' -f1)
if [[ $GOT != "$SHA256" ]]; then
    say "checksum mismatch for $TARBALL: got $GOT, pinned $SHA256; refusing it"
    rm -f "$TARBALL"
    exit 1
fi
rm -rf "$CACHE/package"
tar -xzf "$TARBALL" -C "$CACHE" package/cerbos-linux-x64
chmod +x "$BINARY"
if works "$BINARY"; then
    echo "$BINARY"
    exit 0
fi
say "the unpacked binary does not run: $BINARY"
exit 1
