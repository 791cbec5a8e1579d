#!/usr/bin/env bash
# Bring up real container runtimes on a Debian 12 build machine (root, no
# container registry reachable; Debian, PyPI and the Go module proxy are).
#
#   - Debian packages: docker.io containerd runc containernetworking-plugins
#     busybox-static docker-registry iptables
#   - crictl and nerdctl built with the Go toolchain into /usr/local/bin
#   - containerd (own config, CRI plugin usable), dockerd on top of it,
#     and a local registry on 127.0.0.1:5000
#   - busybox and pause images built locally, pushed/imported where needed
#
# Idempotent: every step checks whether it is already done. Safe to re-run.
# Stop the daemons again with scripts/teardown-runtimes.sh.
#
# Environment knobs (all optional):
#   PYCRI_CI_WAIT      seconds to wait for each daemon (default 60)
#   PYCRI_CI_REBUILD=1 rebuild and re-import the images even if present
set -euo pipefail

CRICTL_MOD=sigs.k8s.io/cri-tools
CRICTL_PKG=sigs.k8s.io/cri-tools/cmd/crictl
CRICTL_VERSION=v1.36.0
NERDCTL_MOD=github.com/containerd/nerdctl
NERDCTL_PKG=github.com/containerd/nerdctl/cmd/nerdctl
NERDCTL_VERSION=v1.7.7

APT_PACKAGES=(docker.io containerd runc containernetworking-plugins
              busybox-static docker-registry iptables curl ca-certificates)

CONF_DIR=/etc/pycri-ci
CNI_CONF_DIR=$CONF_DIR/cni/net.d
LOG_DIR=/var/log/pycri-ci
STATE_DIR=/var/lib/pycri-ci
RUN_DIR=/run/pycri-ci
BIN_DIR=/usr/local/bin
CNI_BIN_DIR=/usr/lib/cni

CONTAINERD_SOCK=/run/containerd/containerd.sock
DOCKER_SOCK=/var/run/docker.sock
REGISTRY_ADDR=127.0.0.1:5000
CONTAINERD_CERTS_D=/etc/containerd/certs.d
# Docker has no per-registry mirrors: docker.io names go to the local registry
# through this mirror (the other registries through /etc/hosts, see
# scripts/setup-critest.sh). Nothing else is reachable anyway.
DOCKER_MIRROR=http://$REGISTRY_ADDR

BUSYBOX_REF=busybox:latest
BUSYBOX_FULL_REF=docker.io/library/busybox:latest
PAUSE_REF=registry.k8s.io/pause:3.9
PUSH_REF=$REGISTRY_ADDR/pycri/busybox:latest
CTR_NAMESPACES=(k8s.io pycri)

WAIT_SECONDS=${PYCRI_CI_WAIT:-60}
REBUILD=${PYCRI_CI_REBUILD:-0}

# Go from the official tarball is usually in /usr/local/go; CI may not have it
# on PATH. /usr/sbin holds dockerd, runc and iptables.
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"

START_TIME=$SECONDS
log() { printf '[setup-runtimes %3ds] %s\n' "$((SECONDS - START_TIME))" "$*"; }
die() { printf '[setup-runtimes] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root"

TMP_ROOT=$(mktemp -d /tmp/pycri-setup.XXXXXX)
trap 'rm -rf "$TMP_ROOT"' EXIT

mkdir -p "$CONF_DIR" "$CNI_CONF_DIR" "$LOG_DIR" "$STATE_DIR/registry" "$RUN_DIR"

# write_file PATH: write stdin to PATH if the content differs; sets
# FILES_CHANGED=1 when it wrote. (Status goes through a global rather than the
# return code: `f && x` would switch off `set -e` inside f.)
FILES_CHANGED=0
write_file() {
    local path=$1 tmp
    tmp=$(mktemp "$TMP_ROOT/file.XXXXXX")
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        return 0
    fi
    install -m 0644 "$tmp" "$path"
    FILES_CHANGED=1
}

# ---------------------------------------------------------------- packages --
pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

install_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "apt: all packages present"
        return
    fi
    log "apt: installing ${missing[*]}"
    # Keep the packages' init scripts from starting daemons with their stock
    # configuration (Debian's registry would listen on 0.0.0.0:5000 and
    # containerd would lack restrict_oom_score_adj). We start them ourselves.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local rc=0
    apt-get update -qq || rc=$?
    if ((rc == 0)); then
        apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    fi
    ((created_policy)) && rm -f "$policy"
    ((rc == 0)) || die "apt-get failed (exit $rc) installing: ${missing[*]}"
}

