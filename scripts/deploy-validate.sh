#!/usr/bin/env bash
# Runs the external validators over deploy/. Called by tests/deploy.rs, one check per call;
# also usable by hand:  scripts/deploy-validate.sh all [OUTDIR]
#
#   dockerfile   hadolint deploy/Dockerfile
#   prometheus   promtool check rules + promtool test rules (deploy/prometheus)
#   compose      each deploy/compose/docker-compose.*.yaml against the Compose JSON schema
#   kubernetes   kubectl kustomize deploy/kubernetes, then kubernetes-validate --strict on the
#                result and on secret.example.yaml; writes OUTDIR/kustomize.yaml
#   helm         helm lint --strict and helm template for each deploy/helm/vecgate/ci/*.yaml,
#                then kubernetes-validate --strict on each rendering; writes OUTDIR/helm-NAME.yaml
#   all          every check above
#
# VECGATE_DEPLOY_DIR=DIR checks another copy of the deploy/ tree.
# Exit 0: valid. Exit 1: a validator found a problem (its output says which). Exit 2: the
# validators could not be obtained (scripts/deploy-validators.sh says why).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CHECK=${1:?usage: deploy-validate.sh dockerfile|prometheus|compose|kubernetes|helm|all [OUTDIR]}
OUT=${2:-$ROOT/.tmp/deploy-rendered}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# The deploy/ tree to check; tests point it at a deliberately broken copy to prove that each
# validator fails.
DEPLOY=${VECGATE_DEPLOY_DIR:-$ROOT/deploy}

say() { printf 'deploy-validate.sh: %s\n' "$*" >&2; }

TOOLS=$("$ROOT/scripts/deploy-validators.sh") || { say "validators unavailable"; exit 2; }
while IFS='=' read -r name path; do
    case $name in
        PYTHON | KUBERNETES_VALIDATE | HADOLINT | HELM | KUBECTL | COMPOSE_SCHEMA | PROMTOOL)
            printf -v "$name" '%s' "$path" ;;
    esac
done <<< "$TOOLS"

# kubernetes-validate exits 0 on a kind it has no schema for (a warning). Accept that only for
# the Prometheus Operator's ServiceMonitor; any other warning is a failure.
kube_validate() {
    local log rc=0
    log=$("$KUBERNETES_VALIDATE" --strict --quiet "$@" 2>&1) || rc=$?
    [[ -n $log ]] && printf '%s\n' "$log"
    if [[ $rc -ne 0 ]]; then return 1; fi
    if grep -v "Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1" <<< "$log" \
        | grep -q -E '^(WARN|ERROR)'; then
        say "kubernetes-validate warned (see above)"
        return 1
    fi
}

check_dockerfile() {
    say "hadolint deploy/Dockerfile"
    "$HADOLINT" --no-color "$DEPLOY/Dockerfile"
}

check_prometheus() {
    say "promtool check rules / test rules"
    "$PROMTOOL" check rules "$DEPLOY/prometheus/vecgate-alerts.yaml"
    (cd "$DEPLOY/prometheus" && "$PROMTOOL" test rules vecgate-alerts.test.yaml)
}

check_compose() {
    say "compose files against $(basename "$COMPOSE_SCHEMA")"
    "$PYTHON" - "$COMPOSE_SCHEMA" "$DEPLOY"/compose/docker-compose.*.yaml <<'PY'
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
# The schema names draft 2019-09 (with a trailing '#' that jsonschema does not look up).
validator = jsonschema.Draft201909Validator(schema)
failed = False
for path in sys.argv[2:]:
    errors = sorted(validator.iter_errors(yaml.safe_load(open(path))), key=lambda e: list(e.path))
    for e in errors:
        print(f"{path}: {'/'.join(map(str, e.path)) or '(top)'}: {e.message}")
    failed |= bool(errors)
    if not errors:
        print(f"{path}: valid")
sys.exit(1 if failed else 0)
PY
}

check_kubernetes() {
    say "kubectl kustomize deploy/kubernetes | kubernetes-validate"
    "$KUBECTL" kustomize "$DEPLOY/kubernetes" > "$OUT/kustomize.yaml"
    kube_validate "$OUT/kustomize.yaml" "$DEPLOY/kubernetes/secret.example.yaml"
}

check_helm() {
    local values name
    for values in "$DEPLOY"/helm/vecgate/ci/*.yaml; do
        name=$(basename "$values" .yaml)
        say "helm lint / template with $values"
        "$HELM" lint --strict "$DEPLOY/helm/vecgate" -f "$values"
        "$HELM" template vecgate "$DEPLOY/helm/vecgate" -f "$values" --namespace apps > "$OUT/helm-$name.yaml"
        kube_validate "$OUT/helm-$name.yaml"
    done
}

case $CHECK in
    dockerfile | prometheus | compose | kubernetes | helm) "check_$CHECK" ;;
    all) for c in dockerfile prometheus compose kubernetes helm; do "check_$c"; done ;;
    *) say "unknown check: $CHECK"; exit 64 ;;
esac
say "$CHECK: ok"
