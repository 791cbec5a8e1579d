#!/usr/bin/env bash
# Make critest, the CRI conformance suite (kubernetes-sigs/cri-tools), run
# offline on a build machine prepared by scripts/setup-runtimes.sh.
#
#   - critest $CRITEST_VERSION built from the Go module proxy (a `go test -c`
#     binary) into /usr/local/bin/critest; skipped when that version is there
#   - a stand-in for every image critest pulls, built locally from Debian's
#     busybox and scripts/critest-images/, pushed to the local registry
#     (127.0.0.1:5000) under the upstream path: registry.k8s.io/X and
#     k8s.gcr.io/X are served as X, gcr.io/X as X
#   - containerd (its CRI and nerdctl): /etc/containerd/certs.d/<host>/hosts.toml
#     mirrors every upstream registry to http://127.0.0.1:5000 (containerd's
#     CRI reads the directory through config_path, set by setup-runtimes.sh)
#   - dockerd, which has per-registry mirrors only for docker.io (that one is
#     --registry-mirror on its command line, set by setup-runtimes.sh): a block
#     in /etc/hosts sends the other upstream registries to 127.0.0.1, where a
#     second registry process serves the same storage over https on port 443
#     with a certificate from a local CA that /etc/docker/certs.d/<host>/ca.crt
#     trusts
#
# Idempotent: images are rebuilt only when their recipe (this script, the
# files in scripts/critest-images/, Debian's busybox package) changed or the
# registry lost them. Stop the https registry with scripts/teardown-runtimes.sh.
#
# Environment knobs (all optional):
#   PYCRI_CI_REBUILD=1   rebuild and push the images even if present
set -euo pipefail

CRITOOLS_MOD=sigs.k8s.io/cri-tools
CRITEST_PKG=sigs.k8s.io/cri-tools/cmd/critest
CRITEST_VERSION=v1.37.0

HERE=$(cd "$(dirname "$0")" && pwd)
SRC_DIR=$HERE/critest-images
BIN_DIR=/usr/local/bin
CONF_DIR=/etc/pycri-ci
LOG_DIR=/var/log/pycri-ci
STATE_DIR=/var/lib/pycri-ci
RUN_DIR=/run/pycri-ci
CACHE_DIR=/var/cache/pycri-ci
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_STORAGE=$STATE_DIR/registry  # setup-runtimes.sh's registry
TLS_DIR=$CONF_DIR/critest-tls
TLS_CONFIG=$CONF_DIR/registry-tls.yml
TLS_PORT=443
STAMP=$STATE_DIR/critest-images.sha256
CONTAINERD_CERTS_D=/etc/containerd/certs.d
DOCKER_CERTS_D=/etc/docker/certs.d
HOSTS_BEGIN="# BEGIN pycri critest: upstream registries served by the local registry (scripts/setup-critest.sh)"
HOSTS_END="# END pycri critest"

# Registries redirected to 127.0.0.1 for dockerd, and mirrored for containerd
# (which also gets docker.io; dockerd has --registry-mirror for that one).
DOCKER_HOSTS=(registry.k8s.io k8s.gcr.io gcr.io public.ecr.aws)
declare -A UPSTREAM=(
    [registry.k8s.io]=https://registry.k8s.io
    [k8s.gcr.io]=https://k8s.gcr.io
    [gcr.io]=https://gcr.io
    [public.ecr.aws]=https://public.ecr.aws
    [docker.io]=https://registry-1.docker.io
)

# The test suite's own images (setup-runtimes.sh): never removed here.
PROTECTED_REFS=(registry.k8s.io/pause:3.9 busybox:latest docker.io/library/busybox:latest)

REBUILD=${PYCRI_CI_REBUILD:-0}
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
export DOCKER_BUILDKIT=0  # the classic builder: no buildx plugin, no network

