#!/usr/bin/env bash
# Finds a real Qdrant server executable for the tests and the demo; prints its path.
#
#   scripts/qdrant.sh            # stdout: the path, one line; exit 1 (saying why) if none
#
# No package registry serves a Qdrant server, so this never downloads one. In order:
#   1. $QDRANT_BIN, if set (it must be an executable file: a set-but-broken QDRANT_BIN is an
#      error, not a silent fallback);
#   2. `qdrant` on PATH;
#   3. ../shared/qdrant/qdrant-<version>-linux-x86_64.xz beside the repository (the test
#      machines have it; users' clones do not): unpacked once into
#      ${XDG_CACHE_HOME:-~/.cache}/vecgate/qdrant-<version>/qdrant after checking the sha256
#      of the .xz and of the unpacked binary against the ones ../shared/qdrant/README.md gives.
#      A mismatch is an error. The binary is never copied into the repository.
# Exit 1 with "no real Qdrant server found" when none of them applies; exit 2 on an error.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHARED="$(cd .. && pwd)/shared/qdrant"

say() { printf 'qdrant.sh: %s\n' "$*" >&2; }

if [[ -n ${QDRANT_BIN:-} ]]; then
    if [[ -f $QDRANT_BIN && -x $QDRANT_BIN ]]; then
        echo "$QDRANT_BIN"
        exit 0
    fi
    say "QDRANT_BIN=$QDRANT_BIN is not an executable file"
    exit 2
fi

if found="$(command -v qdrant 2>/dev/null)"; then
    echo "$found"
    exit 0
fi

shopt -s nullglob
archives=("$SHARED"/qdrant-*-linux-x86_64.xz)
if [[ ${#archives[@]} -eq 0 ]]; then
    say "no real Qdrant server found (QDRANT_BIN unset, no qdrant on PATH, no $SHARED)"
    exit 1
fi
archive="${archives[-1]}"
version="$(basename "$archive")"
version="${version#qdrant-}"
version="${version%-linux-x86_64.xz}"
readme="$SHARED/README.md"
# The README's lines: "sha256 of the `.xz`: `…`" and "sha256 of the unpacked binary: `…`".
want_xz="$(sed -n 's/.*sha256 of the `\.xz`: `\([0-9a-f]\{64\}\)`.*/\1/p' "$readme" 2>/dev/null | head -1)"
want_bin="$(sed -n 's/.*sha256 of the unpacked binary: `\([0-9a-f]\{64\}\)`.*/\1/p' "$readme" 2>/dev/null | head -1)"
if [[ -z $want_xz || -z $want_bin ]]; then
    say "$readme does not give the sha256 of the .xz and of the binary; not using $archive"
    exit 2
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/vecgate/qdrant-$version"
binary="$cache/qdrant"
mkdir -p "$cache"
# Tests and demos may call this concurrently: one unpacking at a time.
exec 9>"$cache/.lock"
if command -v flock >/dev/null; then flock 9; fi

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -x $binary && "$(sha "$binary")" == "$want_bin" ]]; then
    echo "$binary"
    exit 0
fi
if [[ "$(sha "$archive")" != "$want_xz" ]]; then
    say "$archive: sha256 differs from $readme; not using it"
    exit 2
fi
say "unpacking $archive into $cache (once)"
xz -dc "$archive" > "$binary.tmp"
if [[ "$(sha "$binary.tmp")" != "$want_bin" ]]; then
    rm -f "$binary.tmp"
    say "the unpacked binary's sha256 differs from $readme"
    exit 2
fi
chmod +x "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