# ---------------------------------------------------------------- go tools --
go_mod_version() {  # BINARY MODULE -> version recorded in the binary, or ""
    [[ -x $1 ]] || return 0
    go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

go_tool() {  # NAME MODULE PACKAGE VERSION
    local name=$1 mod=$2 pkg=$3 ver=$4 target=$BIN_DIR/$1 have
    command -v go >/dev/null || die "'go' is needed to build $name but is not on PATH (install Go >= 1.24 in /usr/local/go; Debian 12's golang-go is too old)"
    have=$(go_mod_version "$target" "$mod")
    if [[ $have == "$ver" ]]; then
        log "$name $ver already installed"
        return
    fi
    log "building $name $ver (found: ${have:-none})"
    if GOBIN=$BIN_DIR go install "$pkg@$ver"; then
        return
    fi
    # `go install pkg@version` also looks up the module's deprecation notice,
    # which needs the proxy's version list; when that list is refused (seen
    # here for nerdctl: ".../@v/list: 403 Forbidden") fall back to building
    # from a throwaway module that requires exactly that version. The build
    # list is the same as go install's (the module has no replace/exclude).
    log "go install failed; building $name from a throwaway module instead"
    local dir
    dir=$(mktemp -d "$TMP_ROOT/gobuild.XXXXXX")
    printf 'module pycri.local/build-%s\n\ngo 1.21\n\nrequire %s %s\n' "$name" "$mod" "$ver" >"$dir/go.mod"
    (cd "$dir" && go build -mod=mod -o "$dir/$name" "$pkg") || die "could not build $name $ver"
    install -m 0755 "$dir/$name" "$target"
    [[ $(go_mod_version "$target" "$mod") == "$ver" ]] || die "$target does not report $mod $ver"
}

# ---------------------------------------------------------------- daemons ---
# start_daemon NAME CMD...: run CMD detached (own session), log to
# $LOG_DIR/NAME.log, pid in $RUN_DIR/NAME.pid.
start_daemon() {
    local name=$1
    shift
    {
        printf '\n===== %s starting %s: %s\n' "$(date -Is)" "$name" "$*"
    } >>"$LOG_DIR/$name.log"
    setsid "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
    disown || true
}

# wait_for NAME PROBE...: poll PROBE until it succeeds, the daemon dies or
# WAIT_SECONDS pass.
wait_for() {
    local name=$1 pid deadline
    shift
    pid=$(cat "$RUN_DIR/$name.pid")
    deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOG_DIR/$name.log" >&2 || true
            die "$name (pid $pid) exited during startup; log: $LOG_DIR/$name.log (tail above)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$LOG_DIR/$name.log" >&2 || true
            die "$name (pid $pid) did not answer within ${WAIT_SECONDS}s; log: $LOG_DIR/$name.log (tail above)"
        fi
        sleep 0.5
    done
}

containerd_up() {
    [[ -S $CONTAINERD_SOCK ]] &&
        timeout 10 ctr --address "$CONTAINERD_SOCK" --connect-timeout 2s version >/dev/null 2>&1
}
docker_up() {
    [[ -S $DOCKER_SOCK ]] && timeout 10 docker -H "unix://$DOCKER_SOCK" version >/dev/null 2>&1
}
docker_has_mirror() {
    docker info --format '{{json .RegistryConfig.Mirrors}}' 2>/dev/null | grep -qF "\"$DOCKER_MIRROR"
}
registry_up() { curl -sf -m 5 -o /dev/null "http://$REGISTRY_ADDR/v2/"; }

write_containerd_config() {
    write_file "$CONF_DIR/containerd.toml" <<EOF
# Written by scripts/setup-runtimes.sh -- do not edit, rerun the script.
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_REF"
    # This VM forbids lowering oom_score_adj; without this every sandbox
    # fails with "can't get final child's PID from pipe: EOF".
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    # Per-registry hosts (mirrors, CAs) live in /etc/containerd/certs.d/<host>/
    # hosts.toml, the directory nerdctl reads by default too; critest's images
    # are served from the local registry that way (scripts/setup-critest.sh).
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$CONTAINERD_CERTS_D"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CNI_BIN_DIR"
      conf_dir = "$CNI_CONF_DIR"
      max_conf_num = 1
EOF
    # The CRI plugin uses the first conflist in conf_dir. It is a separate
    # directory from /etc/cni/net.d, where nerdctl writes its own networks.
    write_file "$CNI_CONF_DIR/10-pycri-bridge.conflist" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "pycri-cri",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "pycri0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

start_containerd() {
    FILES_CHANGED=0
    write_containerd_config
    if containerd_up; then
        log "containerd already answering on $CONTAINERD_SOCK"
        ((FILES_CHANGED == 0)) || log "WARNING: $CONF_DIR changed; restart containerd (teardown + setup) to apply it"
        return
    fi
    log "starting containerd"
    start_daemon containerd containerd --config "$CONF_DIR/containerd.toml"
    wait_for containerd containerd_up
    log "containerd up (pid $(cat "$RUN_DIR/containerd.pid"))"
}

check_cri_config() {
    # A containerd started by someone else (e.g. a systemd unit with the stock
    # config) lacks restrict_oom_score_adj and cannot run pod sandboxes here.
    local info
    info=$(timeout 10 crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 5s info 2>/dev/null || true)
    if ! grep -q '"restrictOOMScoreAdj": true' <<<"$info"; then
        log "WARNING: containerd's CRI plugin does not report restrictOOMScoreAdj=true;"
        log "WARNING: pod sandboxes will fail. Stop that containerd and rerun this script."
    fi
}

start_dockerd() {
    if docker_up; then
        log "dockerd already answering on $DOCKER_SOCK"
        docker_has_mirror || log "WARNING: dockerd lacks --registry-mirror $DOCKER_MIRROR; restart it (teardown + setup) to apply it"
        return
    fi
    log "starting dockerd"
    start_daemon dockerd dockerd --containerd="$CONTAINERD_SOCK" -H "unix://$DOCKER_SOCK" \
        --registry-mirror "$DOCKER_MIRROR"
    wait_for dockerd docker_up
    log "dockerd up (pid $(cat "$RUN_DIR/dockerd.pid"))"
}

start_registry() {
    FILES_CHANGED=0
    write_file "$CONF_DIR/registry.yml" <<EOF
# Written by scripts/setup-runtimes.sh -- do not edit, rerun the script.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    if registry_up; then
        log "registry already answering on $REGISTRY_ADDR"
        ((FILES_CHANGED == 0)) || log "WARNING: $CONF_DIR/registry.yml changed; restart the registry to apply it"
        return
    fi
    log "starting registry on $REGISTRY_ADDR"
    start_daemon registry /usr/bin/docker-registry serve "$CONF_DIR/registry.yml"
    wait_for registry registry_up
    log "registry up (pid $(cat "$RUN_DIR/registry.pid"))"
}

# ---------------------------------------------------------------- images ----
have_docker_image() { docker image inspect "$1" >/dev/null 2>&1; }
have_ctr_image() { ctr -n "$1" images ls -q 2>/dev/null | grep -qxF "$2"; }

busybox_binary() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        if [[ -x $b ]] && ! ldd "$b" >/dev/null 2>&1; then  # static
            echo "$b"
            return
        fi
    done
    die "no static busybox found (package busybox-static)"
}

make_busybox_rootfs() {  # DIR
    local dir=$1 applet
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,var/tmp,tmp,proc,sys,dev}
    chmod 1777 "$dir/tmp" "$dir/var/tmp"
    chmod 0700 "$dir/root"
    install -m 0755 "$(busybox_binary)" "$dir/bin/busybox"
    # --list-full gives each applet's canonical path (bin/sh, usr/bin/env, ...)
    while read -r applet; do
        [[ $applet == bin/busybox ]] && continue
        ln -sf /bin/busybox "$dir/$applet"
    done < <("$dir/bin/busybox" --list-full)
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$dir/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$dir/etc/group"
}

