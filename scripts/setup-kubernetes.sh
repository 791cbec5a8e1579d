#!/usr/bin/env bash
# Build the Kubernetes components a one-node cluster needs, from the Go module
# proxy, into a cache that later runs reuse:
#
#   $PYCRI_K8S_CACHE/<version>/bin/{kube-apiserver,kube-controller-manager,
#                                   kube-scheduler,kubelet,kubectl,etcd}
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the 31
# staging modules (k8s.io/api, k8s.io/client-go, ...) with ./staging paths.
# A throwaway module requires it and points each staging module at its
# published v0.<minor>.<patch> instead. v1.34 rather than newer: from 1.35 the
# kubelet refuses cgroup v1 by default, and the build machines run cgroup v1.
# etcd comes from the proxy too (Debian's 3.4 is older than the API server
# supports).
#
# Prints the bin directory on its last line. Idempotent: a version already
# built is not rebuilt (PYCRI_CI_REBUILD=1 forces it).
set -euo pipefail

K8S_VERSION=${PYCRI_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${PYCRI_ETCD_VERSION:-v3.6.16}
CACHE_ROOT=${PYCRI_K8S_CACHE:-/var/cache/pycri-ci/kubernetes}
REBUILD=${PYCRI_CI_REBUILD:-0}
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

export PATH="$PATH:/usr/local/go/bin"
START_TIME=$SECONDS
log() { printf '[setup-kubernetes %3ds] %s\n' "$((SECONDS - START_TIME))" "$*" >&2; }
die() { printf '[setup-kubernetes] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "'go' is needed (Go >= 1.24 in /usr/local/go)"

BIN_DIR=$CACHE_ROOT/$K8S_VERSION/bin
BUILD_DIR=$CACHE_ROOT/$K8S_VERSION/module
mkdir -p "$BIN_DIR" "$BUILD_DIR"

have_all() {
    local name
    for name in "${COMPONENTS[@]}" etcd; do
        [[ -x $BIN_DIR/$name ]] || return 1
    done
}

if [[ $REBUILD != 1 ]] && have_all; then
    log "Kubernetes $K8S_VERSION and etcd $ETCD_VERSION already built"
    echo "$BIN_DIR"
    exit 0
fi

# -------------------------------------------------------------- kubernetes --
staging_replaces() {  # the published version of every ./staging module
    local gomod minor
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    minor=v0.${K8S_VERSION#v1.}
    awk -v v="$minor" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "replace %s => %s %s\n", $1, $1, v }' "$gomod"
}

build_kubernetes() {
    local replaces count ldflags pkgs=() name
    log "building Kubernetes $K8S_VERSION (${COMPONENTS[*]})"
    replaces=$(staging_replaces)
    count=$(grep -c '^replace' <<<"$replaces")
    ((count > 20)) || die "found only $count staging modules in k8s.io/kubernetes@$K8S_VERSION's go.mod"
    {
        printf 'module pycri.local/kubernetes-build\n\ngo 1.24\n\nrequire k8s.io/kubernetes %s\n\n' "$K8S_VERSION"
        printf '%s\n' "$replaces"
    } >"$BUILD_DIR/go.mod"
    {
        printf '//go:build tools\n\npackage tools\n\nimport (\n'
        for name in "${COMPONENTS[@]}"; do
            printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$name"
        done
        printf ')\n'
    } >"$BUILD_DIR/tools.go"
    (cd "$BUILD_DIR" && go mod tidy) || die "go mod tidy failed for Kubernetes $K8S_VERSION"
    local minor=${K8S_VERSION#v1.}
    minor=${minor%%.*}
    ldflags="-s -w"
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    for name in "${COMPONENTS[@]}"; do
        pkgs+=("k8s.io/kubernetes/cmd/$name")
    done
    (cd "$BUILD_DIR" && CGO_ENABLED=0 go build -p "$(nproc)" -trimpath \
        -ldflags "$ldflags" -o "$BIN_DIR/" "${pkgs[@]}") ||
        die "building Kubernetes $K8S_VERSION failed"
}

# -------------------------------------------------------------------- etcd --
build_etcd() {
    local dir=$CACHE_ROOT/$K8S_VERSION/etcd-module
    log "building etcd $ETCD_VERSION"
    mkdir -p "$dir"
    printf 'module pycri.local/etcd-build\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
        "$ETCD_VERSION" >"$dir/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$dir/tools.go"
    (cd "$dir" && go mod tidy && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
        -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3) || die "building etcd $ETCD_VERSION failed"
}

if [[ $REBUILD == 1 ]] || [[ ! -x $BIN_DIR/etcd ]]; then
    build_etcd
fi
missing=0
for name in "${COMPONENTS[@]}"; do
    [[ -x $BIN_DIR/$name ]] || missing=1
done
if [[ $REBUILD == 1 ]] || ((missing)); then
    build_kubernetes
fi
have_all || die "not every component was built into $BIN_DIR"
"$BIN_DIR/kubelet" --version >&2
log "done"
echo "$BIN_DIR"
