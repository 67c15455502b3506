#!/usr/bin/env bash
# Builds the vecgate binary of an older commit, for the load harness to run beside the
# current build (VECGATE_BASELINE_BIN), and prints the binary's path.
#
#   bench/build-baseline.sh 17de062          # -> .tmp/baseline/vecgate-17de062
#   VECGATE_BASELINE_BIN=before=$(bench/build-baseline.sh 17de062) bench/run-load.sh --quick
#
# The commit is checked out in a temporary clone of this repository and built there in
# release mode with a target directory of its own (so the worktree's is left alone); clone and
# target directory are deleted afterwards, only the binary is kept. A binary already built for
# that commit is reused.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
commit=${1:?usage: bench/build-baseline.sh COMMIT}
short=$(git rev-parse --short "$commit^{commit}")
out="$ROOT/.tmp/baseline/vecgate-$short"
if [[ -x $out ]]; then
    echo "$out"
    exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/vecgate-baseline-XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-checkout "$ROOT" "$work/src" >&2
git -C "$work/src" checkout --quiet "$short"
(cd "$work/src" && CARGO_TARGET_DIR="$work/target" cargo build --release --bin vecgate >&2)
mkdir -p "$(dirname "$out")"
cp "$work/target/release/vecgate" "$out"
echo "$out"