START_TIME=$SECONDS
log() { printf '[setup-critest %3ds] %s\n' "$((SECONDS - START_TIME))" "$*" >&2; }
die() { printf '[setup-critest] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root"
docker info >/dev/null 2>&1 || die "dockerd does not answer: run scripts/setup-runtimes.sh first"
curl -sf -m 5 -o /dev/null "http://$REGISTRY_ADDR/v2/" ||
    die "no registry on $REGISTRY_ADDR: run scripts/setup-runtimes.sh first"

TMP_ROOT=$(mktemp -d /tmp/pycri-critest-setup.XXXXXX)
trap 'rm -rf "$TMP_ROOT"' EXIT
mkdir -p "$CONF_DIR" "$LOG_DIR" "$STATE_DIR" "$RUN_DIR" "$CACHE_DIR"

# put_file PATH [MODE]: write stdin to PATH when the content differs; the
# global CHANGED becomes 1 when it wrote.
CHANGED=0
put_file() {
    local path=$1 mode=${2:-0644} tmp
    tmp=$(mktemp "$TMP_ROOT/file.XXXXXX")
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        return 0
    fi
    mkdir -p "$(dirname "$path")"
    install -m "$mode" "$tmp" "$path"
    CHANGED=1
}

apt_install() {  # PACKAGE...: install the ones missing
    local missing=() p
    for p in "$@"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "apt: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } ||
        die "apt-get could not install ${missing[*]}"
}

# ---------------------------------------------------------------- critest ---
build_critest() {
    local target=$BIN_DIR/critest have dir
    command -v go >/dev/null || die "'go' is needed to build critest but is not on PATH"
    have=$(go version -m "$target" 2>/dev/null | awk -v m="$CRITOOLS_MOD" '$1 == "mod" && $2 == m { print $3 }' || true)
    if [[ $have == "$CRITEST_VERSION" ]]; then
        log "critest $CRITEST_VERSION already installed"
        return
    fi
    log "building critest $CRITEST_VERSION (found: ${have:-none})"
    # critest is a test binary (ginkgo suite): `go test -c`, from a throwaway
    # module that requires exactly that version
    dir=$(mktemp -d "$TMP_ROOT/critest.XXXXXX")
    printf 'module pycri.local/build-critest\n\ngo 1.24\n\nrequire %s %s\n' \
        "$CRITOOLS_MOD" "$CRITEST_VERSION" >"$dir/go.mod"
    (cd "$dir" && go test -c -mod=mod -o "$dir/critest" "$CRITEST_PKG") ||
        die "could not build critest $CRITEST_VERSION"
    install -m 0755 "$dir/critest" "$target"
    have=$(go version -m "$target" | awk -v m="$CRITOOLS_MOD" '$1 == "mod" && $2 == m { print $3 }')
    [[ $have == "$CRITEST_VERSION" ]] || die "$target reports cri-tools ${have:-nothing}, not $CRITEST_VERSION"
}

# ---------------------------------------------------------------- images ----
# Every image critest v1.37 pulls (pkg/validate, pkg/framework), as
# "REGISTRY_PATH KIND": KIND says which stand-in is built for it. Each line is
# its own image (a label names the path), so that e.g. test-image-1 and
# test-image-2 differ; the test-image-tags lines are one image with three tags,
# as critest expects. registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9 are
# one path here, so one image, as critest expects too. Not served: the
# digest-pinned gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:...
# (its content cannot be reproduced) and the Windows images. library/nginx is
# not critest's: it is `kubectl run nginx --image=nginx` in the Kubernetes
# tests (tests/integration/kubernetes/), docker.io/library/nginx upstream.
IMAGES=(
    "e2e-test-images/busybox:1.29-2 busybox"
    "e2e-test-images/nginx:1.14-2 nginx"
    "library/nginx:latest nginx"
    "e2e-test-images/httpd:2.4.39-4 httpd"
    "e2e-test-images/nonewprivs:1.3 nonewprivs"
    "pause:3.9 pause"
    "k8s-staging-cri-tools/hostnet-nginx-amd64:latest hostnet-nginx"
    "k8s-staging-cri-tools/test-image-user-uid:latest user=1002"
    "k8s-staging-cri-tools/test-image-user-username:latest user=www-data"
    "k8s-staging-cri-tools/test-image-user-uid-group:latest user=1003:1004"
    "k8s-staging-cri-tools/test-image-user-username-group:latest user=www-data:1004"
    "k8s-staging-cri-tools/test-image-predefined-group:latest predefined-group"
    "k8s-staging-cri-tools/test-image-latest:latest file=test-image-latest"
    "k8s-staging-cri-tools/test-image-tag:test file=test"
    "k8s-staging-cri-tools/test-image-tag:all file=all"
    "k8s-staging-cri-tools/test-image-1:latest file=test-image-1"
    "k8s-staging-cri-tools/test-image-2:latest file=test-image-2"
    "k8s-staging-cri-tools/test-image-3:latest file=test-image-3"
    "k8s-staging-cri-tools/test-image-tags:1 file=same-image"
    "k8s-staging-cri-tools/test-image-tags:2 file=same-image"
    "k8s-staging-cri-tools/test-image-tags:3 file=same-image"
)

# upstream_refs PATH: the upstream names registry path PATH is served for
upstream_refs() {
    case $1 in
    pause:*) echo "registry.k8s.io/$1 k8s.gcr.io/$1" ;;
    e2e-test-images/*) echo "registry.k8s.io/$1" ;;
    k8s-staging-cri-tools/*) echo "gcr.io/$1" ;;
    library/*) echo "docker.io/$1" ;;
    *) die "no upstream registry known for $1" ;;
    esac
}

registry_has() {  # PATH:TAG
    local path=${1%:*} tag=${1##*:}
    curl -sf -m 5 -o /dev/null -I \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY_ADDR/v2/$path/manifests/$tag"
}

busybox_deb() {  # prints the path of Debian's (dynamically linked) busybox package
    local deb
    deb=$(find "$CACHE_DIR" -maxdepth 1 -name 'busybox_*_amd64.deb' | sort | tail -n 1)
    if [[ -z $deb ]]; then
        log "downloading Debian's busybox package"
        (cd "$CACHE_DIR" && { apt-get download -qq busybox 2>/dev/null ||
            { apt-get update -qq && apt-get download -qq busybox; }; }) >&2 ||
            die "apt-get download busybox failed"
        deb=$(find "$CACHE_DIR" -maxdepth 1 -name 'busybox_*_amd64.deb' | sort | tail -n 1)
    fi
    [[ -n $deb ]] || die "no busybox package in $CACHE_DIR"
    echo "$deb"
}

recipe_digest() {  # DEB: what the images are built from
    {
        sha256sum "$0" "$1"
        (cd "$SRC_DIR" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    } | sha256sum | awk '{print $1}'
}

# The busybox stand-in's root filesystem, like the official busybox:glibc
# image: Debian's dynamic busybox (busybox-static runs applets in-process, so
# masking /bin/ls would not stop `ls`), each applet a hard link (runc masks a
# path by mounting /dev/null on it, which would follow a symlink to busybox
# itself), the libraries it needs, users and groups, and pgrep and ipcs.
make_base_rootfs() {  # DEB DIR
    local deb=$1 root=$2 unpacked=$TMP_ROOT/busybox-deb bb applet lib
    dpkg-deb -x "$deb" "$unpacked"
    bb=$unpacked/bin/busybox
    mkdir -p "$root"/{bin,dev,etc,home,proc,root,sys,tmp,usr/bin,usr/sbin,var/run,var/www}
    mkdir -p "$root"/{lib/x86_64-linux-gnu,lib64}
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    install -m 0755 "$bb" "$root/bin/busybox"
    for applet in $("$bb" --list); do
        [[ $applet == busybox ]] || ln -f "$root/bin/busybox" "$root/bin/$applet"
    done
    install -m 0755 "$SRC_DIR/pgrep" "$root/bin/pgrep"
    install -m 0755 "$SRC_DIR/ipcs" "$root/bin/ipcs"
    while read -r lib; do
        case $lib in
        */ld-linux*) cp -L "$lib" "$root/lib64/" ;;
        /*) cp -L "$lib" "$root/lib/x86_64-linux-gnu/" ;;
        esac
    done < <(ldd "$bb" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /ld-linux/ {print $1}')
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
www-data:x:33:
users:x:100:
nogroup:x:65534:
EOF
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
}

compile_helpers() {  # DIR: static builds of the C stand-ins
    local out=$1 name
    apt_install gcc libc6-dev
    mkdir -p "$out"
    for name in pause nginx nonewprivs; do
        gcc -static -Os -s -Wall -Wextra -Werror -o "$out/$name" "$SRC_DIR/$name.c" ||
            die "could not compile $SRC_DIR/$name.c"
    done
}

# extras_KIND DIR: fill DIR with the files image KIND adds to the base image;
# dockerfile_KIND: the Dockerfile lines after FROM and the ADD of those files.
extras_nginx() {
    local dir=$1
    mkdir -p "$dir"/{usr/sbin,usr/share/nginx/html,etc/nginx/conf.d,var/log/nginx,var/cache/nginx}
    install -m 0755 "$HELPERS/nginx" "$dir/usr/sbin/nginx"
    printf '<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1><p>critest stand-in (busybox httpd).</p></body></html>\n' \
        >"$dir/usr/share/nginx/html/index.html"
    printf 'server {\n    listen       %s;\n    server_name  localhost;\n    location / {\n        root   /usr/share/nginx/html;\n        index  index.html index.htm;\n    }\n}\n' \
        "${NGINX_PORT:-80}" >"$dir/etc/nginx/conf.d/default.conf"
}
dockerfile_nginx() { printf 'EXPOSE %s\nSTOPSIGNAL SIGTERM\nCMD ["nginx", "-g", "daemon off;"]\n' "${NGINX_PORT:-80}"; }
extras_hostnet-nginx() { NGINX_PORT=12003 extras_nginx "$1"; }
dockerfile_hostnet-nginx() { NGINX_PORT=12003 dockerfile_nginx; }

extras_httpd() {
    local dir=$1
    mkdir -p "$dir/usr/local/apache2/htdocs" "$dir/usr/local/bin"
    echo '<html><body><h1>It works!</h1></body></html>' >"$dir/usr/local/apache2/htdocs/index.html"
    cat >"$dir/usr/local/bin/httpd-foreground" <<'EOF'
#!/bin/sh
# critest stand-in for httpd's httpd-foreground: busybox httpd on port 80.
echo "httpd: critest stand-in (busybox httpd) serving /usr/local/apache2/htdocs on port 80" >&2
exec /bin/busybox httpd -f -v -p 80 -h /usr/local/apache2/htdocs
EOF
    chmod 0755 "$dir/usr/local/bin/httpd-foreground"
}
dockerfile_httpd() { printf 'EXPOSE 80\nCMD ["httpd-foreground"]\n'; }

extras_nonewprivs() {
    mkdir -p "$1/usr/local/bin"
    install -m 4755 "$HELPERS/nonewprivs" "$1/usr/local/bin/nnp"
}
dockerfile_nonewprivs() { printf 'ENTRYPOINT ["/usr/local/bin/nnp"]\n'; }

extras_predefined-group() {
    local dir=$1
    mkdir -p "$dir/etc" "$dir/home/default-user"
    cp "$BASE_ROOTFS/etc/passwd" "$BASE_ROOTFS/etc/group" "$dir/etc/"
    echo 'default-user:x:1000:1000::/home/default-user:/bin/sh' >>"$dir/etc/passwd"
    printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >>"$dir/etc/group"
    chown 1000:1000 "$dir/home/default-user"
}
dockerfile_predefined-group() { printf 'USER 1000\n'; }

extras_busybox() { :; }
dockerfile_busybox() { :; }

# build_image PATH KIND: docker build the stand-in for registry path PATH as
# $REGISTRY_ADDR/PATH
build_image() {
    local path=$1 kind=$2 ctx label arg
    ctx=$(mktemp -d "$TMP_ROOT/ctx.XXXXXX")
    label=$path
    arg=${kind#*=}
    case $kind in
    pause)
        install -m 0755 "$HELPERS/pause" "$ctx/pause"
        printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
        ;;
    user=*)
        printf 'FROM %s\nUSER %s\n' "$BASE_IMAGE" "$arg" >"$ctx/Dockerfile"
        ;;
    file=*)  # images/image-test: an empty file named after the image, at /
        : >"$ctx/$arg"
        printf 'FROM %s\nADD %s /%s\n' "$BASE_IMAGE" "$arg" "$arg" >"$ctx/Dockerfile"
        [[ $arg == same-image ]] && label=${path%:*}
        ;;
    *)
        mkdir "$ctx/files"
        "extras_$kind" "$ctx/files"
        # ADD of a tar keeps owners and the setuid bit, which COPY would not
        tar --numeric-owner -C "$ctx/files" -cf "$ctx/files.tar" .
        rm -rf "$ctx/files"
        { printf 'FROM %s\nADD files.tar /\n' "$BASE_IMAGE"; "dockerfile_$kind"; } >"$ctx/Dockerfile"
        ;;
    esac
    printf 'LABEL io.pycri.critest.image="%s"\n' "$label" >>"$ctx/Dockerfile"
    docker build -q -t "$REGISTRY_ADDR/$path" "$ctx" >"$TMP_ROOT/build.log" 2>&1 ||
        { cat "$TMP_ROOT/build.log" >&2; die "docker build of $path failed"; }
}

build_and_push_images() {
    local deb digest line path kind absent=0
    deb=$(busybox_deb)
    digest=$(recipe_digest "$deb")
    for line in "${IMAGES[@]}"; do
        registry_has "${line%% *}" || { absent=1; break; }
    done
    if [[ $REBUILD != 1 && $absent == 0 && $(cat "$STAMP" 2>/dev/null || true) == "$digest" ]]; then
        log "critest images present in the registry (recipe $digest)"
        IMAGES_CHANGED=0
        return
    fi
    log "building critest's images from $(basename "$deb")"
    HELPERS=$TMP_ROOT/helpers
    compile_helpers "$HELPERS"
    BASE_ROOTFS=$TMP_ROOT/base
    make_base_rootfs "$deb" "$BASE_ROOTFS"
    BASE_IMAGE=pycri-critest-build/busybox:latest
    tar --numeric-owner -C "$BASE_ROOTFS" -c . |
        docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["sh"]' - "$BASE_IMAGE" >/dev/null
    for line in "${IMAGES[@]}"; do
        read -r path kind <<<"$line"
        build_image "$path" "$kind"
        docker push -q "$REGISTRY_ADDR/$path" >/dev/null || die "docker push $REGISTRY_ADDR/$path failed"
        log "pushed $path ($kind)"
    done
    # dockerd keeps no copy under a registry name: a pulled image would list
    # it as one more RepoTag, and critest compares RepoTags exactly
    for line in "${IMAGES[@]}"; do
        docker rmi "$REGISTRY_ADDR/${line%% *}" >/dev/null
    done
    docker rmi "$BASE_IMAGE" >/dev/null
    echo "$digest" >"$STAMP"
    IMAGES_CHANGED=1
}

# ---------------------------------------------------------------- dockerd ---
write_hosts_block() {
    local tmp=$TMP_ROOT/hosts h
    {
        awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0 == b {skip = 1; next} $0 == e {skip = 0; next} !skip' /etc/hosts
        printf '%s\n127.0.0.1 %s\n%s\n' "$HOSTS_BEGIN" "${DOCKER_HOSTS[*]}" "$HOSTS_END"
    } >"$tmp"
    if ! cmp -s "$tmp" /etc/hosts; then
        cat "$tmp" >/etc/hosts  # in place: /etc/hosts may be a bind mount
        log "/etc/hosts: ${DOCKER_HOSTS[*]} -> 127.0.0.1"
    fi
    for h in "${DOCKER_HOSTS[@]}"; do
        [[ $(getent ahostsv4 "$h" | awk '{print $1}' | sort -u) == 127.0.0.1 ]] ||
            die "$h does not resolve to 127.0.0.1 only; check /etc/hosts"
    done
}

tls_valid() {
    local h
    [[ -s $TLS_DIR/ca.crt && -s $TLS_DIR/server.crt && -s $TLS_DIR/server.key ]] || return 1
    openssl verify -purpose sslserver -CAfile "$TLS_DIR/ca.crt" "$TLS_DIR/server.crt" >/dev/null 2>&1 || return 1
    openssl x509 -in "$TLS_DIR/server.crt" -noout -checkend $((30 * 86400)) >/dev/null || return 1
    for h in "${DOCKER_HOSTS[@]}"; do
        openssl x509 -in "$TLS_DIR/server.crt" -noout -checkhost "$h" | grep -q 'does match' || return 1
    done
}

make_certificates() {
    local san h cnf=$TMP_ROOT/openssl.cnf
    if tls_valid; then
        return
    fi
    log "creating a local CA and a registry certificate in $TLS_DIR"
    mkdir -p "$TLS_DIR"
    chmod 0700 "$TLS_DIR"
    san=DNS:localhost,IP:127.0.0.1
    for h in "${DOCKER_HOSTS[@]}"; do san+=",DNS:$h"; done
    cat >"$cnf" <<EOF
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
EOF
    {
        openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -config "$cnf" -extensions ca \
            -subj "/CN=pycri CI registry CA" -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" &&
            openssl req -new -newkey rsa:2048 -nodes -config "$cnf" -subj "/CN=pycri CI registry" \
                -keyout "$TLS_DIR/server.key" -out "$TMP_ROOT/server.csr" &&
            openssl x509 -req -in "$TMP_ROOT/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
                -CAcreateserial -days 3650 -extfile "$cnf" -extensions server -out "$TLS_DIR/server.crt"
    } >"$TMP_ROOT/openssl.log" 2>&1 || { cat "$TMP_ROOT/openssl.log" >&2; die "openssl failed"; }
    chmod 0600 "$TLS_DIR/ca.key" "$TLS_DIR/server.key"
    tls_valid || die "the new certificate does not verify"
}

tls_registry_up() {
    curl -sf -m 5 -o /dev/null --cacert "$TLS_DIR/ca.crt" "https://${DOCKER_HOSTS[0]}:$TLS_PORT/v2/"
}

start_tls_registry() {
    local pidfile=$RUN_DIR/registry-tls.pid pid h
    CHANGED=0
    put_file "$TLS_CONFIG" <<EOF
# Written by scripts/setup-critest.sh -- do not edit, rerun the script.
# The storage of setup-runtimes.sh's registry, read-only use, over https for
# dockerd (upstream registry names resolve to 127.0.0.1 through /etc/hosts).
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_STORAGE
http:
  addr: 127.0.0.1:$TLS_PORT
  tls:
    certificate: $TLS_DIR/server.crt
    key: $TLS_DIR/server.key
EOF
    for h in "${DOCKER_HOSTS[@]}"; do  # dockerd reads these per pull
        put_file "$DOCKER_CERTS_D/$h/ca.crt" <"$TLS_DIR/ca.crt"
    done
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null || true) == docker-registry ]]; then
        if ((CHANGED == 0)) && tls_registry_up; then
            log "https registry already answering on 127.0.0.1:$TLS_PORT"
            return
        fi
        log "restarting the https registry (pid $pid): its configuration changed"
        kill "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    if command -v ss >/dev/null && ss -Hltn "sport = :$TLS_PORT" | grep -q .; then
        die "port $TLS_PORT is taken: $(ss -Hltnp "sport = :$TLS_PORT")"
    fi
    log "starting the https registry on 127.0.0.1:$TLS_PORT"
    printf '\n===== %s starting registry-tls\n' "$(date -Is)" >>"$LOG_DIR/registry-tls.log"
    setsid /usr/bin/docker-registry serve "$TLS_CONFIG" </dev/null >>"$LOG_DIR/registry-tls.log" 2>&1 &
    echo $! >"$pidfile"
    disown || true
    for _ in $(seq 100); do
        tls_registry_up && return
        kill -0 "$(cat "$pidfile")" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$LOG_DIR/registry-tls.log" >&2
    die "the https registry did not come up (log $LOG_DIR/registry-tls.log)"
}

is_protected() {
    local ref
    for ref in "${PROTECTED_REFS[@]}"; do [[ $1 == "$ref" ]] && return 0; done
    return 1
}

# Copies dockerd pulled from an earlier build would keep their old content.
drop_stale_docker_copies() {
    local line ref
    for line in "${IMAGES[@]}"; do
        for ref in $(upstream_refs "${line%% *}"); do
            is_protected "$ref" && continue
            docker image inspect "$ref" >/dev/null 2>&1 || continue
            docker rmi "$ref" >/dev/null 2>&1 || log "WARNING: could not remove the stale $ref from dockerd"
        done
    done
}

docker_smoke_test() {
    local refs=(k8s.gcr.io/pause:3.9 gcr.io/k8s-staging-cri-tools/test-image-tags:1
        gcr.io/k8s-staging-cri-tools/test-image-tags:2 gcr.io/k8s-staging-cri-tools/test-image-1:latest
        registry.k8s.io/e2e-test-images/busybox:1.29-2)
    local ref present=() tags1 tags2 one
    for ref in "${refs[@]}"; do
        docker image inspect "$ref" >/dev/null 2>&1 && present+=("$ref")
        docker pull -q "$ref" >/dev/null 2>"$TMP_ROOT/pull.log" ||
            { cat "$TMP_ROOT/pull.log" >&2; die "docker pull $ref failed"; }
    done
    tags1=$(docker image inspect -f '{{.Id}}' gcr.io/k8s-staging-cri-tools/test-image-tags:1)
    tags2=$(docker image inspect -f '{{.Id}}' gcr.io/k8s-staging-cri-tools/test-image-tags:2)
    one=$(docker image inspect -f '{{.Id}}' gcr.io/k8s-staging-cri-tools/test-image-1:latest)
    [[ $tags1 == "$tags2" ]] || die "test-image-tags:1 and :2 are different images in dockerd"
    [[ $tags1 != "$one" ]] || die "test-image-tags and test-image-1 are one image in dockerd"
    for ref in "${refs[@]}"; do
        [[ " ${present[*]} " == *" $ref "* ]] || docker rmi "$ref" >/dev/null
    done
    log "dockerd pulls ${DOCKER_HOSTS[*]} from https://127.0.0.1:$TLS_PORT"
}

# ------------------------------------------------------------- containerd ---
write_containerd_hosts() {
    local h
    for h in "${!UPSTREAM[@]}"; do
        put_file "$CONTAINERD_CERTS_D/$h/hosts.toml" <<EOF
# Written by scripts/setup-critest.sh: $h is served by the local registry.
server = "${UPSTREAM[$h]}"

[host."http://$REGISTRY_ADDR"]
  capabilities = ["pull", "resolve"]
EOF
    done
    log "containerd mirrors ${!UPSTREAM[*]} -> http://$REGISTRY_ADDR ($CONTAINERD_CERTS_D)"
}

containerd_smoke_test() {
    # the CRI plugin (namespace k8s.io) and nerdctl (a namespace of its own)
    local ref=gcr.io/k8s-staging-cri-tools/test-image-latest:latest
    local cri=(crictl --runtime-endpoint unix:///run/containerd/containerd.sock
        --image-endpoint unix:///run/containerd/containerd.sock --timeout 60s)
    local nerd=(nerdctl --namespace pycri-critest)
    "${cri[@]}" pull "$ref" >/dev/null 2>"$TMP_ROOT/pull.log" ||
        { cat "$TMP_ROOT/pull.log" >&2; die "crictl pull $ref from containerd's CRI failed"; }
    "${cri[@]}" rmi "$ref" >/dev/null 2>&1
    "${nerd[@]}" pull -q "$ref" >/dev/null 2>"$TMP_ROOT/pull.log" ||
        { cat "$TMP_ROOT/pull.log" >&2; die "nerdctl pull $ref failed"; }
    "${nerd[@]}" rmi "$ref" >/dev/null
    log "containerd's CRI and nerdctl pull through the mirror"
}

apt_install openssl
build_critest
build_and_push_images
write_hosts_block
make_certificates
start_tls_registry
((IMAGES_CHANGED == 0)) || drop_stale_docker_copies
docker_smoke_test
write_containerd_hosts
containerd_smoke_test
log "done: critest $(go version -m "$BIN_DIR/critest" | awk -v m="$CRITOOLS_MOD" '$1 == "mod" && $2 == m { print $3 }') in $BIN_DIR, ${#IMAGES[@]} images in http://$REGISTRY_ADDR"