docker_import_dir() {  # DIR REF CHANGE...
    local dir=$1 ref=$2
    shift 2
    local args=() c
    for c in "$@"; do args+=(--change "$c"); done
    tar --numeric-owner -C "$dir" -c . | docker import "${args[@]}" - "$ref" >/dev/null
}

BUSYBOX_BUILT=0
PAUSE_BUILT=0

build_busybox_image() {
    if [[ $REBUILD != 1 ]] && have_docker_image "$BUSYBOX_REF"; then
        log "image $BUSYBOX_REF present in docker"
        return
    fi
    log "building $BUSYBOX_REF from $(busybox_binary)"
    local dir=$TMP_ROOT/busybox
    make_busybox_rootfs "$dir"
    docker_import_dir "$dir" "$BUSYBOX_REF" \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'CMD ["sh"]'
    docker tag "$BUSYBOX_REF" "$BUSYBOX_FULL_REF"
    BUSYBOX_BUILT=1
}

build_pause_image() {
    if [[ $REBUILD != 1 ]] && have_docker_image "$PAUSE_REF"; then
        log "image $PAUSE_REF present in docker"
        return
    fi
    local dir=$TMP_ROOT/pause
    mkdir -p "$dir"
    cat >"$TMP_ROOT/pause.c" <<'EOF'
/* Minimal pod sandbox process: sleep until TERM/INT, reap orphans. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_chld(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

int main(void) {
    struct sigaction sa = {0};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) pause();
}
EOF
    if command -v gcc >/dev/null &&
        gcc -Os -static -s -o "$dir/pause" "$TMP_ROOT/pause.c" 2>"$TMP_ROOT/gcc.err"; then
        log "building $PAUSE_REF (static C pause, $(stat -c %s "$dir/pause") bytes)"
        docker_import_dir "$dir" "$PAUSE_REF" 'ENTRYPOINT ["/pause"]'
    else
        log "building $PAUSE_REF (busybox sh pause; no usable gcc -static)"
        make_busybox_rootfs "$dir"
        docker_import_dir "$dir" "$PAUSE_REF" \
            'ENTRYPOINT ["/bin/sh", "-c", "trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait; done"]'
    fi
    PAUSE_BUILT=1
}

registry_config_digest() {  # REPO TAG: the image id (config digest) the registry holds
    curl -sf -m 5 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY_ADDR/v2/$1/manifests/$2" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])' 2>/dev/null
}

# The registry's image must NOT be the local busybox itself: RemoveImage of a
# pulled reference removes every tag of that image id (containerd's and
# Docker's rule), which would take busybox:latest away from every other test.
push_busybox() {
    local rebuilt=$1 local_id remote_id cid
    local_id=$(docker image inspect -f '{{.Id}}' "$BUSYBOX_REF")
    remote_id=$(registry_config_digest pycri/busybox latest || true)
    if [[ $rebuilt != 1 && -n $remote_id && $remote_id != "$local_id" ]]; then
        log "image $PUSH_REF present in registry"
        return
    fi
    log "pushing $PUSH_REF (busybox with a pull-test label, so its id differs)"
    cid=$(docker create "$BUSYBOX_REF")
    docker commit --change 'LABEL io.pycri.purpose=pull-test' "$cid" "$PUSH_REF" >/dev/null
    docker rm "$cid" >/dev/null
    docker push -q "$PUSH_REF" >/dev/null
    docker rmi "$PUSH_REF" >/dev/null  # the tests pull it; start them without it
}

import_into_containerd() {  # REBUILT REF...
    local rebuilt=$1 ns ref
    shift
    for ns in "${CTR_NAMESPACES[@]}"; do
        for ref in "$@"; do
            if [[ $rebuilt != 1 ]] && have_ctr_image "$ns" "$ref"; then
                log "image $ref present in containerd namespace $ns"
                continue
            fi
            log "importing $ref into containerd namespace $ns"
            docker save "$ref" | ctr -n "$ns" images import - >/dev/null
            have_ctr_image "$ns" "$ref" || die "import of $ref into namespace $ns did not produce that image"
        done
    done
}

build_images() {
    build_busybox_image
    build_pause_image
    push_busybox "$BUSYBOX_BUILT"
    import_into_containerd "$BUSYBOX_BUILT" "$BUSYBOX_FULL_REF"
    import_into_containerd "$PAUSE_BUILT" "$PAUSE_REF"
}

# ---------------------------------------------------------------- summary ---
summary() {
    local ns
    echo "---------------------------------------------------------------- runtimes"
    printf '%-11s %s\n' dockerd "$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?')"
    printf '%-11s %s\n' docker-cli "$(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"
    printf '%-11s %s\n' containerd "$(containerd --version | awk '{print $3}')"
    printf '%-11s %s\n' runc "$(runc --version | awk 'NR==1{print $3}')"
    printf '%-11s %s\n' crictl "$(go_mod_version "$BIN_DIR/crictl" "$CRICTL_MOD" 2>/dev/null || true)"
    printf '%-11s %s\n' nerdctl "$(nerdctl --version | awk '{print $3}')"
    printf '%-11s %s\n' registry "$(docker-registry --version 2>/dev/null | awk '{print $3}') on http://$REGISTRY_ADDR"
    echo "sockets:    containerd $CONTAINERD_SOCK, docker $DOCKER_SOCK"
    echo "logs:       $LOG_DIR/{containerd,dockerd,registry}.log"
    echo "images:"
    docker images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' |
        grep -E "busybox|pause" | sed 's/^/  docker      /' || true
    for ns in "${CTR_NAMESPACES[@]}"; do
        # (the CRI plugin adds sha256:<id> aliases in k8s.io; not listed)
        ctr -n "$ns" images ls -q | grep -v '^sha256:' | sed "s/^/  ctr $(printf '%-7s' "$ns") /" || true
    done
    echo "  registry    $REGISTRY_ADDR/pycri/busybox tags: $(curl -sf "http://$REGISTRY_ADDR/v2/pycri/busybox/tags/list" || echo '?')"
    echo "nerdctl:    nerdctl --namespace pycri --cni-path $CNI_BIN_DIR ..."
    echo "crictl:     crictl --runtime-endpoint unix://$CONTAINERD_SOCK ..."
    log "done"
}

# A host without systemd may lack /dev/mqueue, which every host-IPC container
# bind-mounts (runc: "stat /dev/mqueue: no such file or directory").
mount_mqueue() {
    if mountpoint -q /dev/mqueue 2>/dev/null; then
        return
    fi
    log "mounting the POSIX message queue filesystem on /dev/mqueue"
    mkdir -p /dev/mqueue
    mount -t mqueue mqueue /dev/mqueue
}

install_packages
mount_mqueue
go_tool crictl "$CRICTL_MOD" "$CRICTL_PKG" "$CRICTL_VERSION"
go_tool nerdctl "$NERDCTL_MOD" "$NERDCTL_PKG" "$NERDCTL_VERSION"
start_containerd
check_cri_config
start_dockerd
start_registry
build_images
summary
